-- Single sign-on with OpenID Connect. A user signed in through an
-- identity provider is found by the provider's (issuer, subject), never by
-- login: a local break-glass account of the same name is another user.
-- Such users have no local password (password_hash '!' matches nothing).
-- Every statement is re-runnable (a test rolls back and migrates again).
CREATE TABLE IF NOT EXISTS user_identities (
    issuer     text NOT NULL CHECK (issuer <> ''),
    subject    text NOT NULL CHECK (subject <> ''),
    user_id    uuid NOT NULL UNIQUE REFERENCES users (id),
    created_at timestamptz NOT NULL DEFAULT now(),
    last_login timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (issuer, subject)
);

-- how a session was started: 'password' (local account) or 'oidc' (the
-- identity provider did the authentication, its second factor included)
ALTER TABLE sessions ADD COLUMN IF NOT EXISTS method text NOT NULL DEFAULT 'password';
ALTER TABLE sessions DROP CONSTRAINT IF EXISTS sessions_method_check;
ALTER TABLE sessions ADD CONSTRAINT sessions_method_check CHECK (method IN ('password', 'oidc'));

-- sign-ins under way: the state (its SHA-256) names the row; the row binds
-- it to the browser's cookie (SHA-256) and keeps the nonce and the PKCE
-- verifier until the callback consumes it (single use) or it expires
CREATE TABLE IF NOT EXISTS oidc_logins (
    state_hash   bytea PRIMARY KEY,
    browser_hash bytea NOT NULL,
    nonce        text NOT NULL,
    verifier     text NOT NULL,
    expires_at   timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS oidc_logins_expiry ON oidc_logins (expires_at);
