//! The outgoing queue's part of the shared suite: reply decisions within the rate limits and
//! the queue's cap (the clock passed in as `created_at` and `now`), claims that take a message
//! once per lease, attempts and retries, and the purge.

use authcheck_store::{
    AfterAttempt, MAX_OUTGOING_BYTES, NewOutgoing, NoReply, OutgoingAttempt, OutgoingKind,
    OutgoingState, RateLimit, ReplyLimits, SharedStore, SlotClaim,
};
use chrono::Utc;

const T0: i64 = 1_800_000_000;

fn reply(recipient: &str, client: &str, created_at: i64) -> NewOutgoing {
    NewOutgoing {
        kind: OutgoingKind::Reply,
        recipient: recipient.to_owned(),
        client: client.to_owned(),
        message: format!("To: {recipient}\r\n\r\nresults\r\n").into_bytes(),
        created_at,
        give_up_at: created_at + 86_400,
    }
}

fn limits() -> ReplyLimits {
    ReplyLimits {
        per_address: RateLimit {
            count: 1,
            window_seconds: 600,
        },
        per_domain: RateLimit {
            count: 2,
            window_seconds: 3600,
        },
        per_client: RateLimit {
            count: 3,
            window_seconds: 3600,
        },
        max_queued: 100,
    }
}

fn ids(n: u32) -> Vec<String> {
    vec![format!("{n:032x}")]
}

/// Asks the store to queue a reply (for the message with result id [`ids`]`(n)`) to `to`,
/// from a message sent by `client` at `at`, under `limits`.
async fn ask(
    store: &SharedStore,
    n: u32,
    to: &str,
    client: &str,
    at: i64,
    limits: &ReplyLimits,
) -> Result<String, NoReply> {
    store
        .queue_reply(&ids(n), reply(to, client, at), limits)
        .await
        .unwrap()
}

pub async fn replies_are_limited_per_address_domain_and_client(store: SharedStore) {
    let limits = limits();
    let queued = ask(&store, 1, "a@one.example", "192.0.2.1", T0, &limits).await;
    let first = queued.expect("the first reply is queued");
    // The same address within ten minutes, in any case.
    assert_eq!(
        ask(&store, 2, "A@One.Example", "192.0.2.1", T0 + 599, &limits).await,
        Err(NoReply::RateLimitedAddress)
    );
    // Ten minutes later by the clock, the address may have another.
    assert!(
        ask(&store, 3, "a@one.example", "192.0.2.1", T0 + 601, &limits)
            .await
            .is_ok()
    );
    // Two per domain per hour: a third address of the domain waits.
    assert_eq!(
        ask(&store, 4, "b@one.example", "192.0.2.9", T0 + 700, &limits).await,
        Err(NoReply::RateLimitedDomain)
    );
    // Three per client per hour.
    assert!(
        ask(&store, 5, "c@two.example", "192.0.2.1", T0 + 700, &limits)
            .await
            .is_ok()
    );
    assert_eq!(
        ask(&store, 6, "d@three.example", "192.0.2.1", T0 + 701, &limits).await,
        Err(NoReply::RateLimitedClient)
    );
    // A count of 0 is no limit.
    let unlimited = ReplyLimits {
        per_address: RateLimit {
            count: 0,
            window_seconds: 600,
        },
        per_domain: RateLimit {
            count: 0,
            window_seconds: 600,
        },
        per_client: RateLimit {
            count: 0,
            window_seconds: 600,
        },
        max_queued: 100,
    };
    assert!(
        ask(
            &store,
            7,
            "a@one.example",
            "192.0.2.1",
            T0 + 702,
            &unlimited
        )
        .await
        .is_ok()
    );

    // Each result keeps its decision: the queued reply, or the reason.
    let decided = store.reply_decision(&ids(1)[0]).await.unwrap().unwrap();
    assert_eq!(decided.no_reply, None);
    let status = decided.reply.expect("the queued reply");
    assert_eq!(status.id, first);
    assert_eq!(status.state, OutgoingState::Queued);
    assert_eq!(status.recipient, "a@one.example");
    assert!(status.attempts.is_empty());
    let refused = store.reply_decision(&ids(2)[0]).await.unwrap().unwrap();
    assert_eq!(refused.no_reply, Some(NoReply::RateLimitedAddress));
    assert_eq!(refused.reply, None);
    assert_eq!(store.reply_decision(&ids(99)[0]).await.unwrap(), None);
}

pub async fn the_queue_cap_and_the_size_cap_refuse_replies(store: SharedStore) {
    let limits = ReplyLimits {
        max_queued: 2,
        ..limits()
    };
    for n in 0..2 {
        let recipient = format!("r{n}@d{n}.example");
        let client = format!("192.0.2.{n}");
        assert!(
            store
                .queue_reply(&ids(n), reply(&recipient, &client, T0), &limits)
                .await
                .unwrap()
                .is_ok()
        );
    }
    assert_eq!(
        ask(&store, 9, "x@x.example", "198.51.100.1", T0, &limits).await,
        Err(NoReply::QueueFull)
    );
    let mut summary = reply("ops@tester.example", "", T0);
    summary.kind = OutgoingKind::Summary;
    assert_eq!(
        store.queue_outgoing(summary.clone(), 2).await.unwrap(),
        None
    );
    assert!(store.queue_outgoing(summary, 3).await.unwrap().is_some());

    let mut huge = reply("y@y.example", "198.51.100.2", T0);
    huge.message = vec![b'a'; MAX_OUTGOING_BYTES + 1];
    let roomy = ReplyLimits {
        max_queued: 100,
        ..limits
    };
    assert_eq!(
        store.queue_reply(&ids(10), huge, &roomy).await.unwrap(),
        Err(NoReply::CannotCompose)
    );
    store
        .record_no_reply(&ids(11), NoReply::DmarcNotPassed, T0)
        .await
        .unwrap();
    let decided = store.reply_decision(&ids(11)[0]).await.unwrap().unwrap();
    assert_eq!(decided.no_reply, Some(NoReply::DmarcNotPassed));
    assert_eq!(decided.decided_at, T0);
}

pub async fn a_queued_message_is_claimed_once_per_lease_and_retried_when_due(store: SharedStore) {
    let id = ask(&store, 1, "a@one.example", "192.0.2.1", T0, &limits())
        .await
        .unwrap();
    // Not due before it was made.
    assert!(
        store
            .claim_outgoing("a", T0 - 1, T0 + 60, 10)
            .await
            .unwrap()
            .is_empty()
    );
    let claimed = store.claim_outgoing("a", T0, T0 + 60, 10).await.unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].id, id);
    assert_eq!(claimed[0].recipient, "a@one.example");
    assert_eq!(claimed[0].attempts, 0);
    assert_eq!(
        claimed[0].result_ids,
        ids(1),
        "the results the reply answers"
    );
    assert!(!claimed[0].private);
    assert!(claimed[0].message.starts_with(b"To: a@one.example"));
    // Another instance finds it taken while the lease runs.
    assert!(
        store
            .claim_outgoing("b", T0 + 59, T0 + 120, 10)
            .await
            .unwrap()
            .is_empty()
    );
    store
        .record_attempt(
            &id,
            "a",
            OutgoingAttempt {
                at: T0 + 1,
                ok: false,
                server: "mx.one.example [192.0.2.25]".into(),
                step: Some("DATA".into()),
                detail: "451 4.3.0 try later".into(),
                tls: Some("TLSv1.3".into()),
                session_id: None,
            },
            AfterAttempt::RetryAt(T0 + 61),
        )
        .await
        .unwrap();
    assert!(
        store
            .claim_outgoing("b", T0 + 60, T0 + 120, 10)
            .await
            .unwrap()
            .is_empty(),
        "not due before its retry time"
    );
    let again = store
        .claim_outgoing("b", T0 + 61, T0 + 121, 10)
        .await
        .unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].attempts, 1);
    store
        .record_attempt(
            &id,
            "b",
            OutgoingAttempt {
                at: T0 + 62,
                ok: true,
                server: "mx.one.example [192.0.2.25]".into(),
                step: None,
                detail: "250 2.0.0 queued".into(),
                tls: None,
                session_id: Some("0123456789abcdef0123456789abcdef".into()),
            },
            AfterAttempt::Sent,
        )
        .await
        .unwrap();
    let status = store.outgoing_status(&id).await.unwrap().unwrap();
    assert_eq!(status.state, OutgoingState::Sent);
    assert_eq!(status.attempts.len(), 2);
    assert_eq!(status.attempts[0].detail, "451 4.3.0 try later");
    assert_eq!(status.attempts[0].step.as_deref(), Some("DATA"));
    assert!(status.attempts[1].ok);
    assert_eq!(status.attempts[0].session_id, None);
    assert_eq!(
        status.attempts[1].session_id.as_deref(),
        Some("0123456789abcdef0123456789abcdef"),
        "the attempt links to its session in the log"
    );
    // Sent messages are never claimed again.
    assert!(
        store
            .claim_outgoing("c", T0 + 10_000, T0 + 10_060, 10)
            .await
            .unwrap()
            .is_empty()
    );
    // A claim whose worker died is taken again once its lease has run out.
    let orphan = ask(&store, 2, "z@z.example", "192.0.2.2", T0, &limits())
        .await
        .unwrap();
    assert_eq!(
        store.claim_outgoing("a", T0, T0 + 60, 10).await.unwrap()[0].id,
        orphan
    );
    assert_eq!(
        store
            .claim_outgoing("b", T0 + 61, T0 + 120, 10)
            .await
            .unwrap()[0]
            .id,
        orphan
    );
}

pub async fn concurrent_claims_take_each_message_once(first: SharedStore, second: SharedStore) {
    let limits = ReplyLimits {
        per_address: RateLimit {
            count: 0,
            window_seconds: 1,
        },
        per_domain: RateLimit {
            count: 0,
            window_seconds: 1,
        },
        per_client: RateLimit {
            count: 0,
            window_seconds: 1,
        },
        max_queued: 1000,
    };
    for n in 0..40 {
        first
            .queue_reply(
                &ids(n),
                reply(&format!("r{n}@x.example"), "192.0.2.1", T0),
                &limits,
            )
            .await
            .unwrap()
            .unwrap();
    }
    let mut taken = Vec::new();
    // Bounded: at least one claim of each round takes a message while any is left.
    for _ in 0..40 {
        if taken.len() == 40 {
            break;
        }
        let (a, b) = tokio::join!(
            first.claim_outgoing("a", T0, T0 + 60, 3),
            second.claim_outgoing("b", T0, T0 + 60, 3)
        );
        taken.extend(a.unwrap().into_iter().map(|m| m.id));
        taken.extend(b.unwrap().into_iter().map(|m| m.id));
    }
    let count = taken.len();
    taken.sort();
    taken.dedup();
    assert_eq!(taken.len(), count, "a message was claimed twice");
    assert_eq!(count, 40);
}

pub async fn concurrent_decisions_keep_the_rate_limit(first: SharedStore, second: SharedStore) {
    let mut tasks = Vec::new();
    for n in 0..10u32 {
        let store = if n % 2 == 0 {
            first.clone()
        } else {
            second.clone()
        };
        tasks.push(tokio::spawn(async move {
            store
                .queue_reply(
                    &ids(n),
                    reply("same@one.example", "192.0.2.1", T0),
                    &limits(),
                )
                .await
                .unwrap()
        }));
    }
    let mut queued = 0;
    for task in tasks {
        if task.await.unwrap().is_ok() {
            queued += 1;
        }
    }
    assert_eq!(
        queued, 1,
        "one reply per address per window, across instances"
    );
}

pub async fn purge_removes_finished_outgoing_but_keeps_the_queued(store: SharedStore) {
    let old = T0 - 30 * 86_400;
    let sent = ask(&store, 1, "a@one.example", "192.0.2.1", old, &limits())
        .await
        .unwrap();
    store.claim_outgoing("a", old, old + 60, 10).await.unwrap();
    store
        .record_attempt(
            &sent,
            "a",
            OutgoingAttempt {
                at: old + 1,
                ok: true,
                server: "mx".into(),
                step: None,
                detail: "250 ok".into(),
                tls: None,
                session_id: None,
            },
            AfterAttempt::Sent,
        )
        .await
        .unwrap();
    let waiting = ask(&store, 2, "b@two.example", "192.0.2.2", old, &limits())
        .await
        .unwrap();
    let cutoff = chrono::DateTime::from_timestamp(T0 - 86_400, 0).unwrap();
    assert!(cutoff < Utc::now() + chrono::Duration::days(3650));
    store.purge(cutoff).await.unwrap();
    assert_eq!(store.outgoing_status(&sent).await.unwrap(), None);
    assert_eq!(store.reply_decision(&ids(1)[0]).await.unwrap(), None);
    let kept = store.outgoing_status(&waiting).await.unwrap().unwrap();
    assert_eq!(kept.state, OutgoingState::Queued);
}

pub async fn a_reply_to_a_private_test_is_claimed_as_private_without_its_result(
    store: SharedStore,
) {
    let token = store
        .create_private_test(T0, T0 + 600, 10)
        .await
        .unwrap()
        .unwrap()
        .token;
    let mut tested = super::sample(authcheck_store::Mailbox::Check, super::at(1));
    tested.private_test = Some(token);
    let private_id = super::insert_one(&store, tested).await;
    let public_id = super::insert_one(
        &store,
        super::sample(authcheck_store::Mailbox::Check, super::at(1)),
    )
    .await;
    let limits = limits();
    store
        .queue_reply(
            std::slice::from_ref(&private_id),
            reply("p@one.example", "192.0.2.1", T0),
            &limits,
        )
        .await
        .unwrap()
        .unwrap();
    store
        .queue_reply(
            std::slice::from_ref(&public_id),
            reply("q@two.example", "192.0.2.2", T0),
            &limits,
        )
        .await
        .unwrap()
        .unwrap();
    let claimed = store.claim_outgoing("a", T0, T0 + 60, 10).await.unwrap();
    let by_recipient = |to: &str| {
        claimed
            .iter()
            .find(|message| message.recipient == to)
            .unwrap()
    };
    let private = by_recipient("p@one.example");
    assert!(private.private);
    assert!(private.result_ids.is_empty(), "no link to a private result");
    let public = by_recipient("q@two.example");
    assert!(!public.private);
    assert_eq!(public.result_ids, [public_id]);
}

fn attempt_at(at: i64) -> OutgoingAttempt {
    OutgoingAttempt {
        at,
        ok: true,
        server: "mx.one.example [192.0.2.25]".into(),
        step: None,
        detail: "250 2.0.0 queued".into(),
        tls: None,
        session_id: None,
    }
}

/// A short lease, renewed while its attempt runs: nobody else takes the message while the
/// renewals come, another claimant takes it soon after they stop (its instance died), and the
/// first claimant can then neither renew nor record (the clock passed in).
pub async fn a_claim_is_renewed_while_held_and_taken_over_once_it_lapses(store: SharedStore) {
    let id = ask(&store, 1, "a@one.example", "192.0.2.1", T0, &limits())
        .await
        .unwrap();
    assert_eq!(
        store
            .claim_outgoing("a", T0, T0 + 20, 10)
            .await
            .unwrap()
            .len(),
        1
    );
    assert!(
        store
            .claim_outgoing("b", T0 + 19, T0 + 39, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .renew_outgoing_claim(&id, "a", T0 + 10, T0 + 30)
            .await
            .unwrap()
    );
    assert!(
        store
            .claim_outgoing("b", T0 + 25, T0 + 45, 10)
            .await
            .unwrap()
            .is_empty(),
        "renewed: still a's"
    );
    assert!(
        !store
            .renew_outgoing_claim(&id, "b", T0 + 25, T0 + 45)
            .await
            .unwrap(),
        "only the claimant renews"
    );
    // a stops renewing (it died): b takes the message as soon as the lease has run out.
    let taken = store
        .claim_outgoing("b", T0 + 31, T0 + 51, 10)
        .await
        .unwrap();
    assert_eq!(taken.len(), 1);
    assert_eq!(taken[0].id, id);
    assert!(
        !store
            .renew_outgoing_claim(&id, "a", T0 + 32, T0 + 52)
            .await
            .unwrap(),
        "a lost it"
    );
    assert!(
        !store
            .record_attempt(&id, "a", attempt_at(T0 + 33), AfterAttempt::Sent)
            .await
            .unwrap(),
        "a's late attempt is not recorded"
    );
    let status = store.outgoing_status(&id).await.unwrap().unwrap();
    assert!(status.attempts.is_empty());
    assert_eq!(status.state, OutgoingState::Queued);
    assert!(
        store
            .record_attempt(&id, "b", attempt_at(T0 + 34), AfterAttempt::Sent)
            .await
            .unwrap()
    );
    let status = store.outgoing_status(&id).await.unwrap().unwrap();
    assert_eq!(status.state, OutgoingState::Sent);
    assert_eq!(status.attempts.len(), 1);
    assert!(
        !store
            .renew_outgoing_claim(&id, "b", T0 + 35, T0 + 55)
            .await
            .unwrap(),
        "a sent message holds no claim"
    );
}

pub async fn a_slot_is_claimed_with_its_messages_or_not_at_all(store: SharedStore) {
    let summary = |to: &str| NewOutgoing {
        kind: OutgoingKind::Summary,
        ..reply(to, "", T0)
    };
    let claim = SlotClaim {
        target: "weekly-summary",
        slot: 7,
        instance: "a",
        now: T0,
    };
    assert!(!store.slot_claimed("weekly-summary", 7).await.unwrap());
    let too_big = NewOutgoing {
        message: vec![b'x'; MAX_OUTGOING_BYTES + 1],
        ..summary("big@one.example")
    };
    let ids = store
        .queue_claimed(
            &claim,
            vec![summary("a@one.example"), too_big, summary("b@one.example")],
            1,
        )
        .await
        .unwrap()
        .expect("the first claim");
    assert!(ids[0].is_some() && ids[1].is_none(), "{ids:?}");
    assert_eq!(ids[2], None, "the queue's cap of 1 holds");
    assert!(store.slot_claimed("weekly-summary", 7).await.unwrap());
    let again = SlotClaim {
        instance: "b",
        ..claim
    };
    assert_eq!(
        store
            .queue_claimed(&again, vec![summary("c@one.example")], 100)
            .await
            .unwrap(),
        None,
        "claimed already: nothing queued"
    );
    let due = store.claim_outgoing("w", T0, T0 + 60, 10).await.unwrap();
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].recipient, "a@one.example");
}

pub async fn a_reply_to_a_private_test_stays_private_once_its_result_is_purged(store: SharedStore) {
    let token = store
        .create_private_test(T0, T0 + 600, 10)
        .await
        .unwrap()
        .unwrap()
        .token;
    let mut tested = super::sample(authcheck_store::Mailbox::Check, super::at(1));
    tested.private_test = Some(token);
    let private_id = super::insert_one(&store, tested).await;
    let reply_id = store
        .queue_reply(
            std::slice::from_ref(&private_id),
            reply("p@one.example", "192.0.2.1", T0),
            &limits(),
        )
        .await
        .unwrap()
        .unwrap();
    // A retention that ends after the result was received and before the reply was sent.
    store.purge(super::at(5)).await.unwrap();
    assert_eq!(store.get(&private_id).await.unwrap(), None, "purged");
    let claimed = store.claim_outgoing("a", T0, T0 + 60, 10).await.unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].id, reply_id);
    assert!(claimed[0].private, "still a private test's reply");
    assert!(claimed[0].result_ids.is_empty());
}
