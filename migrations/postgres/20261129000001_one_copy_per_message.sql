-- One stored copy of each raw message, however many tester mailboxes it was sent to: the
-- results of one message point at one row of `messages`. Existing raw messages move over
-- under their result's id, so every result stored before keeps its raw download.
CREATE TABLE messages (
    id      TEXT  PRIMARY KEY,
    message BYTEA NOT NULL
);

INSERT INTO messages (id, message) SELECT result_id, message FROM raw_messages;

ALTER TABLE results ADD COLUMN message_id TEXT REFERENCES messages (id);
UPDATE results SET message_id = id;
ALTER TABLE results ALTER COLUMN message_id SET NOT NULL;
CREATE INDEX results_by_message ON results (message_id);

DROP TABLE raw_messages;

-- One row the readiness check rewrites: proof that a commit still succeeds.
CREATE TABLE readiness_probe (
    id         INTEGER     PRIMARY KEY CHECK (id = 1),
    written_at TIMESTAMPTZ NOT NULL
);
