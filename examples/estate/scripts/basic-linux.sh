#!/bin/sh
# Runs inside the basic-linux image while it is built (with /bin/sh -e).
# kiln itself writes /etc/kiln-release (image, version, digests) at the end
# of every build.
set -eu

# Servers log to the journal only; keep it small.
mkdir -p /etc/systemd/journald.conf.d
printf '[Journal]\nSystemMaxUse=%s\n' "${JOURNAL_MAX_USE:-50M}" > /etc/systemd/journald.conf.d/kiln.conf

# Drop apt's downloaded packages from the image.
apt-get clean
