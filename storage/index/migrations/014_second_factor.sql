-- A second factor for local accounts (index/mfa.go): a TOTP secret per user
-- (RFC 6238, SHA-1, 6 digits, 30 s) and single-use recovery codes.
--
-- The secret is sealed (AES-256-GCM, "v1:" + base64, the user's ID as
-- additional data) with a key bwc serve derives from its signing key
-- (index.SetSecretsKey): a copy of the database alone does not give the
-- codes. enabled_at is
-- NULL while an enrolment waits for its first code. last_step is the time
-- step (Unix time / 30) of the last accepted code: a code of that step or
-- an earlier one is refused (replay), decided by one conditional UPDATE so
-- that two logins racing with the same code cannot both pass.
-- Recovery codes are kept only as SHA-256 hashes (of the user's ID and the
-- code: random, 50 bits each); used_at marks the one use each is good for.
-- Re-runnable: every statement is idempotent.
CREATE TABLE IF NOT EXISTS user_totp (
    user_id    uuid PRIMARY KEY REFERENCES users (id),
    secret     text NOT NULL CHECK (secret <> ''),
    created_at timestamptz NOT NULL DEFAULT now(),
    enabled_at timestamptz,
    last_step  bigint
);

CREATE TABLE IF NOT EXISTS recovery_codes (
    user_id    uuid NOT NULL REFERENCES users (id),
    code_hash  bytea NOT NULL CHECK (length(code_hash) = 32),
    created_at timestamptz NOT NULL DEFAULT now(),
    used_at    timestamptz,
    PRIMARY KEY (user_id, code_hash)
);

-- the application's login reads and writes both (default privileges of
-- migration 004 cover new tables; said again for a database migrated by
-- another owner)
GRANT SELECT, INSERT, UPDATE, DELETE ON user_totp, recovery_codes TO bwc_app;
