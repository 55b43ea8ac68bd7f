#!/usr/bin/env bash
# Refuses wire-breaking contract changes against the previous commit of main (buf FILE rules).
set -euo pipefail
cd "$(dirname "$0")/.."
if ! git rev-parse --verify --quiet HEAD~1 >/dev/null \
  || ! git cat-file -e HEAD~1:buf.yaml 2>/dev/null; then
  echo "buf breaking: no previous version of the contract to compare with"
  exit 0
fi
.venv/bin/buf breaking --against ".git#ref=HEAD~1"
echo "buf breaking: no breaking change against HEAD~1"
