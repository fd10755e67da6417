-- A recording continued on another node (issue 16): a camera that
-- reconnects to another node within the grace window continues the same
-- recording there. Each holder after the first writes a part of its own:
-- its own segment numbers and hash chain (storage/internal/chain), so that
-- what the previous holder still uploads never collides with it. Part 0
-- is the first holder's and has no row. Every statement is re-runnable.

-- released_at/grace_until: the holding node's camera disconnected at
-- released_at and the node waits for it until grace_until; within it
-- another node may take the recording over. Cleared when the camera is back.
ALTER TABLE recordings ADD COLUMN IF NOT EXISTS released_at timestamptz;
ALTER TABLE recordings ADD COLUMN IF NOT EXISTS grace_until timestamptz;

CREATE TABLE IF NOT EXISTS recording_parts (
    recording_id uuid NOT NULL REFERENCES recordings (id),
    part         integer NOT NULL CHECK (part >= 1),
    node_id      text NOT NULL CHECK (node_id <> ''), -- the node that took the recording over
    from_node    text NOT NULL DEFAULT '',            -- the node it took it from
    started_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (recording_id, part)
);

-- parts are evidence bookkeeping: written once, never changed
GRANT SELECT, INSERT ON recording_parts TO bwc_app;
REVOKE UPDATE, DELETE ON recording_parts FROM bwc_app;

-- a part whose node let the recording go (another node took it over) is
-- done once that node's spool has uploaded all of it (or at once when it
-- had nothing). A recording in parts is sealed only when every part but
-- the last is done: a node killed while holding it uploads its spool when
-- it starts again, and the seal must cover those segments.
CREATE TABLE IF NOT EXISTS recording_part_uploads (
    recording_id uuid NOT NULL REFERENCES recordings (id),
    part         integer NOT NULL CHECK (part >= 0),
    node_id      text NOT NULL CHECK (node_id <> ''),
    uploaded_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (recording_id, part)
);
GRANT SELECT, INSERT ON recording_part_uploads TO bwc_app;
REVOKE UPDATE, DELETE ON recording_part_uploads FROM bwc_app;
