-- The application runs as the login bwc_app (created by the administrator,
-- see the README's production notes; created here without login when
-- missing). It may read and write the tables of the
-- platform, but on the audit trail it may only INSERT and SELECT: the
-- database itself refuses UPDATE, DELETE and TRUNCATE of audit events, and a
-- trigger refuses them for every role that has not disabled it. An edit made
-- with superuser rights breaks the hash chain, which `bwc verify -audit`
-- detects.
DO $$
BEGIN
    -- checked first: the schema owner migrating is not allowed to create roles
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'bwc_app') THEN
        CREATE ROLE bwc_app NOLOGIN;
    END IF;
EXCEPTION WHEN duplicate_object OR unique_violation THEN
    NULL; -- roles are cluster-wide: another database created it
END
$$;

GRANT USAGE ON SCHEMA public TO bwc_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO bwc_app;
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO bwc_app;
-- tables of later migrations (created by the migrating role) too
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO bwc_app;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO bwc_app;
REVOKE ALL ON schema_version FROM bwc_app;

CREATE TABLE audit_events (
    seq          bigint PRIMARY KEY CHECK (seq > 0), -- gapless, assigned under an advisory lock
    id           uuid NOT NULL UNIQUE,
    at           timestamptz NOT NULL,
    actor        text NOT NULL,            -- login, token:<name> or system
    role         text NOT NULL DEFAULT '',
    action       text NOT NULL,            -- e.g. recording.hold, live.view.start, api.change
    object_type  text NOT NULL DEFAULT '',
    object_id    text NOT NULL DEFAULT '',
    incident_id  uuid,
    recording_id uuid,
    remote_addr  text NOT NULL DEFAULT '',
    details      text NOT NULL DEFAULT '{}', -- canonical JSON as hashed (text, not jsonb: jsonb reorders)
    prev_hash    bytea NOT NULL,
    hash         bytea NOT NULL
);
CREATE INDEX audit_events_incident ON audit_events (incident_id, seq) WHERE incident_id IS NOT NULL;
CREATE INDEX audit_events_recording ON audit_events (recording_id, seq) WHERE recording_id IS NOT NULL;
CREATE INDEX audit_events_at ON audit_events (at);

REVOKE UPDATE, DELETE, TRUNCATE ON audit_events FROM bwc_app;
GRANT SELECT, INSERT ON audit_events TO bwc_app;

CREATE FUNCTION audit_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_events is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;
CREATE TRIGGER audit_events_no_update BEFORE UPDATE OR DELETE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION audit_events_append_only();
CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events
    FOR EACH STATEMENT EXECUTE FUNCTION audit_events_append_only();
