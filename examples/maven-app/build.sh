#!/usr/bin/env bash
# Builds version 1 and 2 of a Maven-style service into block form, then writes the update
# bundle a customer on version 1 needs: only the bumped jar, the new app.jar and small layers.
# A real project runs this after `mvn package dependency:copy-dependencies
# -DoutputDirectory=target/lib` and uses a JRE base: "from": "docker://registry/eclipse-temurin:21-jre".
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cd "$here"
BLOCKPORT=${BLOCKPORT:-blockport}
export BLOCKPORT_HOME="${BLOCKPORT_HOME:-$here/out/store}"
# one timestamp for every file and the config: the same sources give the same image digest
export SOURCE_DATE_EPOCH="${SOURCE_DATE_EPOCH:-1700000000}"
mkdir -p out
for v in 1 2; do
  node make-artifacts.mjs "$v"
  $BLOCKPORT build --config blockport.json --label "org.opencontainers.image.version=$v.0.0" --tag "example/maven-app:$v"
done
$BLOCKPORT bundle --to example/maven-app:2 --since example/maven-app:1 -o out/maven-app-2.bpk
ls -l out/maven-app-2.bpk
