-- Many nodes, one platform: background jobs claimed once and one signing
-- key. Every statement is re-runnable (a test rolls back and migrates
-- again).

-- an approved export is built by the node that claimed it: claimed_by
-- names the node, claimed_until is its lease (renewed while it builds);
-- another node takes the export over only once the lease has expired
ALTER TABLE exports ADD COLUMN IF NOT EXISTS claimed_by text;
ALTER TABLE exports ADD COLUMN IF NOT EXISTS claimed_until timestamptz;
CREATE INDEX IF NOT EXISTS exports_approved ON exports (requested_at) WHERE status = 'approved';

-- the platform's Ed25519 public key, registered by the first node: every
-- node must sign with it. One row; nodes may read and insert it, never
-- change or delete it (replacing the key is the operator's act, as the
-- schema owner).
CREATE TABLE IF NOT EXISTS platform_keys (
    one           boolean PRIMARY KEY DEFAULT true CHECK (one),
    public_key    bytea NOT NULL CHECK (length(public_key) = 32),
    registered_by text NOT NULL,
    registered_at timestamptz NOT NULL DEFAULT now()
);
REVOKE UPDATE, DELETE ON platform_keys FROM bwc_app;
GRANT SELECT, INSERT ON platform_keys TO bwc_app;
