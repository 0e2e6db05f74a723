-- usersync schema, version 1: the mirror of the identity provider's users.
-- Times are ISO-8601 UTC text ("2025-01-01T00:00:00.123Z") so they read well in the sqlite3
-- shell and sort as text; the provider's ordering key is also kept as integer milliseconds.

-- One row per live identity-provider user.
CREATE TABLE users (
  id                   INTEGER PRIMARY KEY,
  clerk_id             TEXT    NOT NULL UNIQUE,
  email                TEXT,    -- the primary email address (primary_email_address_id)
  first_name           TEXT,
  last_name            TEXT,
  role                 TEXT    NOT NULL DEFAULT 'user',  -- public_metadata.role, else 'user'
  status               TEXT    NOT NULL DEFAULT 'active'
                               CHECK (status IN ('active', 'banned', 'locked')),
  created_at           TEXT    NOT NULL,  -- the provider's created_at
  updated_at           TEXT    NOT NULL,  -- the provider's updated_at
  provider_updated_ms  INTEGER NOT NULL,  -- updated_at in ms: events older than this are stale
  synced_at            TEXT    NOT NULL,  -- when usersync last wrote this row
  clerk_json           TEXT    NOT NULL CHECK (json_valid(clerk_json))  -- the latest full user object
) STRICT;
CREATE INDEX users_email ON users (email COLLATE NOCASE);

-- Key-value data per user; values are JSON. Deleted with the user.
CREATE TABLE user_data (
  user_id    INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  key        TEXT    NOT NULL,
  value      TEXT    NOT NULL CHECK (json_valid(value)),
  updated_at TEXT    NOT NULL,
  PRIMARY KEY (user_id, key)
) STRICT, WITHOUT ROWID;

-- Users deleted at the provider. A tombstone keeps a late user.created/user.updated for the
-- same id from bringing the user back (Clerk never reuses ids).
CREATE TABLE deleted_users (
  clerk_id   TEXT PRIMARY KEY,
  deleted_at TEXT NOT NULL,  -- when usersync applied the deletion
  svix_id    TEXT NOT NULL   -- the delivery that deleted it
) STRICT, WITHOUT ROWID;

-- Every accepted delivery, by its svix-id, so a redelivery changes nothing.
-- Pruned after the configured retention (longer than the sender retries).
CREATE TABLE webhook_deliveries (
  svix_id     TEXT PRIMARY KEY,
  event_type  TEXT NOT NULL,
  clerk_id    TEXT,
  outcome     TEXT NOT NULL CHECK (outcome IN ('applied', 'stale', 'ignored')),
  received_at TEXT NOT NULL
) STRICT, WITHOUT ROWID;
CREATE INDEX webhook_deliveries_received_at ON webhook_deliveries (received_at);

-- Genuine (correctly signed) deliveries that could not be decoded: answered 400, applied to
-- no user, kept here so an admin can see what the provider sent and why it was refused.
CREATE TABLE rejected_deliveries (
  id          INTEGER PRIMARY KEY,
  svix_id     TEXT NOT NULL,
  received_at TEXT NOT NULL,
  error       TEXT NOT NULL,
  body        TEXT NOT NULL
) STRICT;
CREATE INDEX rejected_deliveries_received_at ON rejected_deliveries (received_at);
