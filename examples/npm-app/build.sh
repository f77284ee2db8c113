#!/usr/bin/env bash
# Builds version 1 and 2 of an npm service into block form (each node_modules package is one
# block), then writes the update bundle a customer on version 1 needs: the bumped package and
# the small layers. A real project runs this after `npm ci --omit=dev` with a Node.js base:
# "from": "docker://registry/node:20-slim".
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cd "$here"
BLOCKPORT=${BLOCKPORT:-blockport}
export BLOCKPORT_HOME="${BLOCKPORT_HOME:-$here/out/store}"
export SOURCE_DATE_EPOCH="${SOURCE_DATE_EPOCH:-1700000000}"
mkdir -p out
for v in 1 2; do
  node make-node-modules.mjs "$v"
  $BLOCKPORT build --config blockport.json --tag "example/npm-app:$v"
done
$BLOCKPORT bundle --to example/npm-app:2 --since example/npm-app:1 -o out/npm-app-2.bpk
ls -l out/npm-app-2.bpk
