-- The object store's version ID of every evidence object, as returned when
-- it was written (storage/blob PutEvidence): init and media segments,
-- upload originals and export packages. NULL for rows written before.
-- Table-level grants to bwc_app (004) cover the new columns; the REVOKEs of
-- UPDATE and DELETE on the write-once tables stay.
ALTER TABLE init_segments ADD COLUMN version_id text;
ALTER TABLE segments ADD COLUMN version_id text;
ALTER TABLE uploads ADD COLUMN version_id text;
ALTER TABLE exports ADD COLUMN version_id text;
