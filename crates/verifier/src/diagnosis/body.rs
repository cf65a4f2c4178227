//! How a signed message was changed. For a signature whose body hash does not match, the body
//! hash is recomputed on candidate originals — the body cut after each of its last lines
//! (content appended after signing), the body with LF line ends, the body without whitespace at
//! line ends, the body with long lines that a relay broke in two joined again — and the first
//! that matches names the change. A signature whose header hash fails while the Subject carries
//! a filter's tag names the tag.
//!
//! Cost: the canonical body is hashed once front to back; each cut costs one copy of the
//! hash state and a final block, and at most [`MAX_BODY_CANDIDATES`] cuts are tried. Each other
//! candidate is a fixed number of linear passes. [`Work`] counts the bytes every pass reads, so
//! a test can hold the whole search to a multiple of the body's size.

use base64::Engine as _;
use sha2::{Digest, Sha256};

use super::{Facts, Finding, FindingCode, MAX_BODY_CANDIDATES, MAX_SIGNATURES_DIAGNOSED, Severity};
use crate::dkim::LENIENT_BASE64;
use crate::dkim::canonical::{Canonicalization, canonical_body};
use crate::dkim::tags::{TagList, without_fws};
use crate::report::{DkimReasonCode, DkimResult, DkimSignatureReport};

/// How many added lines are quoted as evidence.
const QUOTED_LINES: usize = 3;
/// The narrowest width a relay is taken to break lines at: below it, lines of equal length are
/// a layout (base64 is 76 wide) rather than a relay's breaks, and joining them is not tried.
const MIN_FOLD_WIDTH: usize = 76;

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

    /// Whether the candidate original `body` hashes to `bh=` once canonicalized (and cut to
    /// `l=`).
    fn matches(&self, body: &[u8], work: &mut Work) -> bool {
        let canonical = self.canonical(body, work);
        let signed = match self.length {
            Some(length) if length <= canonical.len() as u64 => &canonical[..length as usize],
            Some(_) => return false,
            None => &canonical[..],
        };
        work.read(signed.len());
        Sha256::digest(signed).as_slice() == self.body_hash
    }

    fn canonical(&self, body: &[u8], work: &mut Work) -> Vec<u8> {
        work.read(body.len());
        canonical_body(body, self.canonicalization)
    }
}

/// The bytes read by the search for a body change, counted pass by pass.
#[derive(Debug, Default)]
pub(crate) struct Work {
    bytes: u64,
}

impl Work {
    fn read(&mut self, bytes: usize) {
        self.bytes += bytes as u64;
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
    let mut work = Work::default();
    for signature in changed {
        let Some(claim) = BodyClaim::read(signature) else {
            continue;
        };
        findings.extend(body_change(&signature.domain, &claim, body, &mut work));
    }
    findings.extend(subject_tagged(facts));
}

/// The first candidate original of `body` that matches the signature of `domain`, as a finding.
fn body_change(domain: &str, claim: &BodyClaim, body: &[u8], work: &mut Work) -> Option<Finding> {
    appended(domain, claim, body, work)
        .or_else(|| line_ends_changed(domain, claim, body, work))
        .or_else(|| trailing_whitespace_changed(domain, claim, body, work))
        .or_else(|| lines_refolded(domain, claim, body, work))
}

/// Content appended after signing: the longest cut of the canonical body at a line end whose
/// hash matches `bh=`, among the last [`MAX_BODY_CANDIDATES`] line ends.
fn appended(domain: &str, claim: &BodyClaim, body: &[u8], work: &mut Work) -> Option<Finding> {
    if claim.length.is_some() {
        // With l= the verifier already hashes only the signed prefix.
        return None;
    }
    let canonical = claim.canonical(body, work);
    work.read(canonical.len());
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
        work.read(cut - hashed);
        hashed = cut;
        if hasher.clone().finalize().as_slice() == claim.body_hash {
            longest = Some(cut);
        }
    }
    let cut = longest?;
    let signed_lines = line_ends.iter().take_while(|&&end| end <= cut).count();
    let added_lines = total_lines - signed_lines;
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
    domain: &str,
    claim: &BodyClaim,
    body: &[u8],
    work: &mut Work,
) -> Option<Finding> {
    work.read(body.len());
    // Only a body with CRLF line ends can have had them converted.
    memchr::memmem::find(body, b"\r\n")?;
    work.read(body.len());
    let with_lf: Vec<u8> = body_with_lf(body);
    if !claim.matches(&with_lf, work) {
        return None;
    }
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
    domain: &str,
    claim: &BodyClaim,
    body: &[u8],
    work: &mut Work,
) -> Option<Finding> {
    if claim.canonicalization != Canonicalization::Simple {
        return None;
    }
    work.read(body.len());
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
    if changed == 0 || !claim.matches(&stripped, work) {
        return None;
    }
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

/// How a relay breaks a long line: the line ends (CRLF) and, for some relays (Postfix), the
/// continuation starts with a space so MIME readers see a folded line.
#[derive(Clone, Copy)]
enum Fold {
    LineEnd,
    LineEndAndSpace,
}

/// Long lines broken in two after signing: every line exactly as long as the longest line that
/// has a line after it is taken for a piece a relay cut at that width, and joined to the next
/// line again (with and without the continuation's leading space). Two linear passes per way
/// of folding, whatever the number of lines.
fn lines_refolded(
    domain: &str,
    claim: &BodyClaim,
    body: &[u8],
    work: &mut Work,
) -> Option<Finding> {
    work.read(body.len());
    let lines: Vec<&[u8]> = body.split(|&b| b == b'\n').collect();
    // Every line but the last ends in CRLF (the body's line ends are CRLF here).
    let content = |line: &[u8]| -> usize { line.strip_suffix(b"\r").unwrap_or(line).len() };
    let followed = &lines[..lines.len().saturating_sub(1)];
    let width = followed.iter().map(|line| content(line)).max()?;
    if width < MIN_FOLD_WIDTH {
        return None;
    }
    let is_fold =
        |i: usize| i + 1 < lines.len() && content(lines[i]) == width && content(lines[i + 1]) > 0;
    let first = (0..lines.len()).find(|&i| is_fold(i))?;
    let folds = (first..lines.len()).filter(|&i| is_fold(i)).count();
    let fold = [Fold::LineEnd, Fold::LineEndAndSpace]
        .into_iter()
        .find(|&fold| {
            work.read(body.len());
            let mut joined = Vec::with_capacity(body.len());
            let mut continuation = false;
            for (i, line) in lines.iter().enumerate() {
                let mut line: &[u8] = line;
                if continuation && matches!(fold, Fold::LineEndAndSpace) {
                    line = line.strip_prefix(b" ").unwrap_or(line);
                }
                continuation = is_fold(i);
                if continuation {
                    joined.extend_from_slice(line.strip_suffix(b"\r").unwrap_or(line));
                } else {
                    joined.extend_from_slice(line);
                    if i + 1 < lines.len() {
                        joined.push(b'\n');
                    }
                }
            }
            claim.matches(&joined, work)
        })?;
    let how = match fold {
        Fold::LineEnd => "a line break",
        Fold::LineEndAndSpace => "a line break and a space",
    };
    Some(
        Finding::new(
            FindingCode::BodyLinesRefolded,
            Severity::Problem,
            format!("Long lines were broken in two after {domain} signed the message"),
            format!(
                "The signature matches the body once {} ending at {width} bytes {} joined to \
                 the line after {}: a relay or filter broke lines that were too long for it by \
                 inserting {how}. SMTP allows at most 998 bytes per line, and servers that \
                 enforce that change the message, which breaks DKIM.",
                super::count(folds, "line"),
                if folds == 1 { "is" } else { "are" },
                if folds == 1 { "it" } else { "them" },
            ),
        )
        .evidence(format!(
            "body line {}: {width} bytes, continued on line {}",
            first + 1,
            first + 2
        ))
        .fix(format!(
            "Have the application that writes the message for {domain} encode the body as \
             quoted-printable or base64 (Content-Transfer-Encoding), which keeps every line \
             short, before it is signed."
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The bytes the whole search reads on a body of `lines` lines that matches no candidate
    /// (the worst case: every candidate is tried), and the body's size. Every fifth line is
    /// long and every seventh ends in a space, so the re-folding and whitespace candidates
    /// are built too.
    fn work_on(lines: usize, canonicalization: Canonicalization) -> (u64, u64) {
        let body: Vec<u8> = (0..lines)
            .flat_map(|n| {
                let mut line = format!("Line {n} of a body that matches no signature.");
                if n % 5 == 0 {
                    line.push_str(&" and more".repeat(10));
                }
                if n % 7 == 0 {
                    line.push(' ');
                }
                line.push_str("\r\n");
                line.into_bytes()
            })
            .collect();
        let claim = BodyClaim {
            canonicalization,
            body_hash: Sha256::digest(b"another body").to_vec(),
            length: None,
        };
        let mut work = Work::default();
        assert!(body_change("sender.test", &claim, &body, &mut work).is_none());
        (work.bytes, body.len() as u64)
    }

    /// A search that hashed every cut from the start, or rebuilt a candidate per line, would
    /// read the body hundreds of times; the linear one reads it a fixed number of times.
    #[test]
    fn the_body_search_reads_the_body_a_fixed_number_of_times_whatever_its_size() {
        for canonicalization in [Canonicalization::Simple, Canonicalization::Relaxed] {
            let (small, small_size) = work_on(3_000, canonicalization);
            let (large, large_size) = work_on(12_000, canonicalization);
            assert!(large_size >= 4 * small_size - 16);
            for (work, size) in [(small, small_size), (large, large_size)] {
                assert!(
                    work >= size && work <= 32 * size,
                    "{canonicalization:?}: {work} bytes read for a {size}-byte body"
                );
            }
            assert!(
                large <= 5 * small,
                "{canonicalization:?}: 4 times the body, {} times the work",
                large as f64 / small as f64
            );
        }
    }
}
