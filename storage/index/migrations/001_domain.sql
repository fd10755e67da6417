-- The domain every later part of the platform hangs off: who wears which
-- camera when, and which dispatch incidents they were sent to.
-- btree_gist lets exclusion constraints mix equality on ids with overlap on
-- time ranges, so the database itself refuses double check-outs.
CREATE EXTENSION IF NOT EXISTS btree_gist;

CREATE TABLE officers (
    id         uuid PRIMARY KEY,
    badge      text NOT NULL UNIQUE CHECK (badge <> ''),
    name       text NOT NULL CHECK (name <> ''),
    unit       text NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE devices (
    id         uuid PRIMARY KEY,
    -- the camera's own ID, as it appears in its RTSP path
    serial     text NOT NULL UNIQUE CHECK (serial ~ '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$'),
    model      text NOT NULL DEFAULT '',
    -- shared secret for RTSP digest authentication (digest needs the secret itself)
    secret     text NOT NULL CHECK (length(secret) >= 8),
    status     text NOT NULL DEFAULT 'active'
               CHECK (status IN ('active', 'disabled', 'lost', 'retired')),
    created_at timestamptz NOT NULL DEFAULT now()
);

-- officer X wears device Y over [checked_out_at, checked_in_at); open-ended while on shift.
CREATE TABLE checkouts (
    id             uuid PRIMARY KEY,
    device_id      uuid NOT NULL REFERENCES devices (id),
    officer_id     uuid NOT NULL REFERENCES officers (id),
    checked_out_at timestamptz NOT NULL,
    checked_in_at  timestamptz,
    CHECK (checked_in_at IS NULL OR checked_in_at >= checked_out_at),
    -- one wearer per device and one device per officer at any instant,
    -- which includes at most one open check-out of each.
    CONSTRAINT checkouts_device_overlap EXCLUDE USING gist
        (device_id WITH =, tstzrange(checked_out_at, checked_in_at, '[)') WITH &&),
    CONSTRAINT checkouts_officer_overlap EXCLUDE USING gist
        (officer_id WITH =, tstzrange(checked_out_at, checked_in_at, '[)') WITH &&)
);
CREATE UNIQUE INDEX checkouts_one_open_per_device ON checkouts (device_id) WHERE checked_in_at IS NULL;
CREATE UNIQUE INDEX checkouts_one_open_per_officer ON checkouts (officer_id) WHERE checked_in_at IS NULL;

CREATE TABLE incidents (
    id         uuid PRIMARY KEY,
    -- dispatch (110) incident number
    number     text NOT NULL UNIQUE CHECK (number <> ''),
    type       text NOT NULL DEFAULT '',
    address    text NOT NULL DEFAULT '',
    lat        double precision CHECK (lat BETWEEN -90 AND 90),
    lon        double precision CHECK (lon BETWEEN -180 AND 180),
    opened_at  timestamptz NOT NULL,
    closed_at  timestamptz,
    status     text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'closed')),
    created_at timestamptz NOT NULL DEFAULT now(),
    CHECK (closed_at IS NULL OR closed_at >= opened_at),
    CHECK ((lat IS NULL) = (lon IS NULL))
);

-- officer sent to an incident over [assigned_at, cleared_at) (dispatched → cleared).
CREATE TABLE assignments (
    id          uuid PRIMARY KEY,
    incident_id uuid NOT NULL REFERENCES incidents (id),
    officer_id  uuid NOT NULL REFERENCES officers (id),
    assigned_at timestamptz NOT NULL,
    cleared_at  timestamptz,
    CHECK (cleared_at IS NULL OR cleared_at >= assigned_at),
    CONSTRAINT assignments_overlap EXCLUDE USING gist
        (incident_id WITH =, officer_id WITH =, tstzrange(assigned_at, cleared_at, '[)') WITH &&)
);
CREATE INDEX assignments_officer ON assignments USING gist (officer_id, tstzrange(assigned_at, cleared_at, '[)'));

CREATE TABLE users (
    id            uuid PRIMARY KEY,
    login         text NOT NULL UNIQUE CHECK (login <> ''),
    password_hash text NOT NULL,
    role          text NOT NULL CHECK (role IN ('officer', 'supervisor', 'reviewer', 'admin')),
    officer_id    uuid REFERENCES officers (id),
    disabled      boolean NOT NULL DEFAULT false,
    created_at    timestamptz NOT NULL DEFAULT now()
);
