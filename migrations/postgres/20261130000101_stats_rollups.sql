-- The rollups `/stats` reads instead of the results and the session log, kept up to date by
-- the transaction that stores each batch of results or sessions (see the store's `stats`
-- module). Hours and days are counted from 1970-01-01 00:00 UTC. The counts (hourly, daily, sessions,
-- replies) are kept 400 days beyond the results' retention, for the monthly history; the
-- names (hosts, senders) go with the results they came from.

-- Results per UTC hour, mailbox and verdict (the verdict's text, as shown).
CREATE TABLE stats_hourly (
    hour     BIGINT  NOT NULL,
    mailbox  TEXT    NOT NULL,
    verdict  TEXT    NOT NULL,
    messages BIGINT  NOT NULL,
    PRIMARY KEY (hour, mailbox, verdict)
);

-- Results per UTC day, mailbox and verdict (the history and the days, without reading hours).
CREATE TABLE stats_daily (
    day      BIGINT  NOT NULL,
    mailbox  TEXT    NOT NULL,
    verdict  TEXT    NOT NULL,
    messages BIGINT  NOT NULL,
    PRIMARY KEY (day, mailbox, verdict)
);

-- Results per UTC day, mailbox and client address, with a reverse DNS name it had and the
-- results by grade: ok (|OK|), partial (|~OK|) and problem (!! ... !!); a check@ result showing
-- two verdicts counts by the worse.
CREATE TABLE stats_hosts (
    day        BIGINT  NOT NULL,
    mailbox    TEXT    NOT NULL,
    client_ip  TEXT    NOT NULL,
    client_ptr TEXT,
    messages   BIGINT  NOT NULL,
    ok         BIGINT  NOT NULL,
    partial    BIGINT  NOT NULL,
    problem    BIGINT  NOT NULL,
    PRIMARY KEY (day, mailbox, client_ip)
);

-- Results per UTC day, mailbox and sender: kind 'address' (the MAIL FROM address lowercased,
-- '<>' for the null sender) or 'domain' (its domain), by grade as above.
CREATE TABLE stats_senders (
    day      BIGINT  NOT NULL,
    mailbox  TEXT    NOT NULL,
    kind     TEXT    NOT NULL,
    name     TEXT    NOT NULL,
    messages BIGINT  NOT NULL,
    ok       BIGINT  NOT NULL,
    partial  BIGINT  NOT NULL,
    problem  BIGINT  NOT NULL,
    PRIMARY KEY (day, mailbox, kind, name)
);

-- SMTP sessions per UTC day (of their start), and those given at least one 4xx or 5xx reply.
CREATE TABLE stats_sessions (
    day      BIGINT  NOT NULL PRIMARY KEY,
    sessions BIGINT  NOT NULL,
    refused  BIGINT  NOT NULL
);

-- The 4xx and 5xx replies per UTC day, code and enhanced status code ('' when none), and the
-- sessions that got them.
CREATE TABLE stats_replies (
    day      BIGINT  NOT NULL,
    code     BIGINT  NOT NULL,
    status   TEXT    NOT NULL,
    replies  BIGINT  NOT NULL,
    sessions BIGINT  NOT NULL,
    PRIMARY KEY (day, code, status)
);

-- What was stored before the rollups.
INSERT INTO stats_hourly (hour, mailbox, verdict, messages)
SELECT FLOOR(EXTRACT(EPOCH FROM received_at) / 3600)::BIGINT, mailbox, verdict, COUNT(*)
FROM results GROUP BY 1, 2, 3;

INSERT INTO stats_daily (day, mailbox, verdict, messages)
SELECT FLOOR(hour / 24.0)::BIGINT, mailbox, verdict, SUM(messages) FROM stats_hourly GROUP BY 1, 2, 3;

INSERT INTO stats_hosts (day, mailbox, client_ip, client_ptr, messages, ok, partial, problem)
SELECT FLOOR(EXTRACT(EPOCH FROM received_at) / 86400)::BIGINT, mailbox, client_ip,
       MAX(client_ptr), COUNT(*),
       SUM(CASE WHEN verdict NOT LIKE '%!!%' AND verdict NOT LIKE '%|~OK|%' THEN 1 ELSE 0 END),
       SUM(CASE WHEN verdict NOT LIKE '%!!%' AND verdict LIKE '%|~OK|%' THEN 1 ELSE 0 END),
       SUM(CASE WHEN verdict LIKE '%!!%' THEN 1 ELSE 0 END)
FROM results GROUP BY 1, 2, 3;

INSERT INTO stats_senders (day, mailbox, kind, name, messages, ok, partial, problem)
SELECT day, mailbox, kind, name, COUNT(*),
       SUM(CASE WHEN verdict NOT LIKE '%!!%' AND verdict NOT LIKE '%|~OK|%' THEN 1 ELSE 0 END),
       SUM(CASE WHEN verdict NOT LIKE '%!!%' AND verdict LIKE '%|~OK|%' THEN 1 ELSE 0 END),
       SUM(CASE WHEN verdict LIKE '%!!%' THEN 1 ELSE 0 END)
FROM (
    SELECT FLOOR(EXTRACT(EPOCH FROM received_at) / 86400)::BIGINT AS day, mailbox,
           'address' AS kind,
           CASE WHEN mail_from_lower = '' THEN '<>' ELSE mail_from_lower END AS name, verdict
    FROM results
    UNION ALL
    SELECT FLOOR(EXTRACT(EPOCH FROM received_at) / 86400)::BIGINT, mailbox,
           'domain', mail_from_domain, verdict
    FROM results WHERE mail_from_domain IS NOT NULL
) AS senders
GROUP BY 1, 2, 3, 4;

INSERT INTO stats_sessions (day, sessions, refused)
SELECT started_ms / 86400000, COUNT(*),
       SUM(CASE WHEN EXISTS (SELECT 1 FROM jsonb_array_elements(smtp_sessions.events::jsonb) AS event
                             WHERE (event ->> 'code')::INTEGER >= 400)
           THEN 1 ELSE 0 END)
FROM smtp_sessions GROUP BY 1;

INSERT INTO stats_replies (day, code, status, replies, sessions)
SELECT smtp_sessions.started_ms / 86400000, (event ->> 'code')::BIGINT,
       COALESCE(event ->> 'status', ''), COUNT(*), COUNT(DISTINCT smtp_sessions.seq)
FROM smtp_sessions, jsonb_array_elements(smtp_sessions.events::jsonb) AS event
WHERE (event ->> 'code')::INTEGER >= 400
GROUP BY 1, 2, 3;
