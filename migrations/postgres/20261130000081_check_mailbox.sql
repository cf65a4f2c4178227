-- The full-check mailbox `check@` (both verdicts on one result), and the private test a
-- result belongs to (`test-<token>@`; NULL for the public results that lists show).
ALTER TABLE results DROP CONSTRAINT results_mailbox_check;
ALTER TABLE results ADD CONSTRAINT results_mailbox_check
    CHECK (mailbox IN ('spf', 'dkim', 'check'));
ALTER TABLE results ADD COLUMN private_test TEXT;
CREATE INDEX results_by_private_test ON results (private_test, seq) WHERE private_test IS NOT NULL;
