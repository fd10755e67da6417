-- The seals of ended recordings (storage/seal, written by the archive) in
-- the index: which object, at which version, vouches for a recording. A
-- row is written once, in the same transaction as the recording.sealed
-- audit event (index.RecordSeal), and never changed: the application may
-- only read and add rows, like segments. Legal hold covers the seal through
-- it (index.RecordingObjects).
--
-- "Not sealed yet" must not mean scanning every recording ever made: the
-- checkpointer asks every minute on every node, and a city's archive holds
-- about a million recordings after half a year. recordings.sealed is set
-- when the seal row is inserted (same transaction), and the partial index
-- recordings_unsealed holds only the live-archived recordings without a
-- seal: the live ones and the few ended ones waiting for theirs. It is
-- chosen over "ended in the last N hours" because a recording whose seal
-- is late for longer (its last segment stuck for a day, MinIO away over a
-- weekend, recordings archived before seals existed) must stay in the
-- checkpoints and in reconciliation's work list until it is sealed, however
-- long that takes. The flag is a work list, not evidence: verify reads the
-- seals in the bucket and names an ended recording without one whatever
-- the flag says. Left in the index for good: ended recordings that never
-- got a media segment (nothing to seal); they are few.
CREATE TABLE seals (
    recording_id uuid PRIMARY KEY REFERENCES recordings (id),
    object_key   text NOT NULL UNIQUE CHECK (object_key <> ''),
    version_id   text, -- NULL: the store returned none
    -- SHA-256 of the signed document; NULL for rows back-filled from the
    -- audit trail, whose events do not carry it
    sha256       bytea CHECK (sha256 IS NULL OR length(sha256) = 32),
    sealed_at    timestamptz NOT NULL DEFAULT now()
);
REVOKE UPDATE, DELETE ON seals FROM bwc_app;

-- the seals audited before this migration: details hold key and version_id
INSERT INTO seals (recording_id, object_key, version_id, sealed_at)
SELECT DISTINCT ON (a.recording_id) a.recording_id, a.details::jsonb ->> 'key',
       NULLIF(a.details::jsonb ->> 'version_id', ''), a.at
FROM audit_events a JOIN recordings r ON r.id = a.recording_id
WHERE a.action = 'recording.sealed' AND coalesce(a.details::jsonb ->> 'key', '') <> ''
ORDER BY a.recording_id, a.seq
ON CONFLICT DO NOTHING;

ALTER TABLE recordings ADD COLUMN sealed boolean NOT NULL DEFAULT false;
UPDATE recordings SET sealed = true WHERE id IN (SELECT recording_id FROM seals);
CREATE INDEX recordings_unsealed ON recordings (id) WHERE source = 'rtsp' AND NOT sealed;
