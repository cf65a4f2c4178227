-- Mail the tester sends to others (replies by mail, weekly summaries): the queue, each
-- delivery attempt, and the decision taken for each tested message. Times are seconds since
-- the Unix epoch (UTC). Purged with the results' retention (queued messages excepted).

-- One row per message to send. state: queued, sent, failed. A worker owns a queued row
-- while claimed_until is in the future, so instances sharing a database never send it twice.
CREATE TABLE outgoing (
    seq BIGSERIAL PRIMARY KEY,
    id               TEXT    NOT NULL UNIQUE,
    kind             TEXT    NOT NULL,
    recipient        TEXT    NOT NULL,
    recipient_domain TEXT    NOT NULL,
    client           TEXT    NOT NULL,
    message          BYTEA   NOT NULL,
    created_at       BIGINT  NOT NULL,
    give_up_at       BIGINT  NOT NULL,
    next_attempt_at  BIGINT  NOT NULL,
    attempts         BIGINT  NOT NULL DEFAULT 0,
    state            TEXT    NOT NULL,
    claimed_by       TEXT    NOT NULL DEFAULT '',
    claimed_until    BIGINT  NOT NULL DEFAULT 0
);
CREATE INDEX outgoing_due ON outgoing (state, next_attempt_at);
CREATE INDEX outgoing_by_recipient ON outgoing (recipient, created_at);
CREATE INDEX outgoing_by_domain ON outgoing (recipient_domain, created_at);
CREATE INDEX outgoing_by_client ON outgoing (client, created_at);
CREATE INDEX outgoing_by_created_at ON outgoing (created_at);

-- Each delivery attempt: the server tried, the step that failed and its reply, TLS.
CREATE TABLE outgoing_attempts (
    seq BIGSERIAL PRIMARY KEY,
    outgoing_id TEXT    NOT NULL,
    at          BIGINT  NOT NULL,
    ok          BIGINT  NOT NULL,
    server      TEXT    NOT NULL,
    step        TEXT,
    detail      TEXT    NOT NULL,
    tls         TEXT
);
CREATE INDEX outgoing_attempts_by_message ON outgoing_attempts (outgoing_id, seq);
CREATE INDEX outgoing_attempts_by_at ON outgoing_attempts (at);

-- Whether each tested message got a reply: the queued reply, or why not.
CREATE TABLE reply_decisions (
    result_id  TEXT    PRIMARY KEY,
    decided_at BIGINT  NOT NULL,
    reply_id   TEXT,
    no_reply   TEXT
);
CREATE INDEX reply_decisions_by_decided_at ON reply_decisions (decided_at);

-- One row, updated first by every reply decision: it serializes the decisions of all
-- instances sharing the database, so that the rate limits count every reply queued before.
CREATE TABLE outgoing_lock (
    id BIGINT PRIMARY KEY,
    decisions BIGINT  NOT NULL
);
INSERT INTO outgoing_lock (id, decisions) VALUES (1, 0);
