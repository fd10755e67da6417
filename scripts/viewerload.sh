#!/usr/bin/env bash
# The cost of a live viewer and of an archived camera, baseline and result
# in ONE run on the same machine state (README, "Viewer load"): builds the
# baseline binary from BASE_REV (default 1407ee0, the commit before issue
# 19's work; cached under /var/tmp/bwc/viewerload/ by commit), builds the
# current tree, starts the services, and runs
# `bwc viewerload -bins base=...,new=...` with the flags given after it.
#
#   scripts/viewerload.sh                       baseline 1407ee0, default phases (10x0,10x5,20x10), 2 rounds
#   scripts/viewerload.sh main -pprof           baseline main, profiles of the last phase into the run's folder
#   scripts/viewerload.sh -phases 10x5 -rounds 3
#
# The nodes use the services' database (bwc, migrated to the new binary's
# schema first: a baseline older than a new migration would refuse it) and
# bucket (bwc-evidence), the cameras VIEWERLOAD-0001..., and the signing
# key $BWC_STATE_DIR/signing-key.pem (as scripts/demo.sh).
source "$(dirname "$0")/lib.sh"

base_rev=1407ee0
if [ $# -gt 0 ] && [[ "$1" != -* ]]; then base_rev="$1"; shift; fi
work="$BWC_STATE_DIR/viewerload"
mkdir -p "$work"

sha="$(git -C "$REPO" rev-parse --verify "${base_rev}^{commit}")"
base_bin="$work/bwc-$sha"
if [ ! -x "$base_bin" ]; then
	# the baseline's tree, exported from git (no worktree of this repository changed)
	src="$work/src-$sha"
	rm -rf "$src" && mkdir -p "$src"
	log "building the baseline $base_rev ($sha) in $src"
	git -C "$REPO" archive "$sha" | tar -x -C "$src"
	(cd "$src" && go build -o "$base_bin.tmp" ./cmd/bwc)
	mv "$base_bin.tmp" "$base_bin"
	rm -rf "$src"
else
	log "baseline $base_rev: $base_bin (built before)"
fi
new_bin="$work/bwc-current"
log "building the current tree ($REPO)"
(cd "$REPO" && go build -pgo=cmd/bwc/bwc.pgo -o "$new_bin" ./cmd/bwc)

"$REPO/scripts/services.sh" up
source "$BWC_STATE_DIR/env"
export BWC_SIGNING_KEY="${BWC_SIGNING_KEY:-$BWC_STATE_DIR/signing-key.pem}"
run="$work/run-$(date -u +%Y%m%d-%H%M%S)"
log "baseline $(git -C "$REPO" log -1 --format='%h %s' "$sha" | cut -c1-80)"
log "new      $(git -C "$REPO" log -1 --format='%h %s' HEAD | cut -c1-80)$(git -C "$REPO" diff --quiet HEAD || echo ' (+ uncommitted changes)')"
exec "$new_bin" viewerload -migrate-database-url "$BWC_OWNER_DATABASE_URL" \
	-bins "base=$base_bin,new=$new_bin" -dir "$run" "$@"
