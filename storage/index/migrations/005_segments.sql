-- The evidence index of the archive: every init segment and media segment
-- of a recording as stored in the object store, with its SHA-256 and the
-- recording's hash chain, and the legal holds placed on recordings.
-- Rows are written once by the archive's uploader (INSERT ... ON CONFLICT
-- DO NOTHING) and never updated; `bwc verify` checks them against the
-- objects and the chain.

-- one fMP4 init segment (ftyp+moov) per codec configuration of a recording.
CREATE TABLE init_segments (
    recording_id uuid NOT NULL REFERENCES recordings (id),
    n            integer NOT NULL CHECK (n >= 0),
    object_key   text NOT NULL UNIQUE,
    sha256       bytea NOT NULL CHECK (length(sha256) = 32),
    size         bigint NOT NULL CHECK (size > 0),
    indexed_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (recording_id, n)
);

-- one fMP4 media segment (moof+mdat fragments), cut at a video keyframe.
-- chain = SHA-256(prev_chain || sha256 || seq || init || init_sha256 ||
-- started_at || ended_at || gap), see storage/chain.go.
CREATE TABLE segments (
    recording_id uuid NOT NULL REFERENCES recordings (id),
    seq          bigint NOT NULL CHECK (seq >= 0),
    init_n       integer NOT NULL,
    object_key   text NOT NULL UNIQUE,
    sha256       bytea NOT NULL CHECK (length(sha256) = 32),
    prev_chain   bytea NOT NULL CHECK (length(prev_chain) = 32),
    chain        bytea NOT NULL CHECK (length(chain) = 32),
    size         bigint NOT NULL CHECK (size > 0),
    started_at   timestamptz NOT NULL,
    ended_at     timestamptz NOT NULL,
    start_dts_ns bigint NOT NULL, -- on the recording's own timeline
    end_dts_ns   bigint NOT NULL,
    gap          boolean NOT NULL DEFAULT false, -- follows missing media (reconnect)
    recovered    boolean NOT NULL DEFAULT false, -- closed by spool recovery after a crash
    sealed_at    timestamptz NOT NULL,
    indexed_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (recording_id, seq),
    FOREIGN KEY (recording_id, init_n) REFERENCES init_segments (recording_id, n),
    CHECK (ended_at >= started_at),
    CHECK (end_dts_ns >= start_dts_ns)
);
CREATE INDEX segments_time ON segments (recording_id, started_at, ended_at);

-- legal holds on recordings. History is kept: a hold is released
-- (released_at, released_by, release_reason), never deleted.
CREATE TABLE legal_holds (
    id             uuid PRIMARY KEY,
    recording_id   uuid NOT NULL REFERENCES recordings (id),
    case_ref       text NOT NULL DEFAULT '',
    held_by        text NOT NULL CHECK (held_by <> ''),
    reason         text NOT NULL DEFAULT '',
    held_at        timestamptz NOT NULL DEFAULT now(),
    released_at    timestamptz,
    released_by    text,
    release_reason text,
    CHECK ((released_at IS NULL) = (released_by IS NULL)),
    CHECK (released_at IS NULL OR (released_by <> '' AND release_reason <> ''))
);
CREATE UNIQUE INDEX legal_holds_active ON legal_holds (recording_id) WHERE released_at IS NULL;

-- the index of stored evidence is write-once for the application: it may
-- add segments but never change or remove one (retention expiry is an
-- administrator's job under the login role).
REVOKE UPDATE, DELETE ON init_segments, segments FROM bwc_app;
