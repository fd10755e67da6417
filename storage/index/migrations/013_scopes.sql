-- Scopes of the authorization table (web/authz.go): the units a supervisor
-- oversees (empty: their own unit), and the indexes the scope filters of
-- listings use (recordings of officers of some units; incidents granted to
-- a login). Re-runnable: a test rolls back and migrates again.
ALTER TABLE users ADD COLUMN IF NOT EXISTS oversees text[] NOT NULL DEFAULT '{}';
CREATE INDEX IF NOT EXISTS officers_unit ON officers (unit);
CREATE INDEX IF NOT EXISTS incident_grants_login ON incident_grants (login, incident_id);
CREATE INDEX IF NOT EXISTS assignments_incident ON assignments (incident_id, officer_id);
