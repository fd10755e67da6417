#!/usr/bin/env bash
# The main job: installs and starts what is missing (PostgreSQL, MinIO),
# builds bwc, applies the schema, seeds a demo officer, camera and incident,
# starts the server and a simulated body camera, and prints the supervisor
# page's URL. Ctrl-C stops the server and the camera (the services stay up;
# scripts/services.sh down stops them).
source "$(dirname "$0")/lib.sh"
cd "$REPO"

"$REPO/scripts/services.sh" up
command -v ffmpeg >/dev/null || apt_install ffmpeg # the simulated camera
# shellcheck disable=SC1091
source "$BWC_STATE_DIR/env"
export BWC_HTTP_ADDR="${BWC_HTTP_ADDR:-127.0.0.1:8080}"
export BWC_RTSP_ADDR="${BWC_RTSP_ADDR:-127.0.0.1:8554}"
export BWC_SPOOL_DIR="${BWC_SPOOL_DIR:-$BWC_STATE_DIR/spool}"
export BWC_UPLOAD_DIR="${BWC_UPLOAD_DIR:-$BWC_STATE_DIR/uploads}"
export BWC_SIGNING_KEY="${BWC_SIGNING_KEY:-$BWC_STATE_DIR/signing-key.pem}"
# the demo's evidence stays removable by the MinIO root user (governance);
# production keeps the default, compliance (README: production notes)
export BWC_RETENTION_MODE="${BWC_RETENTION_MODE:-governance}"

log "building bwc"
go build -pgo=cmd/bwc/bwc.pgo -o "$BWC_STATE_DIR/bwc" ./cmd/bwc # profile-guided (README, "Viewer load")
BWC="$BWC_STATE_DIR/bwc"

"$BWC" migrate -database-url "$BWC_OWNER_DATABASE_URL" # as the schema owner; the server logs in as bwc_app
"$BWC" seed-demo

# the demo accounts sign in with a password alone: the second factor the
# default requires of admins and supervisors is off here
"$BWC" serve -mfa-required-roles= &
SERVER=$!
trap 'kill $CAM $CAM2 $SERVER 2>/dev/null; pkill -f "live/DEMO-CAM-0" 2>/dev/null; wait 2>/dev/null' EXIT INT TERM
for _ in $(seq 1 100); do
	curl -fsS -o /dev/null "http://$BWC_HTTP_ADDR/readyz" && break
	sleep 0.2
done
# the simulated body cameras: ffmpeg publishing a test picture with a frame
# counter and a tone over TCP-interleaved RTSP with digest auth, restarted
# when they drop, like cameras on 4G. DEMO-CAM-01 sends H.264 + G.711 (its
# sound plays on the live wall), DEMO-CAM-02 H.264 + AAC (video only on the
# wall, as browsers cannot play AAC over WebRTC; its sound plays in replay).
camera() {
	while true; do
		ffmpeg -hide_banner -loglevel error -re \
			-f lavfi -i "testsrc2=size=640x360:rate=25" -f lavfi -i "sine=frequency=440:sample_rate=$2" \
			-c:v libx264 -preset ultrafast -tune zerolatency -profile:v baseline -pix_fmt yuv420p -g 25 -b:v 800k \
			$3 -f rtsp -rtsp_transport tcp "rtsp://$1:demo-camera-secret@$BWC_RTSP_ADDR/live/$1"
		sleep 2
	done
}
camera DEMO-CAM-01 8000 "-c:a pcm_alaw -ar 8000 -ac 1" &
CAM=$!
camera DEMO-CAM-02 48000 "-c:a aac" &
CAM2=$!

echo
echo "  Supervisor page: http://$BWC_HTTP_ADDR/"
echo "  Readiness:       http://$BWC_HTTP_ADDR/readyz"
echo "  Log in as supervisor / demo-supervisor-pass (also admin, reviewer, officer: demo-<role>-pass)"
echo "  WARNING: second factor not required (-mfa-required-roles=); production requires it of admins and supervisors"
echo "  (Ctrl-C to stop)"
echo
wait $SERVER
