-- Upload file names are sanitised once, on arrival (ingest/upload
-- names.go): uploads.filename is the clean name every later use sees (the
-- index, the export package's entry name, a download's
-- Content-Disposition); the name as the client gave it is kept only here,
-- for the record.
--
-- Re-runnable (a test rolls the schema back and migrates again): the
-- column is added once and the back-fill touches only rows not filled yet.
ALTER TABLE uploads ADD COLUMN IF NOT EXISTS original_name text NOT NULL DEFAULT '';

-- rows written before: what they stored is what they were given (a
-- directory part already cut off)
UPDATE uploads SET original_name = filename WHERE original_name = '';

-- and those names are made safe for the packages by the rules of names.go
-- that matter there: no path separators, control or format characters, no
-- leading dots, nothing Windows refuses in a file name; empty: "upload"
UPDATE uploads SET filename = coalesce(nullif(
        ltrim(regexp_replace(filename, '[/\\<>:"|?*[:cntrl:]\u200b-\u200f\u202a-\u202e\u2060-\u2064\ufeff]', '_', 'g'), '. '),
        ''), 'upload')
WHERE filename ~ '[/\\<>:"|?*[:cntrl:]\u200b-\u200f\u202a-\u202e\u2060-\u2064\ufeff]' OR filename ~ '^[. ]' OR filename = '';
