-- Accounts: login lockout, server-side sessions and API tokens for machine
-- clients. Secrets are stored only as SHA-256 hashes of random tokens.
ALTER TABLE users
    ADD COLUMN failed_logins integer NOT NULL DEFAULT 0,
    ADD COLUMN locked_until  timestamptz,
    ADD COLUMN unit          text NOT NULL DEFAULT '';

CREATE TABLE sessions (
    token_hash  bytea PRIMARY KEY,
    user_id     uuid NOT NULL REFERENCES users (id),
    csrf_token  text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    remote_addr text NOT NULL DEFAULT ''
);
CREATE INDEX sessions_user ON sessions (user_id);

CREATE TABLE api_tokens (
    id         uuid PRIMARY KEY,
    name       text NOT NULL CHECK (name <> ''),
    token_hash bytea NOT NULL UNIQUE,
    role       text NOT NULL CHECK (role IN ('officer', 'supervisor', 'reviewer', 'admin')),
    created_by text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    revoked_at timestamptz
);
