//! Replies by mail: whether a tested message gets its results back by mail ([`eligibility`], a
//! pure function with a typed reason for every "no"), the reply itself ([`compose_reply`]), and
//! the decision taken after the message's results are stored ([`Replies::decide`]): queued in
//! the store within the rate limits, or recorded with the reason, so that the result page can
//! say which.
//!
//! The rules keep the tester from becoming a backscatter source (RFC 3834): a reply only to
//! the MAIL FROM address of a message that passed DMARC with an aligned identity, whose MAIL
//! FROM is authenticated too (SPF passed for it, or it is the From address itself), never to
//! `<>`, never to automatic or list mail, never to the tester's own domains. The reply goes
//! out from `<>` with `Auto-Submitted: auto-replied`, and is signed and delivered by the
//! outgoing queue ([`crate::outgoing`]).

use std::fmt::Write as _;
use std::net::IpAddr;
use std::time::Duration;

use authcheck_outbound::{Letter, MAX_LETTER_BYTES, RetryPolicy};
use authcheck_store::{
    Mailbox, NewOutgoing, NoReply, OutgoingKind, ReplyLimits, SharedStore, StoreError,
};
use authcheck_verifier::diagnosis::Severity;
use authcheck_verifier::{DmarcResult, Report, SpfResult};
use chrono::{DateTime, Utc};
use mail_parser::MessageParser;

/// Which tester mailboxes get replies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReplyScope {
    /// No replies: the default.
    Off,
    /// Only messages to `check@`.
    Check,
    /// Messages to `check@`, `spf@` and `dkim@`.
    All,
}

impl ReplyScope {
    /// Whether a message to `mailbox` may get a reply.
    pub fn covers(self, mailbox: Mailbox) -> bool {
        match self {
            ReplyScope::Off => false,
            ReplyScope::All => true,
            ReplyScope::Check => is_check_mailbox(mailbox),
        }
    }
}

/// `check@`, the full-check mailbox, the one meant to answer by mail.
fn is_check_mailbox(mailbox: Mailbox) -> bool {
    mailbox == Mailbox::Check
}

/// The most bytes of a message's header read for the reply rules.
const MAX_HEADER_BYTES: usize = 64 * 1024;
/// The most diagnosis findings a reply lists.
const MAX_FINDINGS_IN_REPLY: usize = 12;
/// The most bytes of one finding's text (title, detail, fix) in a reply.
const MAX_FINDING_BYTES: usize = 2000;
/// The most bytes of the Authentication-Results field quoted in a reply.
const MAX_AUTH_RESULTS_BYTES: usize = 8 * 1024;

/// What the reply rules read of a message's header (RFC 3834).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HeaderFacts {
    /// `Auto-Submitted`, its first token lowercase.
    pub auto_submitted: Option<String>,
    /// `Precedence`, lowercase.
    pub precedence: Option<String>,
    pub list_id: bool,
    /// The Message-ID field as written (`<id@host>`).
    pub message_id: Option<String>,
    /// The From field's address, lowercase, when it names exactly one.
    pub from_address: Option<String>,
}

impl HeaderFacts {
    /// Reads the fields from the message's header, at most [`MAX_HEADER_BYTES`] of it.
    pub fn of(message: &[u8]) -> HeaderFacts {
        let header_end = message
            .windows(4)
            .take(MAX_HEADER_BYTES)
            .position(|window| window == b"\r\n\r\n")
            .map_or(message.len().min(MAX_HEADER_BYTES), |at| at + 4);
        let Some(parsed) = MessageParser::new().parse_headers(&message[..header_end]) else {
            return HeaderFacts::default();
        };
        let text = |name: &str| {
            parsed
                .header_raw(name)
                .map(|value| value.trim().to_ascii_lowercase())
        };
        HeaderFacts {
            auto_submitted: text("Auto-Submitted").map(|value| {
                value
                    .split(|c: char| c == ';' || c == '(' || c.is_whitespace())
                    .next()
                    .unwrap_or_default()
                    .to_owned()
            }),
            precedence: text("Precedence"),
            list_id: parsed.header_raw("List-Id").is_some(),
            message_id: parsed
                .header_raw("Message-ID")
                .map(|value| value.trim().to_owned()),
            from_address: parsed
                .from()
                .and_then(|from| match from.as_list() {
                    Some([only]) => only.address(),
                    _ => None,
                })
                .map(str::to_lowercase),
        }
    }
}

/// Everything the rules look at for one message.
#[derive(Clone, Copy, Debug)]
pub struct ReplyFacts<'a> {
    /// The MAIL FROM address; empty for `<>`.
    pub mail_from: &'a str,
    /// The tester mailboxes the message was sent to.
    pub mailboxes: &'a [Mailbox],
    pub report: &'a Report,
    pub header: &'a HeaderFacts,
}

/// Whether the message may get a reply, and if not, why: the first rule it breaks, in the
/// order below. `own_domains` are the tester's, which it must never answer.
pub fn eligibility(
    scope: ReplyScope,
    own_domains: &[String],
    facts: &ReplyFacts<'_>,
) -> Result<(), NoReply> {
    if !facts.mailboxes.iter().any(|&mailbox| scope.covers(mailbox)) {
        return Err(NoReply::MailboxNotReplied);
    }
    if facts.mail_from.is_empty() || !facts.mail_from.contains('@') {
        return Err(NoReply::NullSender);
    }
    if facts
        .header
        .auto_submitted
        .as_deref()
        .is_some_and(|value| value != "no")
    {
        return Err(NoReply::AutoSubmitted);
    }
    if facts
        .header
        .precedence
        .as_deref()
        .is_some_and(|value| matches!(value, "bulk" | "list" | "junk"))
    {
        return Err(NoReply::BulkPrecedence);
    }
    if facts.header.list_id {
        return Err(NoReply::MailingList);
    }
    let dmarc = &facts.report.dmarc;
    let aligned = dmarc.spf_alignment.aligned || dmarc.dkim_alignment.aligned;
    if dmarc.result != DmarcResult::Pass || !aligned {
        return Err(NoReply::DmarcNotPassed);
    }
    if !mail_from_is_authenticated(facts) {
        return Err(NoReply::SenderNotAligned);
    }
    if is_own_address(facts.mail_from, own_domains) {
        return Err(NoReply::TesterItself);
    }
    Ok(())
}

/// The MAIL FROM address is the sender's own: SPF passed for it, or it is the From address
/// that passed DMARC. A DKIM-only pass vouches for the From domain's signer, not for which of
/// its users asked: anyone can replay a message their provider signed, with the MAIL FROM of
/// another user of that provider, so no other address of the From domain (or of its
/// organization) is trusted.
fn mail_from_is_authenticated(facts: &ReplyFacts<'_>) -> bool {
    let report = facts.report;
    if report.spf.check.checked && report.spf.check.result == SpfResult::Pass {
        return true;
    }
    facts
        .header
        .from_address
        .as_deref()
        .is_some_and(|from| from == facts.mail_from.to_lowercase())
}

/// What a reply says about one message.
pub struct ReplyContent<'a> {
    pub tester_domain: &'a str,
    pub public_url: &'a str,
    pub recipient: &'a str,
    pub report: &'a Report,
    /// `(mailbox, verdict, result id)` of each stored result.
    pub results: &'a [(Mailbox, String, String)],
    pub subject: Option<&'a str>,
    pub client_ip: IpAddr,
    pub received_at: DateTime<Utc>,
    pub in_reply_to: Option<&'a str>,
}

/// The reply, unsigned: the verdicts in the Subject; in the body the verdicts, DMARC, the
/// diagnosis, the Authentication-Results field and the links, at most [`MAX_LETTER_BYTES`].
pub fn compose_reply(content: &ReplyContent<'_>, now: DateTime<Utc>) -> Vec<u8> {
    let verdicts: Vec<&str> = content
        .results
        .iter()
        .map(|(_, verdict, _)| verdict.as_str())
        .collect();
    let subject = format!("authcheck results: {}", verdicts.join(", "));
    let mut text = String::new();
    let _ = writeln!(
        text,
        "authcheck tested the message you sent from {} at {}{}.",
        content.client_ip,
        content.received_at.format("%Y-%m-%d %H:%M:%S UTC"),
        match content.subject {
            Some(subject) if !subject.is_empty() => format!(
                " with the subject \"{}\"",
                cut(&subject.replace(['\r', '\n'], " "), 200)
            ),
            _ => String::new(),
        }
    );
    text.push('\n');
    for (mailbox, verdict, id) in content.results {
        let _ = writeln!(text, "  {}@: {verdict}", mailbox.as_str());
        let _ = writeln!(
            text,
            "    full report: {}",
            authcheck_web::result_url(content.public_url, id)
        );
    }
    let dmarc = &content.report.dmarc;
    let _ = writeln!(
        text,
        "  DMARC: {} (policy {}){}",
        dmarc.result.as_str(),
        dmarc.policy,
        match (dmarc.spf_alignment.aligned, dmarc.dkim_alignment.aligned) {
            (true, true) => ", SPF and DKIM aligned",
            (true, false) => ", SPF aligned",
            (false, true) => ", DKIM aligned",
            (false, false) => "",
        }
    );
    let findings: Vec<_> = content
        .report
        .diagnosis
        .iter()
        .filter(|finding| finding.severity != Severity::Info)
        .take(MAX_FINDINGS_IN_REPLY)
        .collect();
    text.push_str("\nDiagnosis:\n");
    if findings.is_empty() {
        text.push_str("  Nothing to fix was found.\n");
    }
    for finding in findings {
        let _ = writeln!(
            text,
            "  - [{}] {}",
            finding.severity.as_str(),
            cut(&finding.title, MAX_FINDING_BYTES)
        );
        let _ = writeln!(text, "    {}", cut(&finding.detail, MAX_FINDING_BYTES));
        if let Some(fix) = &finding.fix {
            let _ = writeln!(text, "    What to do: {}", cut(fix, MAX_FINDING_BYTES));
        }
    }
    let _ = writeln!(
        text,
        "\nAuthentication-Results as authcheck added them:\n  {}",
        cut(
            &content.report.authentication_results,
            MAX_AUTH_RESULTS_BYTES
        )
    );
    let _ = writeln!(
        text,
        "\nThis reply went to the MAIL FROM address of a message that passed DMARC. Why and \
         when authcheck replies: {}/replies",
        content.public_url.trim_end_matches('/')
    );
    let from_address = format!("check@{}", content.tester_domain);
    let message_id = format!(
        "reply.{}.{:08x}@{}",
        now.timestamp_millis(),
        rand_suffix(),
        content.tester_domain
    );
    let text = cut(&text, MAX_LETTER_BYTES - 8 * 1024);
    Letter {
        from_name: "authcheck",
        from_address: &from_address,
        to: content.recipient,
        subject: &subject,
        in_reply_to: content.in_reply_to,
        auto_submitted: "auto-replied",
        date: now.timestamp(),
        message_id: &message_id,
        text,
        html: None,
    }
    .compose()
}

/// A few random bits for Message-IDs made in the same millisecond.
fn rand_suffix() -> u32 {
    // The hash of a fresh RandomState is seeded from the OS's randomness.
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u8(0);
    hasher.finish() as u32
}

/// `text` cut to at most `max` bytes on a character boundary.
fn cut(text: &str, max: usize) -> &str {
    &text[..text.floor_char_boundary(max)]
}

/// The replies' settings, resolved.
#[derive(Clone, Debug)]
pub struct ReplyConfig {
    pub scope: ReplyScope,
    pub limits: ReplyLimits,
    pub retry: RetryPolicy,
    /// The first tester domain: replies come from `check@` it and are signed for it.
    pub tester_domain: String,
    /// Every tester domain: no reply goes to them, or the tester would answer itself.
    pub own_domains: Vec<String>,
    pub public_url: String,
}

/// Takes the reply decision for each tested message.
pub struct Replies {
    pub config: ReplyConfig,
    pub store: SharedStore,
}

/// What one message brings to the decision.
pub struct Tested<'a> {
    pub facts: ReplyFacts<'a>,
    pub content: ReplyContent<'a>,
    pub client: String,
}

impl Replies {
    /// Decides whether `tested` gets a reply, queues it or records why not, at `now`; the
    /// decision, for the log.
    pub async fn decide(
        &self,
        tested: &Tested<'_>,
        now: DateTime<Utc>,
    ) -> Result<Result<String, NoReply>, StoreError> {
        let ids: Vec<String> = tested
            .content
            .results
            .iter()
            .map(|(_, _, id)| id.clone())
            .collect();
        if let Err(reason) = eligibility(self.config.scope, &self.config.own_domains, &tested.facts)
        {
            self.store
                .record_no_reply(&ids, reason, now.timestamp())
                .await?;
            return Ok(Err(reason));
        }
        let message = compose_reply(&tested.content, now);
        let reply = NewOutgoing {
            kind: OutgoingKind::Reply,
            recipient: tested.facts.mail_from.to_owned(),
            client: tested.client.clone(),
            message,
            created_at: now.timestamp(),
            give_up_at: self.config.retry.give_up_at(now.timestamp()),
        };
        self.store
            .queue_reply(&ids, reply, &self.config.limits)
            .await
    }
}

/// Whether `address` is in one of `domains` or below one (case and a final dot aside).
fn is_own_address(address: &str, domains: &[String]) -> bool {
    let Some((_, domain)) = address.rsplit_once('@') else {
        return false;
    };
    let domain = domain.trim_end_matches('.').to_ascii_lowercase();
    domains.iter().any(|own| {
        let own = own.trim_end_matches('.').to_ascii_lowercase();
        domain == own
            || domain
                .strip_suffix(own.as_str())
                .is_some_and(|above| above.ends_with('.'))
    })
}

/// A rate limit as an operator writes it: `N/DURATION` (`1/10m`, `20/1h`), or `0` for none.
pub fn parse_rate(text: &str) -> Result<authcheck_store::RateLimit, String> {
    let text = text.trim();
    let problem = || format!("{text:?} is not a rate such as 1/10m or 20/1h (0 for no limit)");
    if text == "0" {
        return Ok(authcheck_store::RateLimit {
            count: 0,
            window_seconds: 1,
        });
    }
    let (count, window) = text.split_once('/').ok_or_else(problem)?;
    let count: u32 = count.trim().parse().map_err(|_| problem())?;
    let window: Duration = humantime::parse_duration(window.trim()).map_err(|_| problem())?;
    if window.as_secs() == 0 {
        return Err(problem());
    }
    Ok(authcheck_store::RateLimit {
        count,
        window_seconds: window.as_secs().min(i64::MAX as u64) as i64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn passing_report() -> Report {
        let mut report: Report = serde_json::from_str(include_str!("testdata/report.json"))
            .expect("the sample report parses");
        report.dmarc.result = DmarcResult::Pass;
        report.dmarc.spf_alignment.aligned = true;
        report.dmarc.organizational_domain = Some("sender.example".into());
        report.spf.check.checked = true;
        report.spf.check.result = SpfResult::Pass;
        report
    }

    fn facts<'a>(
        report: &'a Report,
        header: &'a HeaderFacts,
        mail_from: &'a str,
    ) -> ReplyFacts<'a> {
        ReplyFacts {
            mail_from,
            mailboxes: &[Mailbox::Spf],
            report,
            header,
        }
    }

    /// A message from one of the tester's own domains (its self-check's, say) that passes
    /// every other rule gets no reply: the tester would mail itself.
    #[tokio::test]
    async fn no_reply_goes_to_the_testers_own_domains() {
        let store = authcheck_store::open("sqlite::memory:").await.unwrap();
        let replies = Replies {
            config: ReplyConfig {
                scope: ReplyScope::All,
                limits: ReplyLimits {
                    per_address: authcheck_store::RateLimit {
                        count: 0,
                        window_seconds: 1,
                    },
                    per_domain: authcheck_store::RateLimit {
                        count: 0,
                        window_seconds: 1,
                    },
                    per_client: authcheck_store::RateLimit {
                        count: 0,
                        window_seconds: 1,
                    },
                    max_queued: 100,
                },
                retry: RetryPolicy {
                    first_retry: Duration::from_secs(60),
                    give_up_after: Duration::from_secs(86_400),
                },
                tester_domain: "tester.test".into(),
                own_domains: vec!["tester.test".into(), "Other.Tester.example".into()],
                public_url: "https://tester.test".into(),
            },
            store: store.clone(),
        };
        let report = passing_report();
        let now = Utc::now();
        let mut decided = Vec::new();
        for (n, mail_from) in [
            "check@tester.test",
            "x@TESTER.TEST.",
            "x@mx.other.tester.example",
            "alice@sender.example",
            "x@nottester.test",
        ]
        .into_iter()
        .enumerate()
        {
            let header = HeaderFacts {
                from_address: Some(mail_from.to_lowercase()),
                ..HeaderFacts::default()
            };
            let results = [(Mailbox::Spf, "|OK|".to_owned(), format!("{n:032x}"))];
            let tested = Tested {
                facts: facts(&report, &header, mail_from),
                content: ReplyContent {
                    tester_domain: "tester.test",
                    public_url: "https://tester.test",
                    recipient: mail_from,
                    report: &report,
                    results: &results,
                    subject: None,
                    client_ip: "192.0.2.1".parse().unwrap(),
                    received_at: now,
                    in_reply_to: None,
                },
                client: "192.0.2.1".into(),
            };
            decided.push(replies.decide(&tested, now).await.unwrap().err());
        }
        let own = Some(NoReply::TesterItself);
        assert_eq!(decided, [own, own, own, None, None]);
        let queued = store
            .claim_outgoing("w", now.timestamp(), now.timestamp() + 60, 10)
            .await
            .unwrap();
        let mut recipients: Vec<_> = queued.iter().map(|m| m.recipient.as_str()).collect();
        recipients.sort();
        assert_eq!(recipients, ["alice@sender.example", "x@nottester.test"]);
    }

    #[test]
    fn a_dmarc_pass_with_an_authenticated_sender_gets_a_reply() {
        let report = passing_report();
        let header = HeaderFacts::default();
        let facts = facts(&report, &header, "alice@sender.example");
        assert_eq!(eligibility(ReplyScope::All, &[], &facts), Ok(()));
        assert_eq!(
            eligibility(ReplyScope::Off, &[], &facts),
            Err(NoReply::MailboxNotReplied)
        );
        assert_eq!(
            eligibility(ReplyScope::Check, &[], &facts),
            Err(NoReply::MailboxNotReplied),
            "spf@ is not replied to when only check@ is"
        );
        let to_check = ReplyFacts {
            mailboxes: &[Mailbox::Check],
            ..facts
        };
        assert_eq!(eligibility(ReplyScope::Check, &[], &to_check), Ok(()));
    }

    #[test]
    fn every_rule_has_its_reason() {
        let report = passing_report();
        let plain = HeaderFacts::default();
        assert_eq!(
            eligibility(ReplyScope::All, &[], &facts(&report, &plain, "")),
            Err(NoReply::NullSender)
        );
        for (header, reason) in [
            (
                HeaderFacts {
                    auto_submitted: Some("auto-replied".into()),
                    ..HeaderFacts::default()
                },
                NoReply::AutoSubmitted,
            ),
            (
                HeaderFacts {
                    precedence: Some("bulk".into()),
                    ..HeaderFacts::default()
                },
                NoReply::BulkPrecedence,
            ),
            (
                HeaderFacts {
                    precedence: Some("junk".into()),
                    ..HeaderFacts::default()
                },
                NoReply::BulkPrecedence,
            ),
            (
                HeaderFacts {
                    list_id: true,
                    ..HeaderFacts::default()
                },
                NoReply::MailingList,
            ),
        ] {
            assert_eq!(
                eligibility(
                    ReplyScope::All,
                    &[],
                    &facts(&report, &header, "a@sender.example")
                ),
                Err(reason)
            );
        }
        let no = HeaderFacts {
            auto_submitted: Some("no".into()),
            precedence: Some("first-class".into()),
            ..HeaderFacts::default()
        };
        assert_eq!(
            eligibility(
                ReplyScope::All,
                &[],
                &facts(&report, &no, "a@sender.example")
            ),
            Ok(())
        );

        // SPF passing alone is not enough: DMARC must pass with an aligned identity.
        let mut spf_only = passing_report();
        spf_only.dmarc.result = DmarcResult::Fail;
        spf_only.dmarc.spf_alignment.aligned = false;
        assert_eq!(
            eligibility(
                ReplyScope::All,
                &[],
                &facts(&spf_only, &plain, "a@sender.example")
            ),
            Err(NoReply::DmarcNotPassed)
        );
        let mut none = passing_report();
        none.dmarc.result = DmarcResult::None;
        assert_eq!(
            eligibility(
                ReplyScope::All,
                &[],
                &facts(&none, &plain, "a@sender.example")
            ),
            Err(NoReply::DmarcNotPassed)
        );

        // A DKIM-only pass vouches for the From address alone: a replayed message signed by a
        // shared provider must not bring a reply to another of its users, nor to anyone else.
        let mut dkim_only = passing_report();
        dkim_only.dmarc.spf_alignment.aligned = false;
        dkim_only.dmarc.dkim_alignment.aligned = true;
        dkim_only.spf.check.result = SpfResult::Fail;
        let from_alice = HeaderFacts {
            from_address: Some("alice@sender.example".into()),
            ..HeaderFacts::default()
        };
        for mail_from in [
            "victim@elsewhere.example",
            "victim@sender.example",
            "bounces@mail.sender.example",
        ] {
            assert_eq!(
                eligibility(
                    ReplyScope::All,
                    &[],
                    &facts(&dkim_only, &from_alice, mail_from)
                ),
                Err(NoReply::SenderNotAligned),
                "{mail_from}"
            );
        }
        assert_eq!(
            eligibility(
                ReplyScope::All,
                &[],
                &facts(&dkim_only, &from_alice, "Alice@Sender.example")
            ),
            Ok(())
        );
        // Without one From address there is nothing to compare with.
        assert_eq!(
            eligibility(
                ReplyScope::All,
                &[],
                &facts(&dkim_only, &plain, "alice@sender.example")
            ),
            Err(NoReply::SenderNotAligned)
        );
    }

    #[test]
    fn the_from_address_is_read_only_when_it_is_one() {
        let one = HeaderFacts::of(b"From: Alice <Alice@Sender.Example>\r\nSubject: x\r\n\r\nbody");
        assert_eq!(one.from_address.as_deref(), Some("alice@sender.example"));
        let two = HeaderFacts::of(b"From: a@one.example, b@two.example\r\n\r\nbody");
        assert_eq!(two.from_address, None);
        let none = HeaderFacts::of(b"Subject: x\r\n\r\nbody");
        assert_eq!(none.from_address, None);
    }

    #[test]
    fn the_header_fields_are_read_as_rfc_3834_says() {
        let header = HeaderFacts::of(
            b"From: a@b.example\r\nAuto-Submitted: Auto-Generated (by cron)\r\n\
              Precedence: BULK\r\nList-Id: <list.example>\r\nMessage-ID: <m1@b.example>\r\n\r\n\
              body\r\nAuto-Submitted: no\r\n",
        );
        assert_eq!(header.auto_submitted.as_deref(), Some("auto-generated"));
        assert_eq!(header.precedence.as_deref(), Some("bulk"));
        assert!(header.list_id);
        assert_eq!(header.message_id.as_deref(), Some("<m1@b.example>"));
        assert_eq!(
            HeaderFacts::of(b"Subject: x\r\n\r\nList-Id: <in the body>\r\n"),
            HeaderFacts::default()
        );
    }

    #[test]
    fn rates_parse_with_a_window() {
        assert_eq!(
            parse_rate("1/10m"),
            Ok(authcheck_store::RateLimit {
                count: 1,
                window_seconds: 600
            })
        );
        assert_eq!(parse_rate("20/1h").unwrap().window_seconds, 3600);
        assert_eq!(parse_rate("0").unwrap().count, 0);
        for bad in ["1", "x/1h", "1/0s", "1/often", ""] {
            assert!(parse_rate(bad).is_err(), "{bad}");
        }
    }
}
