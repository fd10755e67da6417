-- Footage recorded offline and uploaded (tus). An upload is a recording
-- with source 'upload' (so it is bound, linked and replayed like live
-- footage) plus what the file itself says. A phone has no device: the
-- recording's device becomes optional. Rows are written once.
ALTER TABLE recordings ALTER COLUMN device_id DROP NOT NULL;

CREATE TABLE uploads (
    id                 uuid PRIMARY KEY,
    recording_id       uuid NOT NULL UNIQUE REFERENCES recordings (id),
    tus_id             text NOT NULL UNIQUE,
    uploaded_by        text NOT NULL CHECK (uploaded_by <> ''),
    filename           text NOT NULL,
    size               bigint NOT NULL CHECK (size > 0),
    sha256             bytea NOT NULL UNIQUE CHECK (length(sha256) = 32), -- the same file is stored once
    object_key         text NOT NULL UNIQUE,
    container          text NOT NULL,
    video_codec        text NOT NULL DEFAULT '',
    audio_codec        text NOT NULL DEFAULT '',
    width              integer NOT NULL DEFAULT 0,
    height             integer NOT NULL DEFAULT 0,
    duration_ms        bigint NOT NULL DEFAULT 0,
    recorded_at        timestamptz NOT NULL,
    recorded_at_source text NOT NULL CHECK (recorded_at_source IN ('file', 'declared', 'upload')),
    fragmented         boolean NOT NULL,
    notes              text NOT NULL DEFAULT '',
    created_at         timestamptz NOT NULL DEFAULT now()
);
REVOKE UPDATE, DELETE ON uploads FROM bwc_app;
