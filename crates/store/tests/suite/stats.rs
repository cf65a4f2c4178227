//! The statistics' part of the shared suite: the rollups `/stats` reads count what was
//! stored, by hour, day, month, verdict, host, sender, session and refusal code, and the purge
//! keeps the counts while dropping the names.

use authcheck_store::{
    GradeCounts, Mailbox, NewResult, SharedStore, Stats, StatsQuery, StatsSample,
};
use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};

use super::sessions::{outbound_attempt, relay_attempt};
use super::{at, sample};

fn day(n: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 3, n).unwrap()
}

fn query(first: u32, last: u32, mailbox: Option<Mailbox>) -> StatsQuery {
    StatsQuery {
        first_day: day(first),
        last_day: day(last),
        mailbox,
        top: 10,
    }
}

fn result(
    mailbox: Mailbox,
    received_at: DateTime<Utc>,
    verdict: &str,
    client_ip: &str,
    mail_from: &str,
) -> NewResult {
    let mut result = sample(mailbox, received_at);
    result.verdict = verdict.to_owned();
    result.session.client_ip = client_ip.to_owned();
    result.session.mail_from = mail_from.to_owned();
    result
}

fn grades(messages: i64, ok: i64, partial: i64, problem: i64) -> GradeCounts {
    GradeCounts {
        messages,
        ok,
        partial,
        problem,
    }
}

fn hosts(stats: &Stats) -> Vec<(&str, Option<&str>, GradeCounts)> {
    stats
        .hosts
        .iter()
        .map(|host| {
            (
                host.client_ip.as_str(),
                host.client_ptr.as_deref(),
                host.counts,
            )
        })
        .collect()
}

pub async fn stats_count_results_by_time_verdict_host_and_sender(store: SharedStore) {
    // Day 1 at 12:00: one message to both mailboxes (one insert, as the SMTP side does it),
    // from a host with a PTR name.
    let mut spf = result(
        Mailbox::Spf,
        at(1),
        "|OK| spf-pass",
        "192.0.2.1",
        "Alice@Example.NET",
    );
    spf.session.client_ptr = Some("mail.example.net".to_owned());
    let mut dkim = result(
        Mailbox::Dkim,
        at(1),
        "|~OK| dkim-pass",
        "192.0.2.1",
        "Alice@Example.NET",
    );
    dkim.session.client_ptr = Some("mail.example.net".to_owned());
    store.insert(vec![spf, dkim]).await.unwrap();
    // Day 1 at 13:30 and day 2 at 12:00, other hosts and senders; a bounce (null sender).
    for result in [
        result(
            Mailbox::Spf,
            at(1) + Duration::minutes(90),
            "!! spf-softfail !!",
            "192.0.2.2",
            "bob@example.org",
        ),
        result(
            Mailbox::Spf,
            at(1) + Duration::minutes(95),
            "!! spf-softfail !!",
            "192.0.2.2",
            "bob@example.org",
        ),
        result(Mailbox::Spf, at(2), "|OK| spf-pass", "198.51.100.7", ""),
        // Outside the range asked for below.
        result(
            Mailbox::Spf,
            at(9),
            "|OK| spf-pass",
            "203.0.113.9",
            "late@example.com",
        ),
    ] {
        store.insert(vec![result]).await.unwrap();
    }

    let all = store.stats(&query(1, 2, None)).await.unwrap();
    let verdicts: Vec<(&str, i64)> = all
        .verdicts
        .iter()
        .map(|v| (v.verdict.as_str(), v.messages))
        .collect();
    assert_eq!(
        verdicts,
        [
            ("!! spf-softfail !!", 2),
            ("|OK| spf-pass", 2),
            ("|~OK| dkim-pass", 1)
        ]
    );
    let days: Vec<(NaiveDate, GradeCounts)> = all.days.iter().map(|d| (d.day, d.counts)).collect();
    assert_eq!(
        days,
        [(day(1), grades(4, 1, 1, 2)), (day(2), grades(1, 1, 0, 0))]
    );
    let mut hours = vec![0; 24];
    hours[12] = 3;
    hours[13] = 2;
    assert_eq!(all.hours, hours);
    // The history is every month kept, whatever the range.
    assert_eq!(all.months.len(), 1);
    assert_eq!(all.months[0].month, "2026-03");
    assert_eq!(all.months[0].counts, grades(6, 3, 1, 2));
    assert_eq!(
        hosts(&all),
        [
            ("192.0.2.1", Some("mail.example.net"), grades(2, 1, 1, 0)),
            ("192.0.2.2", None, grades(2, 0, 0, 2)),
            ("198.51.100.7", None, grades(1, 1, 0, 0)),
        ]
    );
    let domains: Vec<(&str, i64)> = all
        .sender_domains
        .iter()
        .map(|s| (s.name.as_str(), s.counts.messages))
        .collect();
    assert_eq!(domains, [("example.net", 2), ("example.org", 2)]);
    let addresses: Vec<(&str, i64)> = all
        .sender_addresses
        .iter()
        .map(|s| (s.name.as_str(), s.counts.messages))
        .collect();
    assert_eq!(
        addresses,
        [("alice@example.net", 2), ("bob@example.org", 2), ("<>", 1)]
    );

    // One mailbox: only its results.
    let dkim_only = store
        .stats(&query(1, 2, Some(Mailbox::Dkim)))
        .await
        .unwrap();
    assert_eq!(dkim_only.days.len(), 1);
    assert_eq!(dkim_only.days[0].counts, grades(1, 0, 1, 0));
    assert_eq!(dkim_only.hours.iter().sum::<i64>(), 1);
    assert_eq!(hosts(&dkim_only).len(), 1);
    assert_eq!(dkim_only.months[0].counts.messages, 1);

    // Top lists are cut to `top`.
    let top_one = store
        .stats(&StatsQuery {
            top: 1,
            ..query(1, 2, None)
        })
        .await
        .unwrap();
    assert_eq!(hosts(&top_one).len(), 1);
    assert_eq!(top_one.sender_addresses.len(), 1);

    // A range with nothing in it.
    let empty = store.stats(&query(20, 25, None)).await.unwrap();
    assert!(empty.days.is_empty() && empty.hosts.is_empty() && empty.verdicts.is_empty());
    assert_eq!(empty.hours, vec![0; 24]);
}

pub async fn stats_count_sessions_and_the_refusals_they_got(store: SharedStore) {
    let relay = relay_attempt("192.0.2.1", "a@example.net", 0);
    let mut two_refusals = relay_attempt("192.0.2.2", "b@example.net", 5);
    let mut second = two_refusals.events[3].clone();
    second.command = "RCPT TO:<other@elsewhere.example>".to_owned();
    two_refusals.events.insert(4, second);
    let mut clean = relay_attempt("192.0.2.3", "c@example.net", 10);
    clean.events.retain(|event| event.code < 400);
    let mut timeout = relay_attempt("192.0.2.4", "d@example.net", 24 * 60);
    timeout.events.truncate(2);
    timeout.events.push(authcheck_store::SessionEvent {
        at: timeout.started_at,
        command: "(timeout)".to_owned(),
        code: 421,
        status: Some("4.4.2".to_owned()),
        text: "timeout, closing".to_owned(),
    });
    // Two batches, as the session log writes them; the tester's own delivery attempts
    // (refused or not) are no client's sessions and count nowhere.
    store
        .insert_sessions(vec![
            relay,
            outbound_attempt("192.0.2.25", 451, 1),
            two_refusals,
            clean,
        ])
        .await
        .unwrap();
    store
        .insert_sessions(vec![timeout, outbound_attempt("192.0.2.25", 550, 24 * 60)])
        .await
        .unwrap();

    let stats = store.stats(&query(1, 2, None)).await.unwrap();
    let days: Vec<(NaiveDate, i64, i64)> = stats
        .sessions
        .iter()
        .map(|d| (d.day, d.sessions, d.refused))
        .collect();
    assert_eq!(days, [(day(1), 3, 2), (day(2), 1, 1)]);
    let replies: Vec<(u16, &str, i64, i64)> = stats
        .replies
        .iter()
        .map(|r| (r.code, r.status.as_str(), r.replies, r.sessions))
        .collect();
    assert_eq!(replies, [(550, "5.7.1", 3, 2), (421, "4.4.2", 1, 1)]);
    // Sessions belong to no mailbox: a mailbox filter leaves them as they are.
    let spf = store.stats(&query(1, 2, Some(Mailbox::Spf))).await.unwrap();
    assert_eq!(spf.sessions, stats.sessions);
    let day_two = store.stats(&query(2, 2, None)).await.unwrap();
    assert_eq!(day_two.replies.len(), 1);
    assert_eq!(day_two.replies[0].code, 421);
}

pub async fn stats_purge_drops_names_with_the_results_and_keeps_counts_longer(store: SharedStore) {
    store
        .insert(vec![result(
            Mailbox::Spf,
            at(1),
            "|OK| spf-pass",
            "192.0.2.1",
            "a@example.net",
        )])
        .await
        .unwrap();
    store
        .insert(vec![result(
            Mailbox::Spf,
            at(20),
            "|OK| spf-pass",
            "192.0.2.2",
            "b@example.net",
        )])
        .await
        .unwrap();
    store
        .insert_sessions(vec![relay_attempt("192.0.2.1", "a@example.net", 0)])
        .await
        .unwrap();
    assert_eq!(store.purge(at(10)).await.unwrap(), 1);
    let stats = store.stats(&query(1, 31, None)).await.unwrap();
    // The counts of day 1 are still there...
    let days: Vec<NaiveDate> = stats.days.iter().map(|d| d.day).collect();
    assert_eq!(days, [day(1), day(20)]);
    assert_eq!(stats.sessions.len(), 1);
    assert_eq!(stats.replies.len(), 1);
    assert_eq!(stats.hours.iter().sum::<i64>(), 2);
    // ...but not who sent them.
    let ips: Vec<&str> = stats.hosts.iter().map(|h| h.client_ip.as_str()).collect();
    assert_eq!(ips, ["192.0.2.2"]);
    let senders: Vec<&str> = stats
        .sender_addresses
        .iter()
        .map(|s| s.name.as_str())
        .collect();
    assert_eq!(senders, ["b@example.net"]);

    // The counts go 400 days (STATS_HISTORY_DAYS) after the results.
    let later = at(10) + Duration::days(authcheck_store::STATS_HISTORY_DAYS);
    store.purge(later).await.unwrap();
    let stats = store.stats(&query(1, 31, None)).await.unwrap();
    let days: Vec<NaiveDate> = stats.days.iter().map(|d| d.day).collect();
    assert_eq!(days, [day(20)]);
    assert!(stats.sessions.is_empty() && stats.replies.is_empty());
    assert_eq!(stats.hours.iter().sum::<i64>(), 1);
    let far = Utc.with_ymd_and_hms(2030, 1, 1, 0, 0, 0).unwrap();
    store.purge(far).await.unwrap();
    assert_eq!(
        store.stats(&query(1, 31, None)).await.unwrap(),
        Stats {
            hours: vec![0; 24],
            ..Stats::default()
        }
    );
}

pub async fn added_samples_count_as_stored_results_do(store: SharedStore) {
    let samples: Vec<(DateTime<Utc>, &str, &str, &str)> = vec![
        (at(1), "|OK| spf-pass", "192.0.2.1", "Alice@Example.net"),
        (
            at(1) + Duration::hours(3),
            "!! spf-fail !!",
            "192.0.2.2",
            "",
        ),
        (
            at(1) + Duration::hours(3),
            "!! spf-fail !!",
            "192.0.2.2",
            "bob@example.org",
        ),
    ];
    // Day 1 through `insert`, the same results on day 2 through `add_to_stats`.
    for (received_at, verdict, ip, from) in &samples {
        store
            .insert(vec![result(Mailbox::Spf, *received_at, verdict, ip, from)])
            .await
            .unwrap();
    }
    store
        .add_to_stats(
            samples
                .iter()
                .map(|(received_at, verdict, ip, from)| StatsSample {
                    received_at: *received_at + Duration::days(1),
                    mailbox: Mailbox::Spf,
                    verdict: (*verdict).to_owned(),
                    client_ip: (*ip).to_owned(),
                    client_ptr: None,
                    mail_from: (*from).to_owned(),
                })
                .collect(),
        )
        .await
        .unwrap();
    let first = store.stats(&query(1, 1, None)).await.unwrap();
    let second = store.stats(&query(2, 2, None)).await.unwrap();
    assert_eq!(first.days[0].counts, grades(3, 1, 0, 2));
    assert_eq!(first.days[0].counts, second.days[0].counts);
    assert_eq!(first.hours, second.hours);
    assert_eq!(first.verdicts, second.verdicts);
    assert_eq!(first.hosts, second.hosts);
    assert_eq!(first.sender_domains, second.sender_domains);
    assert_eq!(first.sender_addresses, second.sender_addresses);
}

pub async fn a_check_result_counts_by_its_worse_verdict(store: SharedStore) {
    for verdict in [
        "|OK| spf-pass |OK| dkim-pass",
        "|OK| spf-pass |~OK| dkim-pass",
        "|OK| spf-pass !! dkim-fail !!",
    ] {
        store
            .insert(vec![result(
                Mailbox::Check,
                at(1),
                verdict,
                "192.0.2.1",
                "a@example.net",
            )])
            .await
            .unwrap();
    }
    let check = store
        .stats(&query(1, 1, Some(Mailbox::Check)))
        .await
        .unwrap();
    assert_eq!(check.days[0].counts, grades(3, 1, 1, 1));
    assert_eq!(check.hosts[0].counts, grades(3, 1, 1, 1));
    let spf = store.stats(&query(1, 1, Some(Mailbox::Spf))).await.unwrap();
    assert!(spf.days.is_empty());
}

pub async fn a_private_test_result_is_never_counted(store: SharedStore) {
    let token = store
        .create_private_test(at(1).timestamp(), at(2).timestamp(), 10)
        .await
        .unwrap()
        .unwrap()
        .token;
    let mut private = result(
        Mailbox::Check,
        at(1),
        "|OK| spf-pass |OK| dkim-pass",
        "192.0.2.9",
        "secret@private.example",
    );
    private.private_test = Some(token);
    store.insert(vec![private]).await.unwrap();
    store
        .insert(vec![result(
            Mailbox::Check,
            at(1),
            "|OK| spf-pass |OK| dkim-pass",
            "192.0.2.1",
            "a@example.net",
        )])
        .await
        .unwrap();
    for mailbox in [None, Some(Mailbox::Check)] {
        let stats = store.stats(&query(1, 1, mailbox)).await.unwrap();
        assert_eq!(stats.days[0].counts, grades(1, 1, 0, 0), "{mailbox:?}");
        let names = format!("{:?} {:?}", stats.hosts, stats.sender_addresses);
        assert!(
            !names.contains("192.0.2.9") && !names.contains("secret"),
            "{names}"
        );
    }
}
