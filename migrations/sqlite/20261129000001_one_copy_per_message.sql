-- One stored copy of each raw message, however many tester mailboxes it was sent to: the
-- results of one message point at one row of `messages`. Existing raw messages move over
-- under their result's id, so every result stored before keeps its raw download.
CREATE TABLE messages (
    id      TEXT PRIMARY KEY,
    message BLOB NOT NULL
);

INSERT INTO messages (id, message) SELECT result_id, message FROM raw_messages;

-- SQLite cannot add a NOT NULL column without a default; the store always sets it.
ALTER TABLE results ADD COLUMN message_id TEXT REFERENCES messages (id);
UPDATE results SET message_id = id;
CREATE INDEX results_by_message ON results (message_id);

DROP TABLE raw_messages;

-- One row the readiness check rewrites through the store's writer: proof that a commit
-- still reaches the disk.
CREATE TABLE readiness_probe (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    written_at TEXT    NOT NULL
);
