-- The cluster-wide live view: every change of a live recording that the
-- wall shows (a recording starting, ending, reconnecting, moving to another
-- node, re-bound to an officer, linked to or unlinked from an incident) is
-- announced on the channel bwc_live, whichever node or job made it (the
-- ingest, a node ending a dead node's recordings, a supervisor's rebinding
-- on another node). Every node LISTENs and wakes its wall's event streams.
-- The payload is the recording's node ('' when none). Re-runnable.
CREATE OR REPLACE FUNCTION bwc_live_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_TABLE_NAME = 'recordings' THEN
        PERFORM pg_notify('bwc_live', coalesce(NEW.node_id, ''));
    ELSE
        PERFORM pg_notify('bwc_live', coalesce((SELECT r.node_id FROM recordings r WHERE r.id = NEW.recording_id), ''));
    END IF;
    RETURN NULL;
END $$;

DROP TRIGGER IF EXISTS recordings_live_notify_insert ON recordings;
CREATE TRIGGER recordings_live_notify_insert AFTER INSERT ON recordings
    FOR EACH ROW WHEN (NEW.source <> 'upload') EXECUTE FUNCTION bwc_live_notify();

DROP TRIGGER IF EXISTS recordings_live_notify_update ON recordings;
CREATE TRIGGER recordings_live_notify_update AFTER UPDATE ON recordings
    FOR EACH ROW WHEN (NEW.source <> 'upload' AND (OLD.status IS DISTINCT FROM NEW.status
        OR OLD.officer_id IS DISTINCT FROM NEW.officer_id OR OLD.node_id IS DISTINCT FROM NEW.node_id))
    EXECUTE FUNCTION bwc_live_notify();

DROP TRIGGER IF EXISTS recording_incidents_live_notify ON recording_incidents;
CREATE TRIGGER recording_incidents_live_notify AFTER INSERT OR UPDATE ON recording_incidents
    FOR EACH ROW EXECUTE FUNCTION bwc_live_notify();
