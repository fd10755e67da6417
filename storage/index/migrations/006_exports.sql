-- Evidence exports for prosecutors: requested by a reviewer, approved (or
-- rejected) by someone else when approval is required, then built as a
-- signed package in the evidence bucket. History is kept: rows are never
-- deleted.
CREATE TABLE exports (
    id              uuid PRIMARY KEY,
    incident_id     uuid NOT NULL REFERENCES incidents (id),
    range_from      timestamptz,
    range_to        timestamptz,
    requested_by    text NOT NULL CHECK (requested_by <> ''),
    reason          text NOT NULL CHECK (reason <> ''),
    requested_at    timestamptz NOT NULL DEFAULT now(),
    status          text NOT NULL CHECK (status IN ('requested', 'approved', 'rejected', 'ready', 'failed')),
    decided_by      text,
    decided_at      timestamptz,
    decision_reason text NOT NULL DEFAULT '',
    object_key      text,
    sha256          bytea,
    size            bigint,
    error           text NOT NULL DEFAULT '',
    ready_at        timestamptz,
    CHECK (decided_by IS NULL OR decided_by <> requested_by),
    CHECK (range_to IS NULL OR range_from IS NULL OR range_to > range_from)
);
CREATE INDEX exports_incident ON exports (incident_id, requested_at);

-- incidents a user (reviewer) is granted, besides those of their unit.
CREATE TABLE incident_grants (
    incident_id uuid NOT NULL REFERENCES incidents (id),
    login       text NOT NULL,
    granted_by  text NOT NULL,
    granted_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (incident_id, login)
);
