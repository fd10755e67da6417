-- Several bwc serve nodes on one PostgreSQL. Each node registers its row at
-- start (its name is the -node setting) and heartbeats; a node whose
-- heartbeat is older than the live nodes' -node-dead-after is dead, and
-- only then are its recordings ended by a live node. Every statement is
-- re-runnable (a test rolls back and migrates again).
CREATE TABLE IF NOT EXISTS nodes (
    id           text PRIMARY KEY CHECK (id <> ''),
    rtsp_addr    text NOT NULL DEFAULT '',  -- where cameras reach it (host:port)
    http_addr    text NOT NULL DEFAULT '',  -- its API and pages
    webrtc_addr  text NOT NULL DEFAULT '',  -- its WebRTC (ICE) addresses
    capacity     integer NOT NULL DEFAULT 0 CHECK (capacity >= 0), -- cameras it takes; 0: not said
    version      text NOT NULL DEFAULT '',
    start_token  uuid NOT NULL,             -- the running process's: a heartbeat with another token is refused
    started_at   timestamptz NOT NULL DEFAULT now(),
    heartbeat_at timestamptz NOT NULL DEFAULT now()
);

-- the node that holds a live recording (set when it starts; NULL: written
-- by a single node before this migration, or an upload)
ALTER TABLE recordings ADD COLUMN IF NOT EXISTS node_id text;
CREATE INDEX IF NOT EXISTS recordings_live_node ON recordings (node_id) WHERE status <> 'ended';

-- one live recording per device across the nodes. Recordings a crashed
-- single node left open are ended first (at their last archived segment,
-- as a node's start did), except the newest of each device.
UPDATE recordings r SET status = 'ended',
    ended_at = greatest(r.started_at, coalesce((SELECT max(s.ended_at) FROM segments s WHERE s.recording_id = r.id), r.started_at))
WHERE r.source = 'rtsp' AND r.status <> 'ended' AND r.device_id IS NOT NULL
  AND EXISTS (SELECT 1 FROM recordings n WHERE n.device_id = r.device_id AND n.source = 'rtsp' AND n.status <> 'ended'
              AND (n.started_at, n.id) > (r.started_at, r.id));
CREATE UNIQUE INDEX IF NOT EXISTS recordings_one_live_per_device ON recordings (device_id)
    WHERE status <> 'ended' AND source = 'rtsp';
