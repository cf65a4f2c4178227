//! The weekly summary, a scheduled task: once a week (weeks begin Monday 00:00 UTC) the
//! service mails the operators in `summary_recipients` what the tester did in the last seven
//! days: messages tested, the verdict mix, the top sending domains and hosts, the self-check's
//! uptime, and the DMARC report domains when reports exist, as a short text part and an HTML
//! part with links to the pages. The messages go through the outgoing queue, signed and
//! retried like replies.
//!
//! The clock is passed in ([`Summarizer::run_once`] takes `now`). Instances sharing a database
//! send one summary per week: the first to claim the week's slot (in the self-check claims,
//! under the target [`CLAIM_TARGET`]) sends it. The results are read through the store's
//! listing, newest first, at most [`MAX_RESULTS_READ`] of them, so a summary costs a bounded
//! amount however busy the week was (a busier week says "at least").

use std::collections::HashMap;
use std::fmt::Write as _;
use std::time::Duration;

use authcheck_outbound::{Letter, RetryPolicy};
use authcheck_store::{
    ListQuery, MAX_LIST_LIMIT, NewOutgoing, OutgoingKind, SharedStore, SlotClaim, StoreError,
};
use chrono::{DateTime, Utc};
use tokio::sync::watch;

/// The name the week's claim is kept under.
pub const CLAIM_TARGET: &str = "weekly-summary";
/// The most results one summary reads.
pub const MAX_RESULTS_READ: usize = 20_000;
/// The most rows of each top list.
const TOP: usize = 10;
const WEEK_SECONDS: i64 = 7 * 86_400;
/// The Unix epoch was a Thursday; weeks counted from the Monday after it.
const MONDAY_OFFSET: i64 = 4 * 86_400;
/// How often the task looks whether a new week began.
const POLL: Duration = Duration::from_secs(60);

/// The summary's settings, resolved.
#[derive(Clone, Debug)]
pub struct SummaryConfig {
    pub recipients: Vec<String>,
    /// This instance's host name: the claimant.
    pub instance: String,
    /// The first tester domain: summaries come from `check@` it.
    pub tester_domain: String,
    pub public_url: String,
    pub retry: RetryPolicy,
    pub max_queued: u32,
}

/// What a week looked like.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Week {
    pub results: usize,
    /// Whether more results than [`MAX_RESULTS_READ`] were stored.
    pub more: bool,
    /// Each verdict text and how many results got it, most first.
    pub verdicts: Vec<(String, usize)>,
    /// MAIL FROM domains, most results first.
    pub senders: Vec<(String, usize)>,
    /// Sending hosts (PTR name, or address), most results first.
    pub hosts: Vec<(String, usize)>,
    pub self_checks: usize,
    pub self_checks_ok: usize,
    /// DMARC report domains: name, messages reported, reports.
    pub dmarc: Vec<(String, i64, i64)>,
}

fn top(counts: HashMap<String, usize>) -> Vec<(String, usize)> {
    let mut list: Vec<(String, usize)> = counts.into_iter().collect();
    list.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    list.truncate(TOP);
    list
}

/// Reads the week before `now` from the store.
pub async fn gather(store: &SharedStore, now: DateTime<Utc>) -> Result<Week, StoreError> {
    let since = now - chrono::Duration::seconds(WEEK_SECONDS);
    let mut week = Week::default();
    let (mut verdicts, mut senders, mut hosts) = (HashMap::new(), HashMap::new(), HashMap::new());
    let mut before = None;
    'pages: loop {
        let page = store
            .list(&ListQuery {
                before: before.clone(),
                limit: MAX_LIST_LIMIT,
                ..ListQuery::default()
            })
            .await?;
        let Some(last) = page.last() else { break };
        before = Some(last.id.clone());
        for result in &page {
            if result.received_at < since {
                break 'pages;
            }
            if result.received_at > now {
                continue;
            }
            if week.results == MAX_RESULTS_READ {
                week.more = true;
                break 'pages;
            }
            week.results += 1;
            *verdicts.entry(result.verdict.clone()).or_insert(0) += 1;
            let sender = result
                .session
                .mail_from
                .rsplit_once('@')
                .map_or("<>".to_owned(), |(_, domain)| domain.to_ascii_lowercase());
            *senders.entry(sender).or_insert(0) += 1;
            let host = result
                .session
                .client_ptr
                .clone()
                .unwrap_or_else(|| result.session.client_ip.clone());
            *hosts.entry(host).or_insert(0) += 1;
        }
        if page.len() < MAX_LIST_LIMIT as usize {
            break;
        }
    }
    week.verdicts = top(verdicts);
    week.senders = top(senders);
    week.hosts = top(hosts);
    let checks = store.self_checks_since(since.timestamp()).await?;
    week.self_checks = checks.len();
    week.self_checks_ok = checks.iter().filter(|check| check.ok).count();
    week.dmarc = store
        .dmarc_domains(TOP as u32)
        .await?
        .into_iter()
        .map(|domain| (domain.domain, domain.messages, domain.reports))
        .collect();
    Ok(week)
}

/// `text` with the characters HTML gives a meaning escaped.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The summary's text and HTML parts.
pub fn render(week: &Week, public_url: &str, now: DateTime<Utc>) -> (String, String) {
    let base = public_url.trim_end_matches('/');
    let since = now - chrono::Duration::seconds(WEEK_SECONDS);
    let period = format!(
        "{} to {}",
        since.format("%Y-%m-%d %H:%M UTC"),
        now.format("%Y-%m-%d %H:%M UTC")
    );
    let tested = format!(
        "{}{}",
        if week.more { "at least " } else { "" },
        week.results
    );
    let uptime = match week.self_checks {
        0 => "no self-check ran".to_owned(),
        checks => format!(
            "{} of {checks} self-checks passed ({:.1}%)",
            week.self_checks_ok,
            week.self_checks_ok as f64 * 100.0 / checks as f64
        ),
    };
    let mut text = String::new();
    let _ = writeln!(text, "authcheck, the week from {period}\n");
    let _ = writeln!(text, "Messages tested: {tested}");
    let _ = writeln!(text, "Self-check: {uptime} ({base}/status)\n");
    let mut html = format!(
        "<h1>authcheck, the week from {}</h1>\n<p>Messages tested: <strong>{tested}</strong></p>\n\
         <p>Self-check: {} (<a href=\"{b}/status\">status</a>)</p>\n",
        escape(&period),
        escape(&uptime),
        b = escape(base)
    );
    let mut list = |title: &str, rows: &[(String, usize)], link: &str| {
        if rows.is_empty() {
            return;
        }
        let _ = writeln!(text, "{title} ({base}{link}):");
        let _ = writeln!(
            html,
            "<h2><a href=\"{}{}\">{}</a></h2>\n<table>",
            escape(base),
            escape(link),
            escape(title)
        );
        for (name, count) in rows {
            let _ = writeln!(text, "  {count:>6}  {name}");
            let _ = writeln!(
                html,
                "<tr><td align=\"right\">{count}</td><td>{}</td></tr>",
                escape(name)
            );
        }
        text.push('\n');
        html.push_str("</table>\n");
    };
    list("Verdicts", &week.verdicts, "/");
    list("Top sending domains", &week.senders, "/spf");
    list("Top sending hosts", &week.hosts, "/logs");
    if !week.dmarc.is_empty() {
        let _ = writeln!(text, "DMARC reports by domain ({base}/dmarc):");
        let _ = writeln!(
            html,
            "<h2><a href=\"{}/dmarc\">DMARC reports by domain</a></h2>\n<table>",
            escape(base)
        );
        for (domain, messages, reports) in &week.dmarc {
            let _ = writeln!(text, "  {domain}: {messages} messages in {reports} reports");
            let _ = writeln!(
                html,
                "<tr><td><a href=\"{b}/dmarc/{d}\">{d}</a></td><td>{messages} messages in {reports} reports</td></tr>",
                b = escape(base),
                d = escape(domain)
            );
        }
        html.push_str("</table>\n");
    }
    (text, html)
}

/// Sends the weekly summary.
pub struct Summarizer {
    pub config: SummaryConfig,
    pub store: SharedStore,
}

impl Summarizer {
    /// Queues the summary of the week ending at `now` for every recipient, unless this week's
    /// was claimed already (then `None`); how many were queued. The week is claimed in the
    /// transaction that queues its messages: when gathering or queueing fails, the week stays
    /// unclaimed and the next look (a minute later) tries again.
    pub async fn run_once(&self, now: DateTime<Utc>) -> Result<Option<usize>, StoreError> {
        let slot = (now.timestamp() - MONDAY_OFFSET).div_euclid(WEEK_SECONDS);
        // Gathering reads up to a week of results: not every minute for a week sent already.
        if self.store.slot_claimed(CLAIM_TARGET, slot).await? {
            return Ok(None);
        }
        let week = gather(&self.store, now).await?;
        let (text, html) = render(&week, &self.config.public_url, now);
        let subject = format!(
            "authcheck weekly summary: {}{} messages tested",
            if week.more { "at least " } else { "" },
            week.results
        );
        let from = format!("check@{}", self.config.tester_domain);
        let messages = self
            .config
            .recipients
            .iter()
            .map(|recipient| {
                let message_id = format!(
                    "summary.{slot}.{}@{}",
                    recipient.replace(['@', '<', '>'], "."),
                    self.config.tester_domain
                );
                let message = Letter {
                    from_name: "authcheck",
                    from_address: &from,
                    to: recipient,
                    subject: &subject,
                    in_reply_to: None,
                    auto_submitted: "auto-generated",
                    date: now.timestamp(),
                    message_id: &message_id,
                    text: &text,
                    html: Some(&html),
                }
                .compose();
                NewOutgoing {
                    kind: OutgoingKind::Summary,
                    recipient: recipient.clone(),
                    client: String::new(),
                    message,
                    created_at: now.timestamp(),
                    give_up_at: self.config.retry.give_up_at(now.timestamp()),
                }
            })
            .collect();
        let claim = SlotClaim {
            target: CLAIM_TARGET,
            slot,
            instance: &self.config.instance,
            now: now.timestamp(),
        };
        let Some(ids) = self
            .store
            .queue_claimed(&claim, messages, self.config.max_queued)
            .await?
        else {
            return Ok(None);
        };
        let mut queued = 0;
        for (recipient, id) in self.config.recipients.iter().zip(ids) {
            match id {
                Some(id) => {
                    tracing::info!(%recipient, id, "weekly summary queued");
                    queued += 1;
                }
                None => tracing::warn!(
                    %recipient,
                    "weekly summary not queued: the outgoing queue is full (outgoing_queue_max)"
                ),
            }
        }
        Ok(Some(queued))
    }
}

// A week's claim must outlive the week, or the purge would let it be claimed and sent again.
const _: () = assert!(authcheck_store::CLAIMS_KEPT_BEYOND_RETENTION > WEEK_SECONDS);

/// Looks every minute whether a new week began, until `stop`; the first look is at start.
pub async fn run_periodically(summarizer: Summarizer, stop: watch::Receiver<bool>) {
    let summarizer = &summarizer;
    crate::schedule::repeat(tokio::time::Instant::now(), POLL, stop, |now| async move {
        if let Err(error) = summarizer.run_once(now).await {
            tracing::warn!(%error, "the weekly summary could not be made; will try again");
        }
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> SummaryConfig {
        SummaryConfig {
            recipients: vec!["ops@example.net".into(), "boss@example.net".into()],
            instance: "a.tester.test".into(),
            tester_domain: "tester.test".into(),
            public_url: "https://tester.test".into(),
            retry: RetryPolicy {
                first_retry: Duration::from_secs(60),
                give_up_after: Duration::from_secs(86_400),
            },
            max_queued: 100,
        }
    }

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    /// The clock is passed in: one summary per recipient per week, Monday to Monday, claimed
    /// once; a new week brings the next.
    #[tokio::test]
    async fn one_summary_per_week_for_every_recipient() {
        let store = authcheck_store::open("sqlite::memory:").await.unwrap();
        let summarizer = Summarizer {
            config: config(),
            store: store.clone(),
        };
        // Monday 2026-11-30.
        let monday = at("2026-11-30T00:00:30Z");
        assert_eq!(summarizer.run_once(monday).await.unwrap(), Some(2));
        let sunday = at("2026-12-06T23:59:00Z");
        assert_eq!(summarizer.run_once(sunday).await.unwrap(), None);
        let next_monday = at("2026-12-07T00:01:00Z");
        assert_eq!(summarizer.run_once(next_monday).await.unwrap(), Some(2));
        let due = store
            .claim_outgoing(
                "w",
                next_monday.timestamp(),
                next_monday.timestamp() + 60,
                10,
            )
            .await
            .unwrap();
        assert_eq!(due.len(), 4);
        let text = String::from_utf8_lossy(&due[0].message).into_owned();
        assert!(text.contains("Auto-Submitted: auto-generated"), "{text}");
        assert!(
            text.contains("multipart/alternative"),
            "text and HTML parts: {text}"
        );
        assert!(text.contains("weekly summary: 0 messages tested"), "{text}");
    }

    /// A database hiccup while the week is gathered, or while its messages are queued, leaves
    /// the week unclaimed: the next look, a minute later, sends it, once.
    #[tokio::test]
    async fn a_failed_summary_is_sent_on_the_next_look() {
        let real = authcheck_store::open("sqlite::memory:").await.unwrap();
        let flaky = std::sync::Arc::new(crate::test_store::FlakyStore::new(real.clone()));
        let summarizer = Summarizer {
            config: config(),
            store: flaky.clone(),
        };
        let monday = at("2026-11-30T00:00:30Z");
        flaky.fail_next("list", 1);
        assert!(summarizer.run_once(monday).await.is_err());
        flaky.fail_next("queue_claimed", 1);
        let a_minute_later = monday + chrono::Duration::seconds(60);
        assert!(summarizer.run_once(a_minute_later).await.is_err());
        let two_minutes_later = a_minute_later + chrono::Duration::seconds(60);
        assert_eq!(
            summarizer.run_once(two_minutes_later).await.unwrap(),
            Some(2)
        );
        let later = two_minutes_later + chrono::Duration::seconds(60);
        assert_eq!(summarizer.run_once(later).await.unwrap(), None);
        let due = real
            .claim_outgoing("w", later.timestamp(), later.timestamp() + 60, 10)
            .await
            .unwrap();
        assert_eq!(due.len(), 2, "one summary per recipient");
    }

    #[test]
    fn the_summary_says_what_the_week_held_and_escapes_names() {
        let week = Week {
            results: 3,
            more: false,
            verdicts: vec![("|OK| spf-pass".into(), 2), ("!! dkim-fail !!".into(), 1)],
            senders: vec![("sender.example".into(), 3)],
            hosts: vec![("<script>x</script>".into(), 3)],
            self_checks: 4,
            self_checks_ok: 3,
            dmarc: vec![("sender.example".into(), 120, 4)],
        };
        let (text, html) = render(&week, "https://tester.test/", at("2026-12-07T00:00:00Z"));
        assert!(text.contains("Messages tested: 3"), "{text}");
        assert!(text.contains("3 of 4 self-checks passed (75.0%)"), "{text}");
        assert!(text.contains("       2  |OK| spf-pass"), "{text}");
        assert!(
            text.contains("sender.example: 120 messages in 4 reports"),
            "{text}"
        );
        assert!(text.contains("https://tester.test/dmarc"), "{text}");
        assert!(html.contains("&lt;script&gt;x&lt;/script&gt;"), "{html}");
        assert!(!html.contains("<script>"), "{html}");
        assert!(
            html.contains("<a href=\"https://tester.test/dmarc/sender.example\">"),
            "{html}"
        );
    }
}
