//! Diagnosis: why a message got its verdict, in words a mail administrator can act on.
//!
//! The checks say *what* failed (`!! dkim-fail !!`, "body hash did not verify"); diagnosis reads
//! the rest of the message — the Received chain, earlier authentication results, forwarding
//! markers, the body, the records found — and says *what happened* and *what to do*, with
//! evidence. Each finding has a stable [`FindingCode`] other programs can match on.
//!
//! Diagnosis explains; it never changes a verdict: it runs after the [`Report`] is complete and
//! only appends to [`Report::diagnosis`]. Everything here is a pure function of the message, how
//! it arrived, the report and the few DNS answers gathered up front ([`Upstream`]), and its cost
//! is bounded for hostile input: at most [`MAX_HOPS`] Received fields are read, at most
//! [`MAX_BODY_CANDIDATES`] candidate originals are hashed per signature, and all work on the
//! body is linear in its size.
//!
//! One file per family of findings:
//! - `relay`: the Received chain, the hop before an intermediary, SRS, `+caf_=`, lists.
//! - `earlier`: earlier `Authentication-Results` and ARC sets, as evidence.
//! - `body`: how a signed body was changed (appended lines, line ends, whitespace, long lines
//!   broken in two), and a filter's tag on a signed Subject.
//! - `headers`: which signed header field changed, from an earlier copy of the message.
//! - `shape`: message shape problems (long lines, bare LF, undeclared 8-bit, `l=`).
//! - `records`: SPF, DMARC and DKIM key advice with the sender's own values.
//! - `senders`: passes for a domain that is not the sender's (a sending service).

use std::net::IpAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::dkim::message::RawMessage;
use crate::dns::Dns;
use crate::report::{Report, SpfCheck, SpfResult};
use crate::verifier::{BodyParameter, MessageInput};

mod body;
mod earlier;
mod headers;
mod records;
mod relay;
mod senders;
mod shape;

pub use relay::{Hop, parse_received};

/// The most Received fields read, from the top: real chains are under 15 hops.
pub const MAX_HOPS: usize = 30;
/// The most candidate originals hashed per failing signature when looking for what changed the
/// body (cuts after each of the last lines, plus one per other kind of change).
pub const MAX_BODY_CANDIDATES: usize = 2000;
/// The most signatures whose body change is looked for.
pub const MAX_SIGNATURES_DIAGNOSED: usize = 3;
/// The most earlier Authentication-Results / ARC fields read.
pub const MAX_EARLIER_RESULTS: usize = 20;
/// The most bytes of one header field value read by diagnosis.
const MAX_FIELD_BYTES: usize = 4096;
/// The most bytes of one evidence line.
const MAX_EVIDENCE_CHARS: usize = 240;

/// What a finding is about; stable, matched on by other programs.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "kebab-case")]
pub enum FindingCode {
    /// SPF fails for the connecting relay but passes for the hop before it.
    SpfPassesAtPreviousHop,
    /// The MAIL FROM was rewritten by a forwarder (Sender Rewriting Scheme).
    SrsForwarded,
    /// The MAIL FROM shows Gmail-style forwarding (`+caf_=`).
    MailboxForwarded,
    /// The message came through a mailing list.
    MailingList,
    /// A Received field names a recipient other than the tester: the message was forwarded.
    ReceivedForOtherRecipient,
    /// An ARC sealer recorded passing results before the message was changed.
    ArcSealerSawPass,
    /// An earlier Authentication-Results field recorded passing results.
    EarlierResultsPassed,
    /// Lines were added at the end of the body after signing.
    BodyAppended,
    /// Line ends changed between LF and CRLF after signing.
    BodyLineEndsChanged,
    /// Whitespace at line ends changed after signing.
    BodyTrailingWhitespaceChanged,
    /// Long lines were broken in two after signing.
    BodyLinesRefolded,
    /// The Subject carries a tag a filter adds, and the Subject is signed.
    SubjectTagged,
    /// A signed header field differs from an earlier copy of the message (`z=`, an attached
    /// original).
    SignedHeaderChanged,
    /// Lines longer than 998 bytes, which relays re-fold.
    LongLines,
    /// Bare LF line ends.
    BareLf,
    /// 8-bit bytes in the body without `BODY=8BITMIME` on MAIL FROM.
    EightBitUndeclared,
    /// A signature with `l=`: content can be appended without breaking it.
    BodyLengthLimit,
    /// SPF permerror: too many DNS-querying terms.
    SpfTooManyLookups,
    /// SPF permerror: too many lookups that found nothing.
    SpfTooManyVoidLookups,
    /// SPF permerror: more than one SPF record.
    SpfSeveralRecords,
    /// SPF permerror for another reason (syntax, unknown mechanism).
    SpfPermerror,
    /// The SPF record ends in `~all`.
    SpfSoftAll,
    /// A DMARC record without `rua`: no aggregate reports.
    DmarcNoReports,
    /// The DMARC policy that applies to the From domain (`p=`, `sp=` or `np=`) is `none`.
    DmarcPolicyNone,
    /// An RSA key under 2048 bits.
    DkimKeyShort,
    /// A DKIM key record in testing mode (`t=y`).
    DkimKeyTesting,
    /// DMARC fails: the organizational domains of MAIL FROM, `d=` and From side by side.
    AlignmentDomains,
    /// SPF passes only for a domain that is not the From domain's (a sending service's).
    UnalignedSpfPass,
    /// DKIM passes only for a domain that is not the From domain's (a sending service's).
    UnalignedDkimPass,
}

impl FindingCode {
    /// The code as it appears in JSON, e.g. `body-appended`.
    pub fn as_str(self) -> &'static str {
        match self {
            FindingCode::SpfPassesAtPreviousHop => "spf-passes-at-previous-hop",
            FindingCode::SrsForwarded => "srs-forwarded",
            FindingCode::MailboxForwarded => "mailbox-forwarded",
            FindingCode::MailingList => "mailing-list",
            FindingCode::ReceivedForOtherRecipient => "received-for-other-recipient",
            FindingCode::ArcSealerSawPass => "arc-sealer-saw-pass",
            FindingCode::EarlierResultsPassed => "earlier-results-passed",
            FindingCode::BodyAppended => "body-appended",
            FindingCode::BodyLineEndsChanged => "body-line-ends-changed",
            FindingCode::BodyTrailingWhitespaceChanged => "body-trailing-whitespace-changed",
            FindingCode::BodyLinesRefolded => "body-lines-refolded",
            FindingCode::SubjectTagged => "subject-tagged",
            FindingCode::SignedHeaderChanged => "signed-header-changed",
            FindingCode::LongLines => "long-lines",
            FindingCode::BareLf => "bare-lf",
            FindingCode::EightBitUndeclared => "eight-bit-undeclared",
            FindingCode::BodyLengthLimit => "body-length-limit",
            FindingCode::SpfTooManyLookups => "spf-too-many-lookups",
            FindingCode::SpfTooManyVoidLookups => "spf-too-many-void-lookups",
            FindingCode::SpfSeveralRecords => "spf-several-records",
            FindingCode::SpfPermerror => "spf-permerror",
            FindingCode::SpfSoftAll => "spf-soft-all",
            FindingCode::DmarcNoReports => "dmarc-no-reports",
            FindingCode::DmarcPolicyNone => "dmarc-policy-none",
            FindingCode::DkimKeyShort => "dkim-key-short",
            FindingCode::DkimKeyTesting => "dkim-key-testing",
            FindingCode::AlignmentDomains => "alignment-domains",
            FindingCode::UnalignedSpfPass => "unaligned-spf-pass",
            FindingCode::UnalignedDkimPass => "unaligned-dkim-pass",
        }
    }
}

/// How much a finding matters.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Background that helps read the result.
    Info,
    /// Works today but is fragile or will fail somewhere.
    Warning,
    /// Why authentication fails: mail is or will be rejected.
    Problem,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Problem => "problem",
        }
    }
}

/// One finding, written for a mail administrator who is not a DKIM expert.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Finding {
    pub code: FindingCode,
    pub severity: Severity,
    /// One line: what happened.
    pub title: String,
    /// A few sentences with the sender's own names and addresses.
    pub detail: String,
    /// What in the message or the DNS shows it (header fields, counts, lines), each one line.
    pub evidence: Vec<String>,
    /// What to do about it, when there is something to do.
    pub fix: Option<String>,
}

impl Finding {
    fn new(code: FindingCode, severity: Severity, title: String, detail: String) -> Finding {
        Finding {
            code,
            severity,
            title,
            detail,
            evidence: Vec::new(),
            fix: None,
        }
    }

    fn evidence(mut self, line: impl AsRef<str>) -> Finding {
        self.evidence.push(one_line(line.as_ref()));
        self
    }

    fn fix(mut self, fix: String) -> Finding {
        self.fix = Some(fix);
        self
    }
}

/// The DNS answers diagnosis needs beyond the report's, gathered before it runs.
#[derive(Clone, Debug, Default)]
pub struct Upstream {
    /// When SPF does not pass for the connecting client: the hop that handed the message to it,
    /// and SPF for the MAIL FROM identity evaluated for that hop's address.
    pub previous_hop: Option<(Hop, SpfCheck)>,
    /// Key record names (`s._domainkey.d`) whose record has `t=y`.
    pub testing_keys: Vec<String>,
}

/// Looks up what diagnosis needs from DNS, each lookup bounded by `time_limit`: SPF for the
/// hop before the connecting client (only when SPF does not pass), and the key records of the
/// signatures (already cached by DKIM verification).
pub async fn gather(
    dns: &Dns,
    input: &MessageInput<'_>,
    message: &RawMessage<'_>,
    report: &Report,
    time_limit: Duration,
) -> Upstream {
    let previous_hop = async {
        let (Some(client), true) = (input.client_ip, spf_needs_explaining(report)) else {
            return None;
        };
        let hops = relay::hops(message);
        let hop = relay::previous_hop(&hops, client)?.clone();
        let helo = hop.from_name.clone().unwrap_or_default();
        let check =
            crate::spf::check_mail_from(dns, hop.ip?, input.mail_from, &helo, time_limit).await;
        Some((hop, check))
    };
    let testing_keys = records::testing_keys(dns, report, time_limit);
    let (previous_hop, testing_keys) = tokio::join!(previous_hop, testing_keys);
    Upstream {
        previous_hop,
        testing_keys,
    }
}

/// Whether SPF was checked for a client address and did not pass.
fn spf_needs_explaining(report: &Report) -> bool {
    report.spf.check.checked && report.spf.check.result != SpfResult::Pass
}

/// Everything a finding may read.
pub(crate) struct Facts<'a> {
    pub client_ip: Option<IpAddr>,
    pub mail_from: &'a str,
    pub body_parameter: BodyParameter,
    pub message: &'a RawMessage<'a>,
    pub report: &'a Report,
    pub upstream: &'a Upstream,
}

impl Facts<'_> {
    /// The values of the header fields named `name`, top first, at most `limit`, each cut to
    /// [`MAX_FIELD_BYTES`] and read as text.
    fn field_values(&self, name: &str, limit: usize) -> Vec<String> {
        self.message
            .fields()
            .iter()
            .filter(|field| self.message.is_named(field, name))
            .take(limit)
            .map(|field| {
                let value = self.message.field_value(field);
                let value = &value[..value.len().min(MAX_FIELD_BYTES)];
                String::from_utf8_lossy(value).into_owned()
            })
            .collect()
    }

    /// The From domain as DMARC read it.
    fn author_domain(&self) -> Option<&str> {
        self.report.dmarc.from_domain.as_deref()
    }

    /// The organizational domain of `domain` as the report's DNS tree walk found it (RFC 9989
    /// §4.10.2), which is what DMARC alignment used; the Public Suffix List's answer only for a
    /// domain the walk did not look up (a failed signature's `d=`) or could not finish.
    fn organizational_domain(&self, domain: &str) -> String {
        self.report
            .dmarc
            .organizational_domains
            .iter()
            .find(|found| found.domain.eq_ignore_ascii_case(domain))
            .and_then(|found| found.organizational_domain.clone())
            .unwrap_or_else(|| crate::domain::psl_organizational_domain(domain))
    }

    /// The MAIL FROM domain, when there is a MAIL FROM.
    fn mail_from_domain(&self) -> Option<&str> {
        self.mail_from
            .rsplit_once('@')
            .map(|(_, domain)| domain)
            .filter(|domain| !domain.is_empty())
    }
}

/// Every finding about the message (`input`, whose header fields `message` holds), most
/// serious first (stable order within a severity).
pub fn diagnose(
    input: &MessageInput<'_>,
    message: &RawMessage<'_>,
    report: &Report,
    upstream: &Upstream,
) -> Vec<Finding> {
    let facts = Facts {
        client_ip: input.client_ip,
        mail_from: input.mail_from.trim(),
        body_parameter: input.body,
        message,
        report,
        upstream,
    };
    let mut findings = Vec::new();
    relay::diagnose(&facts, &mut findings);
    earlier::diagnose(&facts, &mut findings);
    body::diagnose(&facts, &mut findings);
    headers::diagnose(&facts, &mut findings);
    shape::diagnose(&facts, input.message, &mut findings);
    records::diagnose(&facts, &mut findings);
    senders::diagnose(&facts, &mut findings);
    findings.sort_by_key(|finding| std::cmp::Reverse(finding.severity));
    findings
}

/// `text` on one line (folding and control characters become spaces), cut to
/// [`MAX_EVIDENCE_CHARS`] characters.
fn one_line(text: &str) -> String {
    let mut out = String::new();
    let mut last_space = false;
    let mut written = 0;
    for c in text.trim().chars() {
        let c = if c.is_control() || c.is_whitespace() {
            ' '
        } else {
            c
        };
        if c == ' ' && last_space {
            continue;
        }
        last_space = c == ' ';
        if written == MAX_EVIDENCE_CHARS {
            out.push('…');
            break;
        }
        out.push(c);
        written += 1;
    }
    out
}

/// `n` followed by `word`, plural when `n` is not 1 (`word` + "s").
fn count(n: usize, word: &str) -> String {
    if n == 1 {
        format!("1 {word}")
    } else {
        format!("{n} {word}s")
    }
}

/// "1 line was" or "`n` lines were".
fn lines_were(n: usize) -> String {
    if n == 1 {
        "1 line was".into()
    } else {
        format!("{n} lines were")
    }
}
