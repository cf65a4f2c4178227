//! How a signed message was changed. For a signature whose body hash does not match, the body
//! hash is recomputed on candidate originals — the body cut after each of its last lines
//! (content appended after signing), the body with LF line ends, the body without whitespace at
//! line ends — and the first that matches names the change. A signature whose header hash
//! fails while the Subject carries a filter's tag names the tag.
//!
//! Cost: the canonical body is hashed once front to back; each cut costs one copy of the
//! hash state and a final block, and at most [`MAX_BODY_CANDIDATES`] cuts are tried. Each other
//! candidate is one more linear pass.

use base64::Engine as _;
use sha2::{Digest, Sha256};

use super::{Facts, Finding, FindingCode, MAX_BODY_CANDIDATES, MAX_SIGNATURES_DIAGNOSED, Severity};
use crate::dkim::LENIENT_BASE64;
use crate::dkim::canonical::{Canonicalization, canonical_body};
use crate::dkim::tags::{TagList, without_fws};
use crate::report::{DkimReasonCode, DkimResult, DkimSignatureReport};

/// How many added lines are quoted as evidence.
const QUOTED_LINES: usize = 3;

/// What a signature says about its body.
struct BodyClaim {
    canonicalization: Canonicalization,
    body_hash: Vec<u8>,
    length: Option<u64>,
}

impl BodyClaim {
    fn read(signature: &DkimSignatureReport) -> Option<BodyClaim> {
        let tags = TagList::parse_lenient(&signature.header_value);
        let body_canonicalization = signature
            .canonicalization
            .split_once('/')
            .map_or("simple", |(_, body)| body);
        let canonicalization = Canonicalization::parse(body_canonicalization.trim())?;
        let body_hash = LENIENT_BASE64.decode(without_fws(tags.value("bh")?)).ok()?;
        Some(BodyClaim {
            canonicalization,
            body_hash,
            length: signature.body_length,
        })
    }

    /// Whether the canonical `body` (cut to `l=`) hashes to `bh=`.
    fn matches(&self, canonical: &[u8]) -> bool {
        let signed = match self.length {
            Some(length) if length <= canonical.len() as u64 => &canonical[..length as usize],
            Some(_) => return false,
            None => canonical,
        };
        Sha256::digest(signed).as_slice() == self.body_hash
    }
}

pub(crate) fn diagnose(facts: &Facts<'_>, findings: &mut Vec<Finding>) {
    let body = facts.message.body();
    let changed = facts
        .report
        .dkim
        .iter()
        .filter(|s| s.reason_code == DkimReasonCode::BodyHashMismatch)
        .take(MAX_SIGNATURES_DIAGNOSED);
    for signature in changed {
        let Some(claim) = BodyClaim::read(signature) else {
            continue;
        };
        let finding = appended(signature, &claim, body)
            .or_else(|| line_ends_changed(signature, &claim, body))
            .or_else(|| trailing_whitespace_changed(signature, &claim, body));
        findings.extend(finding);
    }
    findings.extend(subject_tagged(facts));
}

/// Content appended after signing: the longest cut of the canonical body at a line end whose
/// hash matches `bh=`, among the last [`MAX_BODY_CANDIDATES`] line ends.
fn appended(signature: &DkimSignatureReport, claim: &BodyClaim, body: &[u8]) -> Option<Finding> {
    if claim.length.is_some() {
        // With l= the verifier already hashes only the signed prefix.
        return None;
    }
    let canonical = canonical_body(body, claim.canonicalization);
    let line_ends: Vec<usize> = memchr::memmem::find_iter(&canonical, b"\r\n")
        .map(|at| at + 2)
        .collect();
    let total_lines = line_ends.len();
    // Cuts before the last line end; the whole body is known not to match.
    let mut cuts: Vec<usize> = line_ends
        .iter()
        .copied()
        .filter(|&end| end < canonical.len())
        .rev()
        .take(MAX_BODY_CANDIDATES)
        .collect();
    cuts.reverse();
    if claim.canonicalization == Canonicalization::Relaxed {
        // The empty body: everything was added.
        cuts.insert(0, 0);
    }
    let mut hasher = Sha256::new();
    let mut hashed = 0;
    let mut longest = None;
    for cut in cuts {
        hasher.update(&canonical[hashed..cut]);
        hashed = cut;
        if hasher.clone().finalize().as_slice() == claim.body_hash {
            longest = Some(cut);
        }
    }
    let cut = longest?;
    let signed_lines = line_ends.iter().take_while(|&&end| end <= cut).count();
    let added_lines = total_lines - signed_lines;
    let domain = &signature.domain;
    let mut finding = Finding::new(
        FindingCode::BodyAppended,
        Severity::Problem,
        format!(
            "{} added at the end of the body after {domain} signed it",
            super::lines_were(added_lines)
        ),
        format!(
            "The first {} of the body match {domain}'s DKIM signature; {} added at the end \
             afterwards — typically a mailing-list footer, a disclaimer or a banner added by a \
             filter or gateway. Any change to the signed body breaks DKIM.",
            super::count(signed_lines, "line"),
            super::lines_were(added_lines)
        ),
    );
    let added = String::from_utf8_lossy(&canonical[cut..]);
    for line in added
        .lines()
        .filter(|l| !l.trim().is_empty())
        .take(QUOTED_LINES)
    {
        finding = finding.evidence(format!("added: {line}"));
    }
    Some(finding.fix(format!(
        "Find the system that adds this text (a gateway, a disclaimer rule, a list) and make it add \
         it before {domain}'s signature is made, or sign again after it; for a list, switch off \
         footers or have the list sign with its own domain."
    )))
}

/// The signer hashed LF line ends and the message arrived with CRLF.
fn line_ends_changed(
    signature: &DkimSignatureReport,
    claim: &BodyClaim,
    body: &[u8],
) -> Option<Finding> {
    if !body.windows(2).any(|w| w == b"\r\n") {
        return None;
    }
    let with_lf: Vec<u8> = body_with_lf(body);
    if !claim.matches(&canonical_body(&with_lf, claim.canonicalization)) {
        return None;
    }
    let domain = &signature.domain;
    Some(
        Finding::new(
            FindingCode::BodyLineEndsChanged,
            Severity::Problem,
            format!("{domain} signed the body with LF line ends; it arrived with CRLF"),
            "The signature matches the body when its line ends are bare LF (Unix style): the \
             signing software hashed the message before its line ends were converted to the CRLF \
             that SMTP requires, so the body no longer matches once it is sent."
                .to_string(),
        )
        .fix(format!(
            "Make the software that signs for {domain} convert line ends to CRLF before signing \
             (or sign in the mail server, after it has done so)."
        )),
    )
}

fn body_with_lf(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len());
    let mut rest = body;
    while let Some(at) = memchr::memmem::find(rest, b"\r\n") {
        out.extend_from_slice(&rest[..at]);
        out.push(b'\n');
        rest = &rest[at + 2..];
    }
    out.extend_from_slice(rest);
    out
}

/// Whitespace was added at line ends after signing (only "simple" body canonicalization
/// notices that).
fn trailing_whitespace_changed(
    signature: &DkimSignatureReport,
    claim: &BodyClaim,
    body: &[u8],
) -> Option<Finding> {
    if claim.canonicalization != Canonicalization::Simple {
        return None;
    }
    let mut stripped = Vec::with_capacity(body.len());
    let mut changed = 0usize;
    for line in body.split_inclusive(|&b| b == b'\n') {
        let (content, end) = match line.strip_suffix(b"\r\n") {
            Some(content) => (content, &b"\r\n"[..]),
            None => (line, &b""[..]),
        };
        let kept = content
            .iter()
            .rposition(|b| !matches!(b, b' ' | b'\t'))
            .map_or(0, |i| i + 1);
        if kept < content.len() {
            changed += 1;
        }
        stripped.extend_from_slice(&content[..kept]);
        stripped.extend_from_slice(end);
    }
    if changed == 0 || !claim.matches(&canonical_body(&stripped, claim.canonicalization)) {
        return None;
    }
    let domain = &signature.domain;
    Some(
        Finding::new(
            FindingCode::BodyTrailingWhitespaceChanged,
            Severity::Problem,
            format!(
                "Whitespace was added at the end of {} after {domain} signed the message",
                super::count(changed, "line")
            ),
            format!(
                "The signature matches the body without the spaces or tabs at the end of {}: \
                 something on the way added them. {domain} signs with c=…/simple, which counts \
                 every space.",
                super::count(changed, "line")
            ),
        )
        .fix(format!(
            "Sign with c=relaxed/relaxed, which tolerates whitespace changes; and find the relay \
             that rewrites lines after {domain} signs."
        )),
    )
}

/// A filter's tag in front of a signed Subject, with a signature whose header hash fails.
fn subject_tagged(facts: &Facts<'_>) -> Option<Finding> {
    let subject = facts.field_values("Subject", 1).into_iter().next()?;
    let subject = subject.trim();
    let tag = tag_of(subject)?;
    let signature = facts.report.dkim.iter().find(|s| {
        s.result == DkimResult::Fail
            && s.reason_code == DkimReasonCode::SignatureMismatch
            && s.signed_headers
                .iter()
                .any(|h| h.eq_ignore_ascii_case("subject"))
    })?;
    let domain = &signature.domain;
    Some(
        Finding::new(
            FindingCode::SubjectTagged,
            Severity::Problem,
            format!("The Subject was tagged {tag} after {domain} signed it"),
            format!(
                "The Subject starts with {tag}, a tag that mail filters and mailing lists add. \
                 {domain}'s signature covers the Subject, and its body still matches, so a changed \
                 Subject is the most likely reason the signature fails."
            ),
        )
        .evidence(format!("Subject: {}", super::one_line(subject)))
        .evidence(format!(
            "signed header fields (h=): {}",
            signature.signed_headers.join(":")
        ))
        .fix(
            "Switch off Subject tagging on the filter or list for this mail flow, or have it tag \
             only after the final DMARC check; a list can instead sign with its own domain."
                .to_string(),
        ),
    )
}

/// `[EXTERNAL]`, `[SPAM]`, `[list-name]`, `*** SPAM ***` at the start of a Subject.
fn tag_of(subject: &str) -> Option<&str> {
    if let Some(rest) = subject.strip_prefix('[') {
        let end = rest.find(']')?;
        let inner = &rest[..end];
        return (!inner.is_empty() && inner.len() <= 40 && !inner.contains(['[', '\r', '\n']))
            .then(|| &subject[..end + 2]);
    }
    if let Some(rest) = subject.strip_prefix("***") {
        let end = rest.find("***")? + 6;
        return (end <= 40).then(|| &subject[..end]);
    }
    None
}
