-- usersync schema, version 2: a change feed for consumers that mirror the mirror, and views
-- for the questions admins ask in the sqlite3 shell.

-- Every write to a user (insert, update, deletion) takes the next number from this counter,
-- in the same transaction, so a consumer paging by change_seq never skips a change: the
-- single writer commits in counter order.
CREATE TABLE change_sequence (
  id       INTEGER PRIMARY KEY CHECK (id = 1),
  last_seq INTEGER NOT NULL
) STRICT;

ALTER TABLE users ADD COLUMN change_seq INTEGER;
ALTER TABLE deleted_users ADD COLUMN change_seq INTEGER;

-- Number the rows a version-1 database already has: users by id, then tombstones.
UPDATE users SET change_seq = id;
UPDATE deleted_users SET change_seq = base.max_id + numbered.n
FROM (SELECT clerk_id, row_number() OVER (ORDER BY deleted_at, clerk_id) AS n FROM deleted_users) AS numbered,
     (SELECT coalesce(max(id), 0) AS max_id FROM users) AS base
WHERE deleted_users.clerk_id = numbered.clerk_id;
INSERT INTO change_sequence (id, last_seq)
  VALUES (1, (SELECT coalesce(max(s), 0) FROM (SELECT max(change_seq) AS s FROM users
                                               UNION ALL SELECT max(change_seq) FROM deleted_users)));

CREATE UNIQUE INDEX users_change_seq ON users (change_seq);
CREATE UNIQUE INDEX deleted_users_change_seq ON deleted_users (change_seq);

-- A user with its key-value data as one JSON object.
CREATE VIEW user_profiles AS
SELECT u.clerk_id, u.email, u.first_name, u.last_name, u.role, u.status,
       u.created_at, u.updated_at, u.synced_at,
       (SELECT json_group_object(d.key, json(d.value)) FROM user_data AS d WHERE d.user_id = u.id) AS data
FROM users AS u;

-- Accepted deliveries, newest first, with what each did.
CREATE VIEW recent_deliveries AS
SELECT received_at, svix_id, event_type, clerk_id, outcome
FROM webhook_deliveries ORDER BY received_at DESC;

-- Genuine deliveries that could not be decoded (answered 400), newest first.
CREATE VIEW rejected_recent AS
SELECT received_at, svix_id, error, length(body) AS body_bytes, substr(body, 1, 120) AS body_start
FROM rejected_deliveries ORDER BY received_at DESC;

-- Deliveries per hour and outcome: is the provider sending, and is anything going wrong?
CREATE VIEW delivery_outcomes_by_hour AS
SELECT substr(received_at, 1, 13) || ':00Z' AS hour, event_type, outcome, count(*) AS deliveries
FROM webhook_deliveries GROUP BY hour, event_type, outcome ORDER BY hour DESC, event_type, outcome;
