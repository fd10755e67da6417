# Shared settings of the scripts. Sourced, not run.
# Everything binds to 127.0.0.1; every value can be overridden from the environment.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export PATH="/usr/local/go/bin:${HOME}/go/bin:${PATH}"

BWC_STATE_DIR="${BWC_STATE_DIR:-/var/tmp/bwc}"         # data of the local services
BWC_TOOLS_DIR="${BWC_TOOLS_DIR:-${HOME}/.cache/bwc}"     # cached tool builds (MinIO)
BWC_PG_PORT="${BWC_PG_PORT:-5439}"
BWC_MINIO_PORT="${BWC_MINIO_PORT:-9100}"
BWC_MINIO_CONSOLE_PORT="${BWC_MINIO_CONSOLE_PORT:-9101}"
BWC_MINIO_DIST_PORT="${BWC_MINIO_DIST_PORT:-9201}"               # the 4-drive distributed MinIO (services.sh dist-up): ports 9201-9204
BWC_MINIO_DIST_CONSOLE_PORT="${BWC_MINIO_DIST_CONSOLE_PORT:-9301}" # and its consoles 9301-9304
BWC_MINIO_USER="${BWC_MINIO_USER:-bwcadmin}"                # MinIO's root user: bwc setup-storage only
BWC_MINIO_PASSWORD="${BWC_MINIO_PASSWORD:-bwc-dev-secret-key}"
BWC_S3_SERVER_USER="${BWC_S3_SERVER_USER:-bwc-server}"       # the server's least-privilege MinIO user (bucket bwc-evidence)
BWC_S3_SERVER_PASSWORD="${BWC_S3_SERVER_PASSWORD:-bwc-server-dev-secret}"
BWC_S3_TEST_USER="${BWC_S3_TEST_USER:-bwc-test}"             # the same policy, for the tests' buckets t-*
BWC_S3_TEST_PASSWORD="${BWC_S3_TEST_PASSWORD:-bwc-test-dev-secret}"
BWC_DB_OWNER_PASSWORD="${BWC_DB_OWNER_PASSWORD:-bwc-owner-dev-pass}" # login bwc_owner: owns the database, runs bwc migrate
BWC_DB_APP_PASSWORD="${BWC_DB_APP_PASSWORD:-bwc-app-dev-pass}"       # login bwc_app: the server's
MINIO_VERSION="v0.0.0-20260212201848-7aac2a2c5b7c"
MINIO_BIN="${BWC_TOOLS_DIR}/minio-${MINIO_VERSION}/minio"

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

apt_updated=""
apt_install() {
	if [ -z "$apt_updated" ]; then
		log "apt-get update"
		apt-get update -qq >/dev/null
		apt_updated=1
	fi
	log "apt-get install $*"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

pg_bindir() {
	local d
	d="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1 || true)"
	if [ -n "$d" ] && [ -x "$d/initdb" ]; then echo "$d"; fi
}
