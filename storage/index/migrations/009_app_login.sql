-- bwc_app is the server's own login (scripts/services.sh, README production
-- notes), no longer a role that a superuser login SET ROLEs to: so that it
-- can check at start that the schema is the one it was built for, it may
-- read (only read) the migrations' bookkeeping.
GRANT SELECT ON schema_version TO bwc_app;
