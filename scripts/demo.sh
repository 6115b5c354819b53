#!/usr/bin/env bash
# demo.sh: kiln's main job end to end on the embedded defaults (SQLite and
# artifacts under one data directory). It installs what is missing, builds
# kiln, and runs the example estate's pipeline (examples/estate):
#   1. validate the definitions (HCL and server tests);
#   2. run the pipeline for every image, in dependency order: build
#      basic-linux fresh from Debian packages, test it on a temporary
#      instance booted from the final image, scan its packages against the
#      advisories kiln knows, tag it ready; then appserver and
#      container-node on it, delivered to dev and staging, waiting for an
#      approval before prod (the demo approves);
#   3. launch a server from the appserver version in prod, ask it for a
#      page, and show what a team looks at: status, versions, lineage,
#      channels, the fleet report and the signed provenance;
#   4. destroy the server.
# Run it again: nothing changed → every image is up to date in seconds.
# Everything goes under KILN_DATA_DIR (default ./demo-data).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=$PATH:/usr/local/go/bin

scripts/deps.sh
echo "== building kiln" >&2
CGO_ENABLED=0 go build -ldflags "-s -w" -o bin/kiln ./cmd/kiln

export KILN_DATA_DIR=${KILN_DATA_DIR:-$PWD/demo-data}
kiln() { bin/kiln "$@"; }
estate=examples/estate

echo "== validate $estate" >&2
kiln validate "$estate"

echo "== pipeline: kiln run --all $estate (data in $KILN_DATA_DIR)" >&2
kiln run --all "$estate"

echo "== approving the prod deliveries that wait for it" >&2
waiting=$(kiln runs --status waiting -o json | jq -r '.runs[].id')
for id in $waiting; do
	kiln approve "$id" prod
done

echo "== what kiln knows" >&2
kiln status "$estate"
for img in basic-linux appserver container-node; do
	kiln version list "$img" --limit 3
done
kiln version lineage
kiln channel list
app=$(kiln channel list -o json | jq -r '[.[] | select(.image=="appserver" and .environment=="prod")][0].name // empty')
[ -n "$app" ] || app=$(kiln version latest appserver --status ready)
kiln version show "$app"
kiln version verify "$app"

echo "== a server from $app on 127.0.0.1:18080" >&2
name=demo-web
kiln instance destroy "$name" >/dev/null 2>&1 || true
# A step that fails below still destroys the server (nothing left running).
trap 'kiln instance destroy "$name" >/dev/null 2>&1 || true' EXIT
kiln instance launch "$app" --name "$name" --env prod --port 127.0.0.1:18080:80
curl -fsS http://127.0.0.1:18080/healthz
kiln instance exec "$name" --read-only -- cat /etc/kiln-release
kiln fleet report
kiln instance destroy "$name"
echo "== done: appserver in prod is $app" >&2
