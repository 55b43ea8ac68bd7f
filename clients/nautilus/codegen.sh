#!/usr/bin/env bash
# Generates the part of the contract the bridge uses (tapedeck.live.v1 and tapedeck.common.v1)
# into src/tapedeck_nautilus/_contract, imports moved under the package, so the distribution
# stands alone. The proto file names stay those of the services' code: both can be imported in
# one process (the descriptors are the same).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
venv="$(cd "${VENV:-$root/.venv}" && pwd)"
out="$here/src/tapedeck_nautilus/_contract"
rm -rf "$out"
mkdir -p "$out"
(cd "$root/protos" && "$venv/bin/python" -m grpc_tools.protoc -I . \
  --python_out="$out" --mypy_out="$out" --grpc_python_out="$out" --mypy_grpc_out="$out" \
  --plugin=protoc-gen-mypy="$venv/bin/protoc-gen-mypy" \
  --plugin=protoc-gen-mypy_grpc="$venv/bin/protoc-gen-mypy_grpc" \
  tapedeck/common/v1/common.proto tapedeck/live/v1/live.proto)
find "$out" -type d -exec touch {}/__init__.py \;
find "$out" \( -name '*.py' -o -name '*.pyi' \) -print0 \
  | xargs -0 sed -i -E 's/^(from|import) tapedeck\./\1 tapedeck_nautilus._contract.tapedeck./'
