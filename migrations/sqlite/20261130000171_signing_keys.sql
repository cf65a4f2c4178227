-- The tester's own DKIM keys, by name, kept here when no key file is configured and the
-- database is shared (PostgreSQL), so that every instance signs with the same key and the
-- operator publishes one record. The first instance to start makes the key; the others read
-- it (INSERT ... ON CONFLICT DO NOTHING, then SELECT).
CREATE TABLE signing_keys (
    name       TEXT    PRIMARY KEY,
    pem        TEXT    NOT NULL,
    created_at INTEGER NOT NULL
);
