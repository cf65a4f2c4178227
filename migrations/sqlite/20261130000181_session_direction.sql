-- The session log also keeps the tester's own outgoing SMTP sessions (replies by mail, weekly
-- summaries): `direction` is 'in' for a client's session with the listener (every session
-- stored before), 'out' for a delivery attempt to another server. `listed` is 0 for a
-- session the public listings leave out (a reply to a private test's sender): it is read
-- only by its id, from the private result's page. The statistics count inbound sessions only.
ALTER TABLE smtp_sessions ADD COLUMN direction TEXT NOT NULL DEFAULT 'in';
ALTER TABLE smtp_sessions ADD COLUMN listed INTEGER NOT NULL DEFAULT 1;
CREATE INDEX smtp_sessions_by_direction ON smtp_sessions (direction, seq);

-- The outbound session each delivery attempt was logged as, when it reached a server.
ALTER TABLE outgoing_attempts ADD COLUMN session_id TEXT;
