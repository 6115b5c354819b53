#!/usr/bin/env bash
# deps.sh installs what kiln needs on a Debian machine, from Debian's
# packages, and checks Go. It is idempotent and quiet when all is there.
#   mmdebstrap        fresh bakes of Debian images
#   eatmydata         libeatmydata: dpkg skips its fsyncs while kiln bakes (the artifact is made durable once)
#   systemd-container systemd-nspawn, for provisioning and booting instances
#   iproute2          network namespaces for instances
#   postgresql        the team database (tests run against it too)
#   git               provenance of estates kept in git
#   jq, curl, openssl used by the demo and by tests that check kiln's output the way users would
#   chromium          headless browser for the dashboard's end-to-end test
#   docker-registry   an OCI registry (distribution 2.8) the artifact tests start on 127.0.0.1
#   skopeo, umoci, podman  check that other tools read the images kiln pushes
#   runc              podman's runtime in the tests (crun refuses hybrid cgroups)
#   nodejs, npm       run @redocly/cli, which lints the OpenAPI documents
#   qemu-system-x86, qemu-utils, ovmf   the VM platform: QEMU, qemu-img, UEFI firmware
#   e2fsprogs, fdisk, dosfstools, mtools, systemd-boot-efi   disk images without loop devices or mounts
#   prometheus        the metric-gate tests start it on 127.0.0.1 scraping a service's front end
#   apt-utils         apt-ftparchive: the patching tests publish a local Debian repository (internal/aptrepotest)
#   diffoscope-minimal   what differs in a rebuild that is not bit-for-bit (kiln version rebuild --check; 0.7 MB)
# and, from the npm registry, @redocly/cli (pinned below) into
# ${XDG_CACHE_HOME:-~/.cache}/kiln/redocly, where api/openapi_test.go finds it.
set -euo pipefail

PKGS=(mmdebstrap eatmydata systemd-container iproute2 postgresql git ca-certificates uidmap jq curl openssl tar docker-registry skopeo umoci podman runc
	qemu-system-x86 qemu-utils ovmf e2fsprogs fdisk dosfstools mtools systemd-boot-efi prometheus apt-utils diffoscope-minimal)
# node and npm may come from elsewhere than Debian (NodeSource, nvm): only
# ask Debian for them when there are none.
command -v npm >/dev/null 2>&1 || PKGS+=(nodejs npm)
[ "${KILN_DEPS_BROWSER:-1}" = 1 ] && PKGS+=(chromium)

missing=()
for p in "${PKGS[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
	if [ "$(id -u)" != 0 ]; then
		echo "deps: missing Debian packages: ${missing[*]}; run as root or: sudo apt-get install ${missing[*]}" >&2
		exit 1
	fi
	echo "deps: installing ${missing[*]}" >&2
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq >&2
	apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi

if ! command -v go >/dev/null 2>&1; then
	if [ -x /usr/local/go/bin/go ]; then
		echo "deps: go is at /usr/local/go/bin but not on PATH; add it: export PATH=\$PATH:/usr/local/go/bin" >&2
	else
		echo "deps: Go 1.26 is needed to build kiln; install it from https://go.dev/dl/ into /usr/local/go" >&2
	fi
	exit 1
fi

# @redocly/cli lints the OpenAPI documents (api/openapi_test.go; keep
# redoclyVersion there the same).
REDOCLY_VERSION=2.77.0
REDOCLY_DIR="${XDG_CACHE_HOME:-$HOME/.cache}/kiln/redocly"
if [ "$(cat "$REDOCLY_DIR/.version" 2>/dev/null)" != "$REDOCLY_VERSION" ]; then
	echo "deps: installing @redocly/cli@$REDOCLY_VERSION into $REDOCLY_DIR" >&2
	mkdir -p "$REDOCLY_DIR"
	npm install --prefix "$REDOCLY_DIR" --no-audit --no-fund --loglevel=error "@redocly/cli@$REDOCLY_VERSION" >&2
	echo "$REDOCLY_VERSION" >"$REDOCLY_DIR/.version"
fi
