-- The self-checks: each message the tester sent itself through a real SMTP server, what
-- became of it and how long its result took to be stored. Times are seconds since the Unix
-- epoch (UTC), durations milliseconds; ok is 1 or 0. Purged with the results' retention.
CREATE TABLE self_checks (
    seq BIGSERIAL PRIMARY KEY,
    instance    TEXT    NOT NULL,
    target      TEXT    NOT NULL,
    started_at  BIGINT NOT NULL,
    ok          BIGINT NOT NULL,
    failed_step TEXT,
    failure     TEXT,
    tls         TEXT,
    duration_ms BIGINT,
    result_id   TEXT,
    verdicts    TEXT
);
CREATE INDEX self_checks_by_started_at ON self_checks (started_at);

-- One row per target and interval slot (start time divided by the interval): the instance
-- that inserts it runs that check, every other instance sharing the database skips it.
CREATE TABLE self_check_claims (
    target     TEXT    NOT NULL,
    slot       BIGINT NOT NULL,
    instance   TEXT    NOT NULL,
    claimed_at BIGINT NOT NULL,
    PRIMARY KEY (target, slot)
);
CREATE INDEX self_check_claims_by_claimed_at ON self_check_claims (claimed_at);
