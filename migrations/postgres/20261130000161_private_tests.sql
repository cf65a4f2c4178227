-- Private test addresses `test-<token>@`: made on the site, open until expires_at (seconds
-- since the Unix epoch), purged after. Their results are rows of `results` whose
-- private_test is the token.
CREATE TABLE private_tests (
    token      TEXT   PRIMARY KEY,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX private_tests_by_expires_at ON private_tests (expires_at);
-- The private feed's newest private result, found without reading the public ones.
CREATE INDEX results_private_by_seq ON results (seq) WHERE private_test IS NOT NULL;
