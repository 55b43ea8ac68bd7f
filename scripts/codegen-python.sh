#!/usr/bin/env bash
# Generates the Python contract (messages, typed stubs, gRPC services) into services/common/src/tapedeck.
set -euo pipefail
cd "$(dirname "$0")/.."
out=services/common/src
venv=${VENV:-.venv}
rm -rf "$out/tapedeck"
mapfile -t protos < <(cd protos && find tapedeck -name '*.proto' | sort)
(cd protos && "../$venv/bin/python" -m grpc_tools.protoc -I . \
  --python_out="../$out" --mypy_out="../$out" \
  --grpc_python_out="../$out" --mypy_grpc_out="../$out" \
  --plugin=protoc-gen-mypy="../$venv/bin/protoc-gen-mypy" \
  --plugin=protoc-gen-mypy_grpc="../$venv/bin/protoc-gen-mypy_grpc" \
  "${protos[@]}")
# Packages for the generated tree, and the serialized descriptor set the gateway's reflection serves.
find "$out/tapedeck" -type d -exec touch {}/__init__.py \;
(cd protos && "../$venv/bin/python" -m grpc_tools.protoc -I . --include_imports --include_source_info \
  --descriptor_set_out="../$out/tapedeck/contract.binpb" "${protos[@]}")
# The NautilusTrader bridge ships its own copy of the part of the contract it uses.
VENV="$venv" bash clients/nautilus/codegen.sh
