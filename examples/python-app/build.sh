#!/usr/bin/env bash
# Builds version 1 and 2 of a Python service into block form (each distribution in
# site-packages, and its .dist-info, is one block), then writes the update bundle a customer on
# version 1 needs. A real project runs this after `pip install --target build/site-packages -r
# requirements.txt` with a Python base: "from": "docker://registry/python:3.11-slim".
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cd "$here"
BLOCKPORT=${BLOCKPORT:-blockport}
export BLOCKPORT_HOME="${BLOCKPORT_HOME:-$here/out/store}"
export SOURCE_DATE_EPOCH="${SOURCE_DATE_EPOCH:-1700000000}"
mkdir -p out
for v in 1 2; do
  node make-site-packages.mjs "$v"
  $BLOCKPORT build --config blockport.json --tag "example/python-app:$v"
done
$BLOCKPORT bundle --to example/python-app:2 --since example/python-app:1 -o out/python-app-2.bpk
ls -l out/python-app-2.bpk
