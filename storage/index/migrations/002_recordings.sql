-- A recording is one continuous stream from one device (continued across
-- short reconnects), bound to the officer wearing the device when it started
-- and linked to incidents. Segments, uploads and audit events come in later
-- migrations and refer to recordings(id).
CREATE TABLE recordings (
    id              uuid PRIMARY KEY,
    device_id       uuid NOT NULL REFERENCES devices (id),
    officer_id      uuid REFERENCES officers (id), -- NULL: unbound (device not checked out)
    source          text NOT NULL DEFAULT 'rtsp' CHECK (source IN ('rtsp', 'upload', 'whip', 'gb28181')),
    status          text NOT NULL DEFAULT 'live' CHECK (status IN ('live', 'reconnecting', 'ended')),
    started_at      timestamptz NOT NULL,
    ended_at        timestamptz,
    video_codec     text NOT NULL DEFAULT '',
    audio_codec     text NOT NULL DEFAULT '',
    width           integer NOT NULL DEFAULT 0,
    height          integer NOT NULL DEFAULT 0,
    -- camera clock minus server clock, from RTCP sender reports; NULL when unknown
    clock_offset_ms double precision,
    remote_addr     text NOT NULL DEFAULT '',
    created_at      timestamptz NOT NULL DEFAULT now(),
    CHECK (ended_at IS NULL OR ended_at >= started_at)
);
CREATE INDEX recordings_device ON recordings (device_id, started_at);
CREATE INDEX recordings_officer ON recordings (officer_id, started_at);
CREATE INDEX recordings_not_ended ON recordings (status) WHERE status <> 'ended';

-- media missing inside a recording (the 4G link dropped and the camera came back).
CREATE TABLE recording_gaps (
    recording_id uuid NOT NULL REFERENCES recordings (id),
    started_at   timestamptz NOT NULL,
    ended_at     timestamptz NOT NULL,
    reason       text NOT NULL DEFAULT 'reconnect',
    PRIMARY KEY (recording_id, started_at),
    CHECK (ended_at >= started_at)
);

-- links of recordings to incidents. History is kept: a link is ended
-- (unlinked_at), never deleted. method says how it was made.
CREATE TABLE recording_incidents (
    id           uuid PRIMARY KEY,
    recording_id uuid NOT NULL REFERENCES recordings (id),
    incident_id  uuid NOT NULL REFERENCES incidents (id),
    method       text NOT NULL CHECK (method IN ('auto', 'manual')),
    linked_by    text NOT NULL DEFAULT '', -- the user for manual links, the rule for automatic ones
    linked_at    timestamptz NOT NULL DEFAULT now(),
    unlinked_at  timestamptz,
    unlinked_by  text,
    reason       text NOT NULL DEFAULT ''
);
CREATE UNIQUE INDEX recording_incidents_active ON recording_incidents (recording_id, incident_id) WHERE unlinked_at IS NULL;
CREATE INDEX recording_incidents_incident ON recording_incidents (incident_id) WHERE unlinked_at IS NULL;

-- every change of a recording's officer binding, with who and when.
CREATE TABLE recording_bindings (
    id           uuid PRIMARY KEY,
    recording_id uuid NOT NULL REFERENCES recordings (id),
    officer_id   uuid REFERENCES officers (id),
    changed_by   text NOT NULL,
    changed_at   timestamptz NOT NULL DEFAULT now(),
    reason       text NOT NULL DEFAULT ''
);
