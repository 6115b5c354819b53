#!/usr/bin/env bash
# test.sh runs kiln's whole test suite: formatting, vet, lint, and every
# test, including the integration tests that build real images with
# mmdebstrap, boot them with systemd-nspawn and use a real PostgreSQL. Run
# as root on Debian; .ci/run calls exactly this. With CI=true no
# integration test may skip.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=$PATH:/usr/local/go/bin:$(go env GOPATH 2>/dev/null || echo /root/go)/bin

scripts/deps.sh
if [ "$(id -u)" = 0 ]; then
	eval "$(scripts/postgres-test.sh)"
fi

echo "== gofmt" >&2
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$unformatted" ]; then
	echo "gofmt: these files need formatting (run gofmt -w):" >&2
	echo "$unformatted" >&2
	exit 1
fi

echo "== go vet" >&2
go vet ./...

echo "== golangci-lint" >&2
if ! command -v golangci-lint >/dev/null 2>&1; then
	go install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@v2.15.0
fi
golangci-lint run ./...

echo "== go test" >&2
go test -count=1 -timeout 30m "$@" ./...
