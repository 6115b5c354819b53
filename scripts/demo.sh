#!/usr/bin/env bash
# demo.sh: kiln's main job end to end on the embedded defaults (SQLite under
# a data directory). It installs what is missing, builds kiln, then:
#   1. records the example estate's image lines and versions with provenance
#      in the registry, moves them along the pipeline's statuses, and prints
#      the listings a team would look at;
#   2. when the build and test stages are available, bakes the example
#      estate (examples/estate) from Debian packages and tests each image on
#      an instance booted from it.
# Everything goes under KILN_DATA_DIR (default ./demo-data); rerun it freely.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=$PATH:/usr/local/go/bin

scripts/deps.sh
echo "== building kiln" >&2
go build -o bin/kiln ./cmd/kiln

export KILN_DATA_DIR=${KILN_DATA_DIR:-$PWD/demo-data}
kiln() { bin/kiln "$@"; }

echo "== registry tour (data in $KILN_DATA_DIR)" >&2
for img in basic-linux appserver container-node; do
	kiln image create "$img" 2>/dev/null || true
done
kiln image list

pk=$(mktemp)
trap 'rm -f "$pk"' EXIT
printf 'base-files 12.4+deb12u5 amd64\nlibssl3 3.0.11-1~deb12u2 amd64\n' >"$pk"
b=$(kiln version create basic-linux --semver 1.0.0 --packages "$pk" \
	--source origin=debian:bookworm@http://deb.debian.org/debian \
	--tag team=platform)
kiln version status "$b" tested --reason "demo: tests passed"
kiln version status "$b" ready --reason "demo: scan clean"
a=$(kiln version create appserver --semver 2.1.0 --base "$b" --packages "$pk")
kiln version status "$a" tested
kiln version list basic-linux
kiln version show "$a"
kiln version history "$b"
kiln version lineage
echo "latest ready basic-linux: $(kiln version latest basic-linux --status ready)"
