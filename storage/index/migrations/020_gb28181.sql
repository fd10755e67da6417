-- GB/T 28181 device access. A device may register over SIP with its 20-digit
-- GB/T 28181 device ID (the SIP user; its password is the device's secret)
-- and a transport preference for its media (tcp: the device connects to the
-- platform, the case behind a carrier's NAT; udp). Every statement is
-- re-runnable (a test rolls back and migrates again).
ALTER TABLE devices ADD COLUMN IF NOT EXISTS gb_id text;
ALTER TABLE devices ADD COLUMN IF NOT EXISTS gb_transport text NOT NULL DEFAULT 'tcp';
DO $$ BEGIN
    ALTER TABLE devices ADD CONSTRAINT devices_gb_id_format CHECK (gb_id ~ '^[0-9]{20}$');
EXCEPTION WHEN duplicate_object THEN NULL; END $$;
DO $$ BEGIN
    ALTER TABLE devices ADD CONSTRAINT devices_gb_transport CHECK (gb_transport IN ('tcp', 'udp'));
EXCEPTION WHEN duplicate_object THEN NULL; END $$;
CREATE UNIQUE INDEX IF NOT EXISTS devices_gb_id ON devices (gb_id);

-- one live recording per device over every live source: a device that
-- publishes over RTSP and registers over GB/T 28181 still has one live
-- recording. Live recordings a crashed node left open are ended first (at
-- their last archived segment), except the newest of each device.
UPDATE recordings r SET status = 'ended',
    ended_at = greatest(r.started_at, coalesce((SELECT max(s.ended_at) FROM segments s WHERE s.recording_id = r.id), r.started_at))
WHERE r.source IN ('rtsp', 'gb28181') AND r.status <> 'ended' AND r.device_id IS NOT NULL
  AND EXISTS (SELECT 1 FROM recordings n WHERE n.device_id = r.device_id AND n.source IN ('rtsp', 'gb28181') AND n.status <> 'ended'
              AND (n.started_at, n.id) > (r.started_at, r.id));
DROP INDEX IF EXISTS recordings_one_live_per_device;
CREATE UNIQUE INDEX recordings_one_live_per_device ON recordings (device_id)
    WHERE status <> 'ended' AND source IN ('rtsp', 'gb28181');
