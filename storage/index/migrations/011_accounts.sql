-- Accounts (issue 15).
--
-- API tokens expire (expires_at, from -token-ttl or a shorter ttl asked at
-- creation), name their creator by user ID (created_by_id; created_by keeps
-- the login for reading) and are refused once that user is disabled, and
-- record their last use (last_used_at, written at most once a minute per
-- token). Tokens issued before this migration have no expiry and are
-- refused: issue new ones. Their creator is resolved from the login where
-- it still names a user.
ALTER TABLE api_tokens
    ADD COLUMN IF NOT EXISTS created_by_id uuid REFERENCES users (id),
    ADD COLUMN IF NOT EXISTS expires_at    timestamptz,
    ADD COLUMN IF NOT EXISTS last_used_at  timestamptz;
UPDATE api_tokens t SET created_by_id = u.id FROM users u
    WHERE t.created_by_id IS NULL AND u.login = t.created_by;
CREATE INDEX IF NOT EXISTS api_tokens_creator ON api_tokens (created_by_id) WHERE revoked_at IS NULL;

-- An administrator's password reset forces a change at the next login:
-- until then the user's session reaches only the session, the password
-- change and logout.
ALTER TABLE users ADD COLUMN IF NOT EXISTS must_change_password boolean NOT NULL DEFAULT false;

-- The four-eyes rule of exports compares user IDs, not logins: a second
-- login or an API token of the requester is the requester. Rows from before
-- are resolved from the login where it still names a user.
ALTER TABLE exports
    ADD COLUMN IF NOT EXISTS requested_by_id uuid REFERENCES users (id),
    ADD COLUMN IF NOT EXISTS decided_by_id   uuid REFERENCES users (id);
UPDATE exports e SET requested_by_id = u.id FROM users u
    WHERE e.requested_by_id IS NULL AND u.login = e.requested_by;
ALTER TABLE exports DROP CONSTRAINT IF EXISTS exports_four_eyes_ids;
ALTER TABLE exports ADD CONSTRAINT exports_four_eyes_ids
    CHECK (decided_by_id IS NULL OR requested_by_id IS NULL OR decided_by_id <> requested_by_id);
