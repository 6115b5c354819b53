#!/bin/sh
# Runs inside the basic-linux image while it is built (with /bin/sh -e).
set -eu

# Identify the image on the server; tests and people read this file.
printf 'image=%s\n' "${KILN_IMAGE:-basic-linux}" > /etc/kiln-release
chmod 0644 /etc/kiln-release

# Servers log to the journal only; keep it small.
mkdir -p /etc/systemd/journald.conf.d
printf '[Journal]\nSystemMaxUse=50M\n' > /etc/systemd/journald.conf.d/kiln.conf

# Drop apt's downloaded packages from the image.
apt-get clean
