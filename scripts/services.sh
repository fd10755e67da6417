#!/usr/bin/env bash
# Brings up (or down) the real services the platform runs on, on this machine,
# bound to 127.0.0.1: a private PostgreSQL cluster and a MinIO server.
# Installs what is missing (Debian's postgresql; MinIO built once with
# `go install` and cached). Idempotent: running it again changes nothing.
#
#   scripts/services.sh up      install if needed, start, print how to reach them
#   scripts/services.sh down    stop them (and the distributed MinIO)
#   scripts/services.sh env     print the environment (export lines)
#   scripts/services.sh tools   install the test tools (ffmpeg, chromium, playwright-core, staticcheck, haproxy)
#   scripts/services.sh dist-up    also start a 4-drive distributed MinIO (4 processes, erasure-coded) for the cluster test
#   scripts/services.sh dist-down  stop it
source "$(dirname "$0")/lib.sh"

PGDIR="$BWC_STATE_DIR/pg"
MINIODIR="$BWC_STATE_DIR/minio"
DISTDIR="$BWC_STATE_DIR/minio-dist"

install_postgres() {
	if [ -z "$(pg_bindir)" ]; then apt_install postgresql; fi
	command -v curl >/dev/null || apt_install curl
}

install_minio() {
	if [ -x "$MINIO_BIN" ]; then return; fi
	log "building MinIO $MINIO_VERSION with go install (a few minutes, once)"
	mkdir -p "$(dirname "$MINIO_BIN")"
	(cd /tmp && GOBIN="$(dirname "$MINIO_BIN")" GOFLAGS=-buildvcs=false go install "github.com/minio/minio@${MINIO_VERSION}")
}

pg_up() {
	local bin; bin="$(pg_bindir)"
	mkdir -p "$PGDIR/run"
	chown postgres:postgres "$PGDIR" "$PGDIR/run"
	if [ ! -f "$PGDIR/data/PG_VERSION" ]; then
		log "initdb $PGDIR/data"
		rm -rf "$PGDIR/data"
		runuser -u postgres -- "$bin/initdb" -D "$PGDIR/data" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >/dev/null
	fi
	if runuser -u postgres -- "$bin/pg_ctl" -D "$PGDIR/data" status >/dev/null 2>&1; then
		log "PostgreSQL already running on 127.0.0.1:$BWC_PG_PORT"
	else
		log "starting PostgreSQL on 127.0.0.1:$BWC_PG_PORT"
		runuser -u postgres -- "$bin/pg_ctl" -D "$PGDIR/data" -l "$PGDIR/pg.log" \
			-o "-c listen_addresses=127.0.0.1 -p $BWC_PG_PORT -k $PGDIR/run -c max_connections=300 -c fsync=on" -w start >/dev/null
	fi
}

psql_su() { runuser -u postgres -- psql -h 127.0.0.1 -p "$BWC_PG_PORT" -U postgres -v ON_ERROR_STOP=1 -qtA "$@"; }

# Who may log in, how: the superuser postgres without a password from this
# machine only (the tests create a database each with it; this is a dev
# setup), every other login (bwc_owner, bwc_app) with its password checked
# by SCRAM-SHA-256. Production: passwords for every login (README).
pg_hba() {
	cat >"$PGDIR/data/pg_hba.conf" <<-EOT
	# written by scripts/services.sh
	local all postgres                trust
	host  all postgres 127.0.0.1/32   trust
	local all all                     scram-sha-256
	host  all all      127.0.0.1/32   scram-sha-256
	EOT
	runuser -u postgres -- "$(pg_bindir)/pg_ctl" -D "$PGDIR/data" reload >/dev/null
}

# The two logins, neither a superuser: bwc_owner owns the database and runs
# the migrations, bwc_app is the server's (the migrations grant it what it
# may do). Passwords are (re)set on every run.
pg_roles() {
	psql_su -d postgres \
		-v owner_pw="$BWC_DB_OWNER_PASSWORD" -v app_pw="$BWC_DB_APP_PASSWORD" >/dev/null <<-'EOT'
	SELECT format('CREATE ROLE %I', r) FROM unnest(ARRAY['bwc_owner', 'bwc_app']) r
	 WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r) \gexec
	ALTER ROLE bwc_owner LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS PASSWORD :'owner_pw';
	ALTER ROLE bwc_app LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS PASSWORD :'app_pw';
	EOT
}

# The demo database, owned by bwc_owner. A database made by an earlier
# version of this script (owned, and migrated, by postgres) is handed over:
# its tables, sequences and functions to bwc_owner, and bwc_app's grants on
# what bwc_owner creates from now on.
pg_database() {
	if ! psql_su -d postgres -c "SELECT 1 FROM pg_database WHERE datname='bwc'" | grep -q 1; then
		psql_su -d postgres -c "CREATE DATABASE bwc OWNER bwc_owner" >/dev/null
		return
	fi
	if psql_su -d postgres -c "SELECT 1 FROM pg_database WHERE datname='bwc' AND pg_get_userbyid(datdba) = 'bwc_owner'" | grep -q 1; then return; fi
	log "handing the database bwc over to bwc_owner"
	psql_su -d bwc >/dev/null <<-'EOT'
	ALTER DATABASE bwc OWNER TO bwc_owner;
	SELECT format('ALTER TABLE public.%I OWNER TO bwc_owner', tablename) FROM pg_tables WHERE schemaname = 'public' \gexec
	SELECT format('ALTER SEQUENCE public.%I OWNER TO bwc_owner', sequencename) FROM pg_sequences
	 WHERE schemaname = 'public' AND sequenceowner <> 'bwc_owner' \gexec
	SELECT format('ALTER FUNCTION %s OWNER TO bwc_owner', p.oid::regprocedure) FROM pg_proc p
	 JOIN pg_namespace n ON n.oid = p.pronamespace
	 WHERE n.nspname = 'public' AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = p.oid AND d.deptype = 'e') \gexec
	ALTER DEFAULT PRIVILEGES FOR ROLE bwc_owner IN SCHEMA public GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO bwc_app;
	ALTER DEFAULT PRIVILEGES FOR ROLE bwc_owner IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO bwc_app;
	EOT
}

pg_down() {
	local bin; bin="$(pg_bindir)"
	if [ -n "$bin" ] && [ -f "$PGDIR/data/PG_VERSION" ]; then
		runuser -u postgres -- "$bin/pg_ctl" -D "$PGDIR/data" -m fast stop >/dev/null 2>&1 && log "PostgreSQL stopped" || true
	fi
}

minio_live() { curl -fsS -o /dev/null "http://127.0.0.1:$BWC_MINIO_PORT/minio/health/live" 2>/dev/null; }

minio_up() {
	mkdir -p "$MINIODIR/data"
	if minio_live; then log "MinIO already running on 127.0.0.1:$BWC_MINIO_PORT"; return; fi
	log "starting MinIO on 127.0.0.1:$BWC_MINIO_PORT"
	MINIO_ROOT_USER="$BWC_MINIO_USER" MINIO_ROOT_PASSWORD="$BWC_MINIO_PASSWORD" MINIO_BROWSER=off \
		setsid nohup "$MINIO_BIN" server "$MINIODIR/data" --quiet \
		--address "127.0.0.1:$BWC_MINIO_PORT" --console-address "127.0.0.1:$BWC_MINIO_CONSOLE_PORT" \
		>"$MINIODIR/minio.log" 2>&1 </dev/null &
	echo $! >"$MINIODIR/minio.pid"
	for _ in $(seq 1 100); do
		if minio_live; then return; fi
		sleep 0.2
	done
	log "MinIO did not become live; its log:"; tail -n 20 "$MINIODIR/minio.log" >&2; exit 1
}

minio_down() {
	if [ -f "$MINIODIR/minio.pid" ]; then
		kill "$(cat "$MINIODIR/minio.pid")" 2>/dev/null && log "MinIO stopped" || true
		rm -f "$MINIODIR/minio.pid"
	fi
}

# the least-privilege MinIO identities (bwc setup-storage, with the root
# user's keys, which only this script holds): the server's on the demo
# bucket, and the tests' on every bucket named t-* (each test creates its
# own bucket as the root user and works in it as this user)
minio_setup() {
	log "building bwc (for bwc setup-storage)"
	(cd "$REPO" && go build -o "$BWC_STATE_DIR/bwc" ./cmd/bwc)
	local admin=(-s3-endpoint "127.0.0.1:$BWC_MINIO_PORT" -s3-admin-access-key "$BWC_MINIO_USER" -s3-admin-secret-key "$BWC_MINIO_PASSWORD")
	env -u BWC_S3_ACCESS_KEY -u BWC_S3_SECRET_KEY -u BWC_S3_BUCKET "$BWC_STATE_DIR/bwc" setup-storage "${admin[@]}" \
		-s3-bucket bwc-evidence -s3-access-key "$BWC_S3_SERVER_USER" -s3-secret-key "$BWC_S3_SERVER_PASSWORD" >&2
	env -u BWC_S3_ACCESS_KEY -u BWC_S3_SECRET_KEY -u BWC_S3_BUCKET "$BWC_STATE_DIR/bwc" setup-storage "${admin[@]}" \
		-s3-bucket "" -s3-policy-buckets 't-*' -s3-access-key "$BWC_S3_TEST_USER" -s3-secret-key "$BWC_S3_TEST_PASSWORD" >&2
}

# The distributed MinIO: 4 processes with a drive each, erasure-coded (the
# production layout, README "Distributed MinIO"), on ports
# BWC_MINIO_DIST_PORT..+3. MinIO refuses 127.0.0.1 in a container ("resolves
# to localhost in a containerized deployment"), so it listens on the
# machine's own address; MINIO_CI_CD=1 lets it use drives on the root disk.
# Every process gets the same endpoint list.
dist_ip() { hostname -I | awk '{print $1}'; }
dist_endpoint() { echo "$(dist_ip):$BWC_MINIO_DIST_PORT"; }
dist_healthy() { curl -fsS -o /dev/null "http://$(dist_endpoint)/minio/health/cluster" 2>/dev/null; }

minio_dist_up() {
	local ip; ip="$(dist_ip)"
	if dist_healthy; then log "distributed MinIO already running on $ip:$BWC_MINIO_DIST_PORT-$((BWC_MINIO_DIST_PORT + 3))"; return; fi
	local eps=() i
	for i in 0 1 2 3; do eps+=("http://$ip:$((BWC_MINIO_DIST_PORT + i))$DISTDIR/p$((i + 1))"); done
	log "starting a 4-drive distributed MinIO on $ip:$BWC_MINIO_DIST_PORT-$((BWC_MINIO_DIST_PORT + 3))"
	for i in 0 1 2 3; do
		mkdir -p "$DISTDIR/p$((i + 1))"
		MINIO_CI_CD=1 MINIO_ROOT_USER="$BWC_MINIO_USER" MINIO_ROOT_PASSWORD="$BWC_MINIO_PASSWORD" MINIO_BROWSER=off \
			setsid nohup "$MINIO_BIN" server --quiet --address "$ip:$((BWC_MINIO_DIST_PORT + i))" \
			--console-address "127.0.0.1:$((BWC_MINIO_DIST_CONSOLE_PORT + i))" "${eps[@]}" \
			>"$DISTDIR/minio$((i + 1)).log" 2>&1 </dev/null &
		echo $! >"$DISTDIR/minio$((i + 1)).pid"
	done
	# the drives find each other and form the erasure set: about 20 s
	for _ in $(seq 1 300); do
		if dist_healthy; then return; fi
		sleep 0.2
	done
	log "the distributed MinIO did not become healthy; its logs:"; tail -n 10 "$DISTDIR"/minio*.log >&2; exit 1
}

minio_dist_down() {
	local f
	for f in "$DISTDIR"/minio*.pid; do
		[ -f "$f" ] || continue
		kill "$(cat "$f")" 2>/dev/null || true
		rm -f "$f"
	done
	log "distributed MinIO stopped"
}

# the tests' least-privilege user on the distributed MinIO, as on the single
# one (the same keys, buckets t-*)
minio_dist_setup() {
	(cd "$REPO" && go build -o "$BWC_STATE_DIR/bwc" ./cmd/bwc)
	env -u BWC_S3_ACCESS_KEY -u BWC_S3_SECRET_KEY -u BWC_S3_BUCKET "$BWC_STATE_DIR/bwc" setup-storage \
		-s3-endpoint "$(dist_endpoint)" -s3-admin-access-key "$BWC_MINIO_USER" -s3-admin-secret-key "$BWC_MINIO_PASSWORD" \
		-s3-bucket "" -s3-policy-buckets 't-*' -s3-access-key "$BWC_S3_TEST_USER" -s3-secret-key "$BWC_S3_TEST_PASSWORD" >&2
}

print_env() {
	cat <<EOT
export BWC_DATABASE_URL='postgres://bwc_app:$BWC_DB_APP_PASSWORD@127.0.0.1:$BWC_PG_PORT/bwc?sslmode=disable'
export BWC_OWNER_DATABASE_URL='postgres://bwc_owner:$BWC_DB_OWNER_PASSWORD@127.0.0.1:$BWC_PG_PORT/bwc?sslmode=disable'
export BWC_S3_ENDPOINT='127.0.0.1:$BWC_MINIO_PORT'
export BWC_S3_ACCESS_KEY='$BWC_S3_SERVER_USER'
export BWC_S3_SECRET_KEY='$BWC_S3_SERVER_PASSWORD'
export BWC_TEST_DATABASE_URL='postgres://postgres@127.0.0.1:$BWC_PG_PORT/postgres?sslmode=disable'
export BWC_TEST_DATABASE_OWNER_URL='postgres://bwc_owner:$BWC_DB_OWNER_PASSWORD@127.0.0.1:$BWC_PG_PORT/postgres?sslmode=disable'
export BWC_TEST_DATABASE_APP_URL='postgres://bwc_app:$BWC_DB_APP_PASSWORD@127.0.0.1:$BWC_PG_PORT/postgres?sslmode=disable'
export BWC_TEST_S3_ENDPOINT='127.0.0.1:$BWC_MINIO_PORT'
export BWC_TEST_S3_ACCESS_KEY='$BWC_S3_TEST_USER'
export BWC_TEST_S3_SECRET_KEY='$BWC_S3_TEST_PASSWORD'
export BWC_TEST_S3_ADMIN_ACCESS_KEY='$BWC_MINIO_USER'
export BWC_TEST_S3_ADMIN_SECRET_KEY='$BWC_MINIO_PASSWORD'
export BWC_TEST_MINIO_BIN='$MINIO_BIN'
export BWC_TEST_PG_BINDIR='$(pg_bindir)'
EOT
	# the cluster test's distributed MinIO (same keys), when it runs
	if dist_healthy; then echo "export BWC_TEST_S3_DIST_ENDPOINT='$(dist_endpoint)'"; fi
}

# staticcheck, pinned: the same findings on every machine.
STATICCHECK_VERSION="v0.8.2"
STATICCHECK_BIN="$BWC_STATE_DIR/bin/staticcheck"

install_staticcheck() {
	if [ -x "$STATICCHECK_BIN" ] && "$STATICCHECK_BIN" -version | grep -qF "(${STATICCHECK_VERSION#v})"; then return; fi
	log "installing staticcheck $STATICCHECK_VERSION (go install, about 30 s, once)"
	mkdir -p "$(dirname "$STATICCHECK_BIN")"
	(cd /tmp && GOBIN="$(dirname "$STATICCHECK_BIN")" GOFLAGS=-buildvcs=false go install "honnef.co/go/tools/cmd/staticcheck@${STATICCHECK_VERSION}")
}

install_tools() {
	install_staticcheck
	local pkgs=()
	command -v ffmpeg >/dev/null || pkgs+=(ffmpeg)
	[ -x /usr/bin/chromium ] || pkgs+=(chromium)
	command -v haproxy >/dev/null || [ -x /usr/sbin/haproxy ] || pkgs+=(haproxy) # the cluster test's RTSP balancer
	command -v node >/dev/null || pkgs+=(nodejs npm)
	if [ ${#pkgs[@]} -gt 0 ]; then apt_install "${pkgs[@]}"; fi
	if [ ! -d "$REPO/web/e2e/node_modules/playwright-core" ]; then
		log "npm ci (playwright-core; no browser download)"
		(cd "$REPO/web/e2e" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error >/dev/null)
	fi
}

case "${1:-up}" in
up)
	install_postgres
	install_minio
	pg_up
	minio_up
	minio_setup
	pg_hba
	pg_roles
	pg_database
	print_env >"$BWC_STATE_DIR/env"
	log "PostgreSQL: 127.0.0.1:$BWC_PG_PORT database bwc: server login bwc_app, schema owner bwc_owner (bwc migrate) (log $PGDIR/pg.log)"
	log "MinIO:      http://127.0.0.1:$BWC_MINIO_PORT server user $BWC_S3_SERVER_USER, root user $BWC_MINIO_USER for bwc setup-storage only (log $MINIODIR/minio.log)"
	log "environment: source $BWC_STATE_DIR/env"
	;;
down)
	minio_dist_down
	minio_down
	pg_down
	;;
dist-up)
	install_minio
	minio_dist_up
	minio_dist_setup
	if [ -f "$BWC_STATE_DIR/env" ]; then print_env >"$BWC_STATE_DIR/env"; fi
	log "distributed MinIO: http://$(dist_endpoint) (4 drives, logs $DISTDIR/minio*.log); BWC_TEST_S3_DIST_ENDPOINT in $BWC_STATE_DIR/env"
	;;
dist-down)
	minio_dist_down
	if [ -f "$BWC_STATE_DIR/env" ]; then print_env >"$BWC_STATE_DIR/env"; fi
	;;
env) print_env ;;
tools) install_tools ;;
*) echo "usage: $0 up|down|dist-up|dist-down|env|tools" >&2; exit 2 ;;
esac
