-- Whether an outgoing message answers a private test (1) or not (0), kept on the message
-- itself: read through its results, it was lost when the retention purge deleted them while
-- the message still waited, and its outbound sessions were then stored listed, in the public
-- log. Messages queued before are marked from their results, while those are still there.
ALTER TABLE outgoing ADD COLUMN private INTEGER NOT NULL DEFAULT 0;
UPDATE outgoing SET private = 1 WHERE id IN (
    SELECT d.reply_id FROM reply_decisions d JOIN results r ON r.id = d.result_id
    WHERE d.reply_id IS NOT NULL AND r.private_test IS NOT NULL
);
