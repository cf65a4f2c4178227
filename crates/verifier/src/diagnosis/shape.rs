//! Message shape problems that break signatures in transit: lines over 998 bytes (relays
//! re-fold them), a mix of CRLF and bare LF line ends (relays normalize them), 8-bit bytes in
//! a body the client did not declare `BODY=8BITMIME` for (relays convert or refuse it), and
//! `l=` on a signature (content can be appended without breaking it).
//!
//! Long lines are found in the message as stored, which is the DATA (or BDAT) content byte for
//! byte once dot-stuffing is undone: the SMTP listener neither limits nor changes data lines,
//! so counting them there would find the same lines, and `authcheck check` finds them in a file.

use super::{Facts, Finding, FindingCode, MAX_SIGNATURES_DIAGNOSED, Severity, count};
use crate::dkim::canonical::{Canonicalization, canonical_body};
use crate::verifier::BodyParameter;

/// The most bytes a line may hold, line ending excluded (RFC 5322 §2.1.1).
const MAX_LINE_LENGTH: usize = 998;

pub(crate) fn diagnose(facts: &Facts<'_>, message: &[u8], findings: &mut Vec<Finding>) {
    findings.extend(long_lines(message));
    findings.extend(bare_lf(message));
    findings.extend(eight_bit_undeclared(facts));
    findings.extend(body_length_limits(facts));
}

fn long_lines(message: &[u8]) -> Option<Finding> {
    let mut long = 0usize;
    let mut first: Option<(usize, usize)> = None;
    let mut start = 0;
    // memchr finds the line ends many bytes at a time; every message passes through here.
    let ends = memchr::memchr_iter(b'\n', message).chain(std::iter::once(message.len()));
    for (number, end) in ends.enumerate() {
        let line = &message[start..end];
        start = end + 1;
        let length = line.strip_suffix(b"\r").unwrap_or(line).len();
        if length > MAX_LINE_LENGTH {
            long += 1;
            first.get_or_insert((number + 1, length));
        }
    }
    let (number, length) = first?;
    Some(
        Finding::new(
            FindingCode::LongLines,
            Severity::Warning,
            if long == 1 {
                "1 line is longer than 998 bytes".to_string()
            } else {
                format!("{long} lines are longer than 998 bytes")
            },
            "SMTP allows at most 998 bytes per line. Relays and filters break longer lines in two, \
             which changes the message and breaks DKIM signatures; some receivers refuse such mail."
                .to_string(),
        )
        .evidence(format!("line {number}: {length} bytes"))
        .fix(
            "Have the sending application encode the body as quoted-printable or base64 \
             (Content-Transfer-Encoding), which keeps every line short."
                .to_string(),
        ),
    )
}

/// A message that mixes CRLF and bare LF line ends. A message written entirely with LF is most
/// likely a file saved on a Unix machine, not what was sent, so it is not reported.
fn bare_lf(message: &[u8]) -> Option<Finding> {
    let mut bare = 0usize;
    let mut crlf = 0usize;
    let mut first = None;
    for (line, i) in (1usize..).zip(memchr::memchr_iter(b'\n', message)) {
        if i > 0 && message[i - 1] == b'\r' {
            crlf += 1;
        } else {
            bare += 1;
            first.get_or_insert(line);
        }
    }
    if bare == 0 || crlf == 0 {
        return None;
    }
    Some(
        Finding::new(
            FindingCode::BareLf,
            Severity::Warning,
            format!("{} end in a bare LF instead of CRLF", count(bare, "line")),
            "Lines in mail end in CRLF. Servers on the way convert bare LF line ends (some refuse the \
             message), and a signature made before the conversion no longer matches."
                .to_string(),
        )
        .evidence(format!("first at line {}", first.unwrap_or(1)))
        .fix(
            "Make the sending application write CRLF line ends, or sign only after the mail server \
             has normalized them."
                .to_string(),
        ),
    )
}

/// 8-bit bytes in the body of a message whose MAIL FROM did not say `BODY=8BITMIME`. Only the
/// body counts: 8BITMIME is about the body, and 8-bit header fields are SMTPUTF8's business.
fn eight_bit_undeclared(facts: &Facts<'_>) -> Option<Finding> {
    let declared = match facts.body_parameter {
        BodyParameter::Unknown | BodyParameter::EightBitMime => return None,
        BodyParameter::Absent => "MAIL FROM had no BODY= parameter, which declares a 7-bit message",
        BodyParameter::SevenBit => "MAIL FROM declared BODY=7BIT",
    };
    let body = facts.message.body();
    // Most bodies are ASCII, which `is_ascii` tells many bytes at a time.
    if body.is_ascii() {
        return None;
    }
    let mut lines = 0usize;
    let mut first = None;
    for (number, line) in body.split(|&b| b == b'\n').enumerate() {
        if line.iter().any(|b| !b.is_ascii()) {
            lines += 1;
            first.get_or_insert(number + 1);
        }
    }
    let first = first?;
    Some(
        Finding::new(
            FindingCode::EightBitUndeclared,
            Severity::Warning,
            format!(
                "{} of the body hold 8-bit bytes, but the sender did not declare BODY=8BITMIME",
                count(lines, "line")
            ),
            "The body holds bytes above 127 (text such as UTF-8 or Latin-1 sent without \
             encoding), but the sending server did not announce them with BODY=8BITMIME. A server \
             on the way may convert the body to quoted-printable, which changes it and breaks DKIM \
             signatures, or refuse the message."
                .to_string(),
        )
        .evidence(declared)
        .evidence(format!("first 8-bit byte in body line {first}"))
        .fix(
            "Make the sending server add BODY=8BITMIME to MAIL FROM when the receiver offers \
             8BITMIME, or have the application encode the body as quoted-printable or base64 \
             (Content-Transfer-Encoding)."
                .to_string(),
        ),
    )
}

fn body_length_limits(facts: &Facts<'_>) -> Vec<Finding> {
    facts
        .report
        .dkim
        .iter()
        .filter_map(|s| Some((s, s.body_length?)))
        .take(MAX_SIGNATURES_DIAGNOSED)
        .map(|(signature, length)| {
            let body = signature
                .canonicalization
                .split_once('/')
                .map_or("simple", |(_, body)| body);
            let canonicalization =
                Canonicalization::parse(body.trim()).unwrap_or(Canonicalization::Simple);
            let total = canonical_body(facts.message.body(), canonicalization).len() as u64;
            let unsigned = total.saturating_sub(length);
            let domain = &signature.domain;
            Finding::new(
                FindingCode::BodyLengthLimit,
                Severity::Warning,
                format!("{domain}'s signature covers only the first {length} bytes of the body (l={length})"),
                format!(
                    "With l= anyone who handles the message can add content after the first {length} \
                     bytes — a footer, or a harmful link — and the signature still passes. In this \
                     message {unsigned} of {total} body bytes are not covered."
                ),
            )
            .evidence(format!("DKIM-Signature d={domain} s={} l={length}", signature.selector))
            .fix(format!("Make the signer for {domain} sign the whole body: remove the l= option."))
        })
        .collect()
}
