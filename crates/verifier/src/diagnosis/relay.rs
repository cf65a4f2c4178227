//! Forwarding and upstream filters: the Received chain read into hops, SPF for the hop before
//! an intermediary, and the markers forwarders leave (SRS, `+caf_=`, list fields, Received
//! `for` clauses naming another recipient).

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use super::{Facts, Finding, FindingCode, MAX_HOPS, Severity, one_line};
use crate::dkim::message::RawMessage;
use crate::report::SpfResult;

/// One Received field: who handed the message over (`from`), who took it (`by`), and when.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hop {
    /// The name the sending host gave (`from NAME`), when it is a name.
    pub from_name: Option<String>,
    /// The sending host's address, from the `from` clause (usually in brackets in a comment).
    pub ip: Option<IpAddr>,
    /// The host that added the field (`by NAME`).
    pub by: Option<String>,
    /// The recipient named in `for <…>`.
    pub for_address: Option<String>,
    /// The date after the last `;`.
    pub time: Option<String>,
    /// The whole field value on one line, for evidence.
    pub field: String,
}

impl Hop {
    /// `192.0.2.10 (mx.example.com)`, or whichever half is known.
    pub fn describe(&self) -> String {
        match (&self.ip, &self.from_name) {
            (Some(ip), Some(name)) => format!("{ip} ({name})"),
            (Some(ip), None) => ip.to_string(),
            (None, Some(name)) => name.clone(),
            (None, None) => "an unnamed host".into(),
        }
    }
}

/// The Received fields of `message`, top (most recent) first, at most [`MAX_HOPS`].
pub(crate) fn hops(message: &RawMessage<'_>) -> Vec<Hop> {
    message
        .fields()
        .iter()
        .filter(|field| message.is_named(field, "Received"))
        .take(MAX_HOPS)
        .map(|field| {
            let value = message.field_value(field);
            let value = &value[..value.len().min(super::MAX_FIELD_BYTES)];
            parse_received(&String::from_utf8_lossy(value))
        })
        .collect()
}

/// Reads one Received field value (RFC 5321 §4.4) leniently: the clauses `from`, `by`, `for`
/// at comment depth 0, the first address literal in the `from` clause (comments included, where
/// most servers write it), and the date after the last `;`.
pub fn parse_received(value: &str) -> Hop {
    let (clauses, time) = match value.rsplit_once(';') {
        Some((clauses, time)) => (clauses, Some(one_line(time)).filter(|t| !t.is_empty())),
        None => (value, None),
    };
    let mut hop = Hop {
        time,
        field: one_line(value),
        ..Hop::default()
    };
    let mut clause = "";
    let mut depth: i32 = 0;
    for token in clauses.split_whitespace() {
        let lower = token.to_ascii_lowercase();
        if depth == 0
            && matches!(
                lower.as_str(),
                "from" | "by" | "via" | "with" | "id" | "for"
            )
        {
            clause = match lower.as_str() {
                "from" => "from",
                "by" => "by",
                "for" => "for",
                _ => "",
            };
            continue;
        }
        match clause {
            "from" => {
                if hop.ip.is_none() {
                    hop.ip = address_literal(token);
                }
                if depth == 0 && hop.from_name.is_none() && !token.starts_with('(') {
                    let name = token.trim_matches(|c| c == '[' || c == ']');
                    if address_literal(token).is_none() && !name.is_empty() {
                        hop.from_name = Some(name.to_ascii_lowercase());
                    }
                }
            }
            "by" if depth == 0 && hop.by.is_none() => hop.by = Some(lower.clone()),
            "for" if depth == 0 && hop.for_address.is_none() => {
                let address = lower.trim_matches(|c| c == '<' || c == '>');
                if address.contains('@') {
                    hop.for_address = Some(address.to_string());
                }
            }
            _ => {}
        }
        depth += token.matches('(').count() as i32 - token.matches(')').count() as i32;
        depth = depth.max(0);
    }
    hop
}

/// An IP address written as a token: `[192.0.2.1]`, `(192.0.2.1)`, `[IPv6:2001:db8::1]`.
fn address_literal(token: &str) -> Option<IpAddr> {
    let trimmed = token.trim_matches(|c: char| matches!(c, '(' | ')' | '[' | ']' | ',' | ';'));
    let trimmed = trimmed
        .get(..5)
        .filter(|prefix| prefix.eq_ignore_ascii_case("ipv6:"))
        .map_or(trimmed, |_| &trimmed[5..]);
    trimmed.parse().ok()
}

/// Whether `ip` is an address inside one network (private, loopback, link-local): such hops
/// are a server's internal steps, not the host that handed the message to it.
fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            v4.is_private() || v4.is_loopback() || v4.is_link_local() || v4.is_unspecified()
        }
        IpAddr::V6(v6) => {
            v6.is_loopback()
                || v6.is_unspecified()
                || (v6.segments()[0] & 0xfe00) == 0xfc00
                || (v6.segments()[0] & 0xffc0) == 0xfe80
        }
    }
}

/// The hop that handed the message to the connecting client: the first Received field, from
/// the top, whose sending address is public and not the client's own.
pub(crate) fn previous_hop(hops: &[Hop], client: IpAddr) -> Option<&Hop> {
    hops.iter()
        .find(|hop| hop.ip.is_some_and(|ip| ip != client && !is_internal(ip)))
}

pub(crate) fn diagnose(facts: &Facts<'_>, findings: &mut Vec<Finding>) {
    let hops = hops(facts.message);
    if let Some(finding) = spf_passes_at_previous_hop(facts, &hops) {
        findings.push(finding);
    }
    findings.extend(srs(facts));
    findings.extend(mailbox_forwarding(facts));
    findings.extend(mailing_list(facts));
    findings.extend(other_recipient(&hops));
}

fn spf_passes_at_previous_hop(facts: &Facts<'_>, hops: &[Hop]) -> Option<Finding> {
    let (hop, upstream) = facts.upstream.previous_hop.as_ref()?;
    if upstream.result != SpfResult::Pass {
        return None;
    }
    let spf = &facts.report.spf.check;
    let client = facts.client_ip?;
    let relay = hops
        .first()
        .and_then(|top| top.by.clone())
        .map_or_else(|| client.to_string(), |by| format!("{client} ({by})"));
    let domain = &upstream.domain;
    let earlier = hop.describe();
    let finding = Finding::new(
        FindingCode::SpfPassesAtPreviousHop,
        Severity::Problem,
        format!("SPF fails because the message was relayed: {earlier} is permitted, {relay} is not"),
        format!(
            "SPF {} for {relay}, which relayed this message; the address before it, {earlier}, is \
             permitted by {domain}'s SPF record. A mail filter, gateway or forwarding rule took the \
             message and handed it on under the original MAIL FROM ({}), so every receiver after it \
             sees the relay's address instead of yours.",
            spf.result.as_str(),
            spf.identity,
        ),
    )
    .evidence(format!("Received: {}", hop.field))
    .evidence(format!("SPF for {earlier}: pass ({})", upstream.reason));
    let finding = upstream.records.iter().fold(finding, |f, record| {
        f.evidence(format!("{domain}: {record}"))
    });
    Some(finding.fix(format!(
        "If the relay is a filter in front of your own mailboxes, have the final mail server trust it \
         (accept its ARC seal, or skip SPF for mail it relays) or let the filter deliver directly. If \
         it forwards mail to another mailbox, have it rewrite the MAIL FROM (SRS). In both cases, sign \
         your mail with DKIM for {} so DMARC still passes after relaying.",
        facts.author_domain().unwrap_or(domain)
    )))
}

/// `SRS0=HASH=TT=domain=local@forwarder`: the original MAIL FROM, and the forwarder's domain.
fn srs(facts: &Facts<'_>) -> Option<Finding> {
    let (local, forwarder) = facts.mail_from.rsplit_once('@')?;
    let tag = local.get(..5)?;
    if !tag.eq_ignore_ascii_case("SRS0=") && !tag.eq_ignore_ascii_case("SRS1=") {
        return None;
    }
    // SRS0=HHH=TT=domain=local; SRS1 adds one more forwarder before it.
    let parts: Vec<&str> = local.split('=').collect();
    let original = match parts.as_slice() {
        [_, _hash, _time, domain, rest @ ..]
            if !rest.is_empty() && tag.eq_ignore_ascii_case("SRS0=") =>
        {
            Some(format!("{}@{domain}", rest.join("=")))
        }
        _ => None,
    };
    let from = original
        .as_deref()
        .map_or(String::new(), |original| format!(" from {original}"));
    Some(
        Finding::new(
            FindingCode::SrsForwarded,
            Severity::Info,
            format!("Forwarded by {forwarder}, which rewrote the MAIL FROM (SRS)"),
            format!(
                "The MAIL FROM {} was rewritten{from} by a forwarder using the Sender Rewriting \
                 Scheme, so SPF here checks {forwarder}'s record, not the original sender's. That is \
                 correct forwarding; DMARC then depends on the original DKIM signature surviving.",
                facts.mail_from
            ),
        )
        .evidence(format!("MAIL FROM: {}", facts.mail_from))
        .fix(format!(
            "Nothing to fix at {forwarder}. Sign your mail with DKIM for your own domain so DMARC \
             passes after forwarding."
        )),
    )
}

/// Gmail-style forwarding: `user+caf_=target=example.com@gmail.com`.
fn mailbox_forwarding(facts: &Facts<'_>) -> Option<Finding> {
    let (local, domain) = facts.mail_from.rsplit_once('@')?;
    let at = local.to_ascii_lowercase().find("+caf_=")?;
    let target = local[at + 6..].replacen('=', "@", 1);
    Some(
        Finding::new(
            FindingCode::MailboxForwarded,
            Severity::Info,
            format!("Forwarded by a mailbox at {domain} (automatic forwarding to {target})"),
            format!(
                "The MAIL FROM {} is the address a mailbox provider uses when a user's mailbox \
                 forwards mail automatically, so SPF here checks {domain}'s record, not the \
                 original sender's.",
                facts.mail_from
            ),
        )
        .evidence(format!("MAIL FROM: {}", facts.mail_from))
        .fix(
            "Nothing to fix for SPF. Test your own sending by mailing the tester directly, not \
             through a forwarding mailbox."
                .to_string(),
        ),
    )
}

fn mailing_list(facts: &Facts<'_>) -> Option<Finding> {
    let list_id = facts.field_values("List-Id", 1).into_iter().next();
    let list_post = facts.field_values("List-Post", 1).into_iter().next();
    let name = list_id.as_deref().or(list_post.as_deref())?;
    let name = one_line(name);
    let mut finding = Finding::new(
        FindingCode::MailingList,
        Severity::Info,
        format!("The message came through a mailing list: {name}"),
        "Mailing lists resend each message from their own server and often tag the Subject or add a \
         footer, which breaks the original DKIM signature; the list's server is not in the original \
         sender's SPF record."
            .to_string(),
    );
    if let Some(id) = &list_id {
        finding = finding.evidence(format!("List-Id: {id}"));
    }
    if let Some(post) = &list_post {
        finding = finding.evidence(format!("List-Post: {post}"));
    }
    Some(finding.fix(
        "For list mail, DMARC passes only if the list leaves the message unchanged or rewrites the \
         From to its own domain and signs it. Test your own server by mailing the tester directly."
            .to_string(),
    ))
}

/// Different `for <…>` recipients along the chain: the message was readdressed on the way.
fn other_recipient(hops: &[Hop]) -> Option<Finding> {
    let newest = hops.iter().find_map(|hop| hop.for_address.as_ref())?;
    let earlier = hops
        .iter()
        .rev()
        .find(|hop| hop.for_address.as_ref().is_some_and(|a| a != newest))?;
    let original = earlier.for_address.as_ref()?;
    Some(
        Finding::new(
            FindingCode::ReceivedForOtherRecipient,
            Severity::Info,
            format!("Forwarded on the way: first addressed to {original}, then to {newest}"),
            format!(
                "The Received chain shows the message was delivered for {original} and then sent on \
                 for {newest}: a forwarding rule or alias passed it on. Receivers after the forwarder \
                 see the forwarder's address."
            ),
        )
        .evidence(format!("Received: {}", earlier.field)),
    )
}
