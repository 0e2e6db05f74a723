-- usersync schema, version 3: a row that each readiness probe (/readyz) rewrites.
--
-- The probe must commit a transaction that really writes a page, or it cannot notice a
-- read-only filesystem or a failing device: SQLite writes nothing for an UPDATE that leaves a
-- row as it was, which is what version 2's probe of change_sequence did. Counting the probes
-- makes every one a change, and tells an admin in the shell how often the service is probed.
CREATE TABLE readiness_probe (
  id     INTEGER PRIMARY KEY CHECK (id = 1),
  probes INTEGER NOT NULL
) STRICT;

INSERT INTO readiness_probe (id, probes) VALUES (1, 0);
