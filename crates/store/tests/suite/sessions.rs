//! The session log's part of the shared suite: storing, listing with every filter, paging,
//! bounds, directions, sessions kept out of the listings, and the retention purge.

use authcheck_store::{
    Direction, MAX_EVENT_TEXT_BYTES, MAX_SESSION_EVENTS, NewSession, SessionEvent, SessionQuery,
    SharedStore, StoreError, StoredSession, new_session_id,
};
use chrono::Duration;

use super::at;

fn event(command: &str, code: u16, status: Option<&str>, text: &str) -> SessionEvent {
    SessionEvent {
        at: at(1),
        command: command.to_owned(),
        code,
        status: status.map(str::to_owned),
        text: text.to_owned(),
    }
}

/// A relay attempt from `client` by `mail_from`, started `minutes` after noon on day 1.
pub fn relay_attempt(client: &str, mail_from: &str, minutes: i64) -> NewSession {
    let started_at = at(1) + Duration::minutes(minutes);
    NewSession {
        id: None,
        direction: Direction::Inbound,
        listed: true,
        started_at,
        ended_at: started_at + Duration::seconds(2),
        client_ip: client.to_owned(),
        client_port: 40000,
        client_ptr: Some("mail.example.net".to_owned()),
        helo: Some("mail.example.net".to_owned()),
        tls_version: Some("TLSv1.3".to_owned()),
        tls_cipher: Some("TLS13_AES_256_GCM_SHA384".to_owned()),
        mail_from: Some(mail_from.to_owned()),
        ending: "quit".to_owned(),
        events: vec![
            event(
                "(connect)",
                220,
                None,
                "authcheck.test ESMTP authcheck ready",
            ),
            event(
                "EHLO mail.example.net",
                250,
                None,
                "authcheck.test greets mail.example.net",
            ),
            event(
                &format!("MAIL FROM:<{mail_from}>"),
                250,
                Some("2.1.0"),
                "sender OK",
            ),
            event(
                "RCPT TO:<someone@elsewhere.example>",
                550,
                Some("5.7.1"),
                "relaying denied",
            ),
            event("QUIT", 221, Some("2.0.0"), "closing connection"),
        ],
        events_left_out: 0,
        left_out_at: 0,
        result_ids: Vec::new(),
    }
}

fn ids(sessions: &[StoredSession]) -> Vec<&str> {
    sessions.iter().map(|session| session.id.as_str()).collect()
}

fn query(limit: u32) -> SessionQuery {
    SessionQuery {
        limit,
        ..SessionQuery::default()
    }
}

/// Stores `sessions` one call each and returns them as listed, oldest first.
async fn store_each(store: &SharedStore, sessions: Vec<NewSession>) -> Vec<StoredSession> {
    let count = sessions.len();
    for session in sessions {
        store
            .insert_sessions(vec![session])
            .await
            .expect("insert sessions");
    }
    let mut listed = store.list_sessions(&query(200)).await.unwrap();
    assert_eq!(listed.len(), count);
    listed.reverse();
    listed
}

pub async fn sessions_round_trip_and_list_newest_first(store: SharedStore) {
    let mut delivered = relay_attempt("192.0.2.1", "alice@example.net", 0);
    delivered.result_ids = vec!["0123456789abcdef0123456789abcdef".to_owned()];
    let stored = store_each(
        &store,
        vec![
            delivered.clone(),
            relay_attempt("192.0.2.2", "bob@example.org", 1),
        ],
    )
    .await;
    let first = &stored[0];
    assert_eq!(first.id.len(), 32);
    assert!(first.id.bytes().all(|b| b.is_ascii_hexdigit()));
    assert!(stored[1].seq > first.seq);
    assert_eq!(first.entry.started_at, delivered.started_at);
    assert_eq!(first.entry.ended_at, delivered.ended_at);
    assert_eq!(first.entry.client_ip, "192.0.2.1");
    assert_eq!(first.entry.client_port, 40000);
    assert_eq!(first.entry.client_ptr.as_deref(), Some("mail.example.net"));
    assert_eq!(first.entry.helo.as_deref(), Some("mail.example.net"));
    assert_eq!(first.entry.tls_version.as_deref(), Some("TLSv1.3"));
    assert_eq!(
        first.entry.tls_cipher.as_deref(),
        Some("TLS13_AES_256_GCM_SHA384")
    );
    assert_eq!(first.entry.mail_from.as_deref(), Some("alice@example.net"));
    assert_eq!(first.entry.ending, "quit");
    assert_eq!(first.entry.events, delivered.events);
    assert_eq!(first.entry.result_ids, delivered.result_ids);
    assert_eq!(first.codes(), vec![220, 250, 550, 221]);

    let newest = store.list_sessions(&query(1)).await.unwrap();
    assert_eq!(ids(&newest), vec![stored[1].id.as_str()]);
    let oldest = store
        .list_sessions(&SessionQuery {
            oldest_first: true,
            ..query(1)
        })
        .await
        .unwrap();
    assert_eq!(ids(&oldest), vec![first.id.as_str()]);
}

pub async fn sessions_filter_by_client_sender_code_and_time(store: SharedStore) {
    let mut timed_out = relay_attempt("192.0.2.3", "carol@example.org", 10);
    timed_out.events = vec![
        event("(connect)", 220, None, "ready"),
        event(
            "(no command in time)",
            421,
            Some("4.4.2"),
            "timeout, closing",
        ),
    ];
    timed_out.mail_from = None;
    timed_out.ending = "timeout".to_owned();
    let stored = store_each(
        &store,
        vec![
            relay_attempt("192.0.2.1", "Alice@Example.NET", 0),
            relay_attempt("192.0.2.2", "bob@example.org", 5),
            timed_out,
        ],
    )
    .await;
    let (alice, bob, timeout) = (&stored[0].id, &stored[1].id, &stored[2].id);
    let list = |query: SessionQuery| {
        let store = store.clone();
        async move { store.list_sessions(&query).await.unwrap() }
    };
    let by_client = list(SessionQuery {
        client: Some("192.0.2.2".into()),
        ..query(50)
    })
    .await;
    assert_eq!(ids(&by_client), vec![bob.as_str()]);
    let by_address = list(SessionQuery {
        sender: Some("alice@example.net".into()),
        ..query(50)
    })
    .await;
    assert_eq!(ids(&by_address), vec![alice.as_str()]);
    let by_domain = list(SessionQuery {
        sender: Some("EXAMPLE.org".into()),
        ..query(50)
    })
    .await;
    assert_eq!(ids(&by_domain), vec![bob.as_str()]);
    let by_code = list(SessionQuery {
        code: Some(421),
        ..query(50)
    })
    .await;
    assert_eq!(ids(&by_code), vec![timeout.as_str()]);
    let refused = list(SessionQuery {
        code: Some(550),
        ..query(50)
    })
    .await;
    assert_eq!(ids(&refused), vec![bob.as_str(), alice.as_str()]);
    // 55 is no reply code given, though "550" holds it.
    assert!(
        list(SessionQuery {
            code: Some(55),
            ..query(50)
        })
        .await
        .is_empty()
    );
    let window = list(SessionQuery {
        since: Some(at(1) + Duration::minutes(5)),
        until: Some(at(1) + Duration::minutes(10)),
        ..query(50)
    })
    .await;
    assert_eq!(ids(&window), vec![bob.as_str()]);
    let older = list(SessionQuery {
        before: Some(timeout.clone()),
        ..query(1)
    })
    .await;
    assert_eq!(ids(&older), vec![bob.as_str()]);
    let newer = list(SessionQuery {
        after_seq: Some(stored[0].seq),
        oldest_first: true,
        ..query(50)
    })
    .await;
    assert_eq!(ids(&newer), vec![bob.as_str(), timeout.as_str()]);
    let unknown = store
        .list_sessions(&SessionQuery {
            before: Some("00000000000000000000000000000000".into()),
            ..query(5)
        })
        .await;
    assert!(
        matches!(unknown, Err(StoreError::UnknownId(_))),
        "{unknown:?}"
    );
}

pub async fn sessions_are_stored_bounded(store: SharedStore) {
    let mut hostile = relay_attempt("192.0.2.9", "x@example.net", 0);
    hostile.helo = Some("h".repeat(100_000));
    hostile.events = (0..1000)
        .map(|n| {
            event(
                &format!("NOOP {}\0<b>", "y".repeat(5000)),
                250,
                Some("2.0.0"),
                &"z".repeat(n),
            )
        })
        .collect();
    hostile.result_ids = vec!["not hex!".to_owned(), "abc123".to_owned()];
    store.insert_sessions(vec![hostile]).await.unwrap();
    let stored = store.list_sessions(&query(1)).await.unwrap().pop().unwrap();
    assert_eq!(stored.entry.events.len(), MAX_SESSION_EVENTS);
    assert_eq!(
        stored.entry.events_left_out as usize,
        1000 - MAX_SESSION_EVENTS
    );
    for event in &stored.entry.events {
        assert!(event.command.len() <= MAX_EVENT_TEXT_BYTES);
        assert!(event.text.len() <= MAX_EVENT_TEXT_BYTES);
        assert!(!event.command.contains('\0'));
    }
    assert!(stored.entry.helo.unwrap().len() < 2000);
    assert_eq!(stored.entry.result_ids, vec!["abc123".to_owned()]);
}

pub async fn purge_removes_sessions_started_before_the_cutoff(store: SharedStore) {
    let stored = store_each(
        &store,
        vec![
            relay_attempt("192.0.2.1", "a@example.net", 0),
            outbound_attempt("192.0.2.25", 250, 1),
            relay_attempt("192.0.2.2", "b@example.net", 24 * 60 * 10),
            outbound_attempt("192.0.2.25", 250, 24 * 60 * 10 + 1),
        ],
    )
    .await;
    let mut unlisted = outbound_attempt("192.0.2.25", 250, 2);
    unlisted.listed = false;
    unlisted.id = Some(new_session_id());
    store.insert_sessions(vec![unlisted.clone()]).await.unwrap();
    assert_eq!(store.purge(at(5)).await.unwrap(), 0, "no results to purge");
    let left = store.list_sessions(&query(50)).await.unwrap();
    assert_eq!(
        ids(&left),
        vec![stored[3].id.as_str(), stored[2].id.as_str()],
        "old sessions go whatever their direction"
    );
    let unlisted_left = store
        .list_sessions(&SessionQuery {
            id: unlisted.id,
            ..query(1)
        })
        .await
        .unwrap();
    assert!(unlisted_left.is_empty(), "unlisted sessions go too");
}

/// The tester's delivery attempt to `server`, started `minutes` after noon on day 1, that the
/// server refused with `code` at the end of the data.
pub fn outbound_attempt(server: &str, code: u16, minutes: i64) -> NewSession {
    let mut session = relay_attempt(server, "", minutes);
    session.direction = Direction::Outbound;
    session.client_port = 25;
    session.client_ptr = Some("mx.example.net".to_owned());
    session.helo = Some("authcheck.test".to_owned());
    session.ending = if code < 300 {
        "delivered"
    } else {
        "will-retry"
    }
    .to_owned();
    session.events = vec![
        event("(connect)", 220, None, "mx.example.net ESMTP"),
        event("EHLO authcheck.test", 250, None, "mx.example.net"),
        event("MAIL FROM:<>", 250, Some("2.1.0"), "OK"),
        event("RCPT TO:<alice@example.net>", 250, Some("2.1.5"), "OK"),
        event("DATA", 354, None, "go ahead"),
        event("(message, 2000 bytes)", code, None, "end of data"),
    ];
    session
}

pub async fn sessions_keep_their_direction_and_filter_by_it(store: SharedStore) {
    let chosen_id = new_session_id();
    let mut delivered = outbound_attempt("192.0.2.25", 250, 1);
    delivered.id = Some(chosen_id.clone());
    delivered.result_ids = vec!["0123456789abcdef0123456789abcdef".to_owned()];
    let stored = store_each(
        &store,
        vec![
            relay_attempt("192.0.2.1", "a@example.net", 0),
            delivered,
            outbound_attempt("192.0.2.25", 451, 2),
        ],
    )
    .await;
    let directions: Vec<Direction> = stored.iter().map(|s| s.entry.direction).collect();
    assert_eq!(
        directions,
        [Direction::Inbound, Direction::Outbound, Direction::Outbound]
    );
    assert_eq!(stored[1].id, chosen_id, "stored under the id chosen first");
    assert_eq!(stored[1].entry.ending, "delivered");
    let list = |direction| {
        let store = store.clone();
        async move {
            store
                .list_sessions(&SessionQuery {
                    direction,
                    ..query(50)
                })
                .await
                .unwrap()
        }
    };
    let inbound = list(Some(Direction::Inbound)).await;
    assert_eq!(ids(&inbound), vec![stored[0].id.as_str()]);
    let outbound = list(Some(Direction::Outbound)).await;
    assert_eq!(
        ids(&outbound),
        vec![stored[2].id.as_str(), stored[1].id.as_str()]
    );
    assert_eq!(list(None).await.len(), 3);
}

pub async fn unlisted_sessions_are_read_by_their_id_only(store: SharedStore) {
    let mut private_reply = outbound_attempt("192.0.2.25", 250, 1);
    private_reply.listed = false;
    let id = new_session_id();
    private_reply.id = Some(id.clone());
    store
        .insert_sessions(vec![
            relay_attempt("192.0.2.1", "a@example.net", 0),
            private_reply,
        ])
        .await
        .unwrap();
    for listing in [
        query(50),
        SessionQuery {
            direction: Some(Direction::Outbound),
            ..query(50)
        },
        SessionQuery {
            after_seq: Some(0),
            oldest_first: true,
            ..query(50)
        },
        SessionQuery {
            code: Some(250),
            ..query(50)
        },
    ] {
        let listed = store.list_sessions(&listing).await.unwrap();
        let expected = usize::from(listing.direction != Some(Direction::Outbound));
        assert_eq!(listed.len(), expected, "{listing:?}");
        assert!(
            listed
                .iter()
                .all(|s| s.entry.direction == Direction::Inbound)
        );
    }
    let by_id = store
        .list_sessions(&SessionQuery {
            id: Some(id.clone()),
            ..query(1)
        })
        .await
        .unwrap();
    assert_eq!(ids(&by_id), vec![id.as_str()]);
    assert!(!by_id[0].entry.listed);
    assert_eq!(by_id[0].entry.direction, Direction::Outbound);
    let unknown = store
        .list_sessions(&SessionQuery {
            id: Some(new_session_id()),
            ..query(1)
        })
        .await
        .unwrap();
    assert!(unknown.is_empty());
}
