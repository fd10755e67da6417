-- Positions of body cameras (GPS fixes): reported by the camera itself
-- (POST /api/devices/{serial}/positions, authenticated by its secret) or by
-- GB/T 28181 MobilePosition. Append-only for the server: a unit's track is
-- part of what happened. Every statement is re-runnable.
CREATE TABLE IF NOT EXISTS positions (
    device_id   uuid NOT NULL REFERENCES devices (id),
    at          timestamptz NOT NULL,                 -- when the fix was taken (the device's clock)
    received_at timestamptz NOT NULL DEFAULT now(),   -- when the platform stored it
    latitude    double precision NOT NULL CHECK (latitude BETWEEN -90 AND 90),
    longitude   double precision NOT NULL CHECK (longitude BETWEEN -180 AND 180),
    speed       double precision CHECK (speed >= 0 AND speed <= 1000),        -- km/h; NULL: not reported
    direction   double precision CHECK (direction >= 0 AND direction < 360),  -- degrees from north; NULL: not reported
    source      text NOT NULL CHECK (source IN ('api', 'gb28181'))
);
-- a track (one device over a period) and the latest fix of a device
CREATE INDEX IF NOT EXISTS positions_device_at ON positions (device_id, at);

-- the server appends and reads; it never rewrites a track
REVOKE UPDATE, DELETE, TRUNCATE ON positions FROM bwc_app;
GRANT SELECT, INSERT ON positions TO bwc_app;
