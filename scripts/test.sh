#!/usr/bin/env bash
# Runs every test of the platform against real services: installs and starts
# PostgreSQL and MinIO, and the cluster test's 4-drive distributed MinIO
# (scripts/services.sh), installs ffmpeg, Chromium, HAProxy, playwright-core,
# staticcheck, then gofmt, go mod tidy -diff, go vet,
# staticcheck, go test -race, short fuzz runs and the browser end-to-end
# tests. Exits non-zero on the first failure.
source "$(dirname "$0")/lib.sh"
cd "$REPO"

"$REPO/scripts/services.sh" up
"$REPO/scripts/services.sh" tools
"$REPO/scripts/services.sh" dist-up # the cluster test's 4-drive distributed MinIO
# shellcheck disable=SC1091
source "$BWC_STATE_DIR/env"

log "gofmt"
unformatted="$(gofmt -l .)"
if [ -n "$unformatted" ]; then echo "gofmt would change:"; echo "$unformatted"; exit 1; fi

log "go mod tidy -diff"
go mod tidy -diff

log "go vet"
go vet ./...

log "staticcheck (pinned in scripts/services.sh tools)"
"$BWC_STATE_DIR/bin/staticcheck" ./...

log "go test -race"
# one package at a time: the real-time tests (ffmpeg cameras at -re, WebRTC
# viewers on loopback UDP) starve when the race-instrumented packages share
# two cores, and a viewer whose ICE checks time out never sees video
go test -race -count=1 -p 1 -timeout 25m ./...

# Every fuzz target, briefly: the corpus in testdata/fuzz runs as part of
# go test above; this explores a little further each run.
FUZZTIME="${BWC_FUZZTIME:-8s}"
{ grep -rl --include="*_test.go" --exclude-dir=node_modules "^func Fuzz" . || true; } | while read -r f; do
	pkg="./$(dirname "$f")"
	for target in $(grep -o '^func Fuzz[A-Za-z0-9_]*' "$f" | sed 's/^func //'); do
		log "fuzz $pkg $target ($FUZZTIME)"
		if ! go test -run='^$' -fuzz="^${target}\$" -fuzztime="$FUZZTIME" "$pkg" >/tmp/bwc-fuzz.log 2>&1; then
			# on a loaded machine the fuzzer may still be replaying its corpus
			# when the time is up ("context deadline exceeded"): give it longer once
			grep -q "context deadline exceeded" /tmp/bwc-fuzz.log && ! grep -q "Failing input" /tmp/bwc-fuzz.log &&
				go test -run='^$' -fuzz="^${target}\$" -fuzztime=30s "$pkg" >/tmp/bwc-fuzz.log 2>&1 ||
				{ cat /tmp/bwc-fuzz.log; exit 1; }
		fi
	done
done

if ls web/e2e/*.test.mjs >/dev/null 2>&1; then
	log "browser end-to-end tests (headless Debian chromium)"
	go build -o "$BWC_STATE_DIR/bwc" ./cmd/bwc
	go build -o "$BWC_STATE_DIR/bwc-testop" ./cmd/bwc-testop # the OpenID provider of oidc.test.mjs
	BWC_BIN="$BWC_STATE_DIR/bwc" BWC_TESTOP_BIN="$BWC_STATE_DIR/bwc-testop" node --test --test-concurrency=1 web/e2e/
fi
log "all tests passed"
