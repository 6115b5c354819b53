#!/usr/bin/env bash
# demo.sh: kiln's main job end to end on the embedded defaults (SQLite and
# artifacts under one data directory). It installs what is missing, builds
# kiln, and runs the pipeline on the example estate (examples/estate):
#   1. validate the definitions (HCL and server tests);
#   2. build basic-linux fresh from Debian packages, then appserver and
#      container-node on it, each registered as a candidate version with
#      its provenance and package manifest;
#   3. test each candidate on a temporary instance booted from the final
#      image (goss-format tests), tagging it tested or failed;
#   4. mark tested versions ready, launch an appserver instance with a
#      loopback port, ask it for a page, and print what a team looks at:
#      versions, lineage, the build log, instances;
#   5. destroy the instance.
# Run it again: nothing changed → every image is up to date in seconds.
# Everything goes under KILN_DATA_DIR (default ./demo-data).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=$PATH:/usr/local/go/bin

scripts/deps.sh
echo "== building kiln" >&2
CGO_ENABLED=0 go build -o bin/kiln ./cmd/kiln

export KILN_DATA_DIR=${KILN_DATA_DIR:-$PWD/demo-data}
kiln() { bin/kiln "$@"; }
estate=examples/estate
images=(basic-linux appserver container-node)

echo "== validate $estate" >&2
kiln validate "$estate"

echo "== build (data in $KILN_DATA_DIR)" >&2
kiln build "$estate"

echo "== test stage" >&2
for img in "${images[@]}"; do
	v=$(kiln version latest "$img" --status candidate)
	status=$(kiln version show "$v" -o json | jq -r .status)
	if [ "$status" = candidate ]; then
		kiln test "$v"
	else
		echo "$v is already $status" >&2
	fi
	if [ "$(kiln version show "$v" -o json | jq -r .status)" = tested ]; then
		kiln version status "$v" ready --reason "demo: tests passed, no further stages configured"
	fi
done

echo "== what the registry knows" >&2
for img in "${images[@]}"; do
	kiln version list "$img" --limit 3
done
kiln version lineage
app=$(kiln version latest appserver --status ready)
kiln version show "$app"
kiln version log "$app" | tail -n 5

echo "== an instance of $app on 127.0.0.1:18080" >&2
name=demo-web
kiln instance destroy "$name" >/dev/null 2>&1 || true
kiln instance launch "$app" --name "$name" --env dev --port 127.0.0.1:18080:80
curl -fsS http://127.0.0.1:18080/healthz
kiln instance exec "$name" -- cat /etc/kiln-release
kiln instance destroy "$name"
echo "== done: latest ready appserver is $app" >&2
