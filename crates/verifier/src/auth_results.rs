//! The `Authentication-Results` header field (RFC 8601) summing up a report.
//!
//! One result per method and identity: SPF for the MAIL FROM (or the HELO name for the null
//! reverse-path) and, when checked separately, for the HELO name; one `dkim=` per signature;
//! `dmarc=`; `arc=`. Reasons go in `(comments)`. Property values that are not plain tokens or
//! addresses are quoted. Each result starts a line, and long lines fold at spaces, never inside
//! a quoted string, so unfolding gives back the same field.
//!
//! The field is 7-bit ASCII whatever the input: comments are RFC 5322 `ctext` and quoted values
//! `qtext`, so the symbols the reasons use are written in ASCII (`§` as "section", `→` as
//! "->"), an internationalized domain name in its A-labels (`bücher.example` as
//! `xn--bcher-kva.example`, the form the DNS uses and every reader of the field can take), and
//! any other non-ASCII character becomes `?`. No line exceeds RFC 5322's 998 bytes:
//! comments are cut at [`COMMENT_LENGTH`] and values at [`VALUE_LENGTH`], so the longest piece
//! folding cannot break stays far below it.
//!
//! DKIM results use the RFC 8601 §2.7.1 names: `pass`, `fail`, `temperror`, and `neutral` for a
//! signature that could not be processed (the report's `invalid`), with the reason in a comment.

use std::borrow::Cow;

use crate::report::{
    ArcReport, ArcResult, DkimResult, DkimSignatureReport, DmarcReport, SpfCheck, SpfIdentityKind,
    SpfReport,
};

/// Lines are folded to stay within this many bytes where spaces allow (RFC 5322 §2.1.1).
const LINE_LENGTH: usize = 78;
/// Comments longer than this are cut (at a word) so the field stays readable.
const COMMENT_LENGTH: usize = 160;
/// Values longer than this many bytes are cut (and marked with "..."): a domain name or an
/// address is shorter, and a hostile `d=` of kilobytes, which folding cannot break, would
/// otherwise make a line longer than RFC 5322 allows.
const VALUE_LENGTH: usize = 320;
/// Room for the usual field (SPF twice, one signature, DMARC, ARC) without growing.
const FIELD_CAPACITY: usize = 1024;

/// The complete `Authentication-Results:` header field, folded with CRLF, without a final CRLF.
pub fn authentication_results(
    authserv_id: &str,
    spf: &SpfReport,
    dkim: &[DkimSignatureReport],
    dmarc: &DmarcReport,
    arc: &ArcReport,
) -> String {
    let mut results = vec![spf_result(&spf.check)];
    if let Some(helo) = spf
        .helo
        .as_ref()
        .filter(|_| spf.check.identity_kind == SpfIdentityKind::Mailfrom)
    {
        results.push(spf_result(helo));
    }
    if dkim.is_empty() {
        results.push(ResInfo::new("dkim", "none").comment("no DKIM-Signature header field"));
    }
    results.extend(dkim.iter().map(dkim_result));
    results.push(dmarc_result(dmarc));
    results.push(arc_result(arc));

    // Built in place: the field is made for every message, and a string per piece cost more
    // than the rest of it.
    let mut field = String::with_capacity(FIELD_CAPACITY);
    field.push_str("Authentication-Results: ");
    push_value(&mut field, authserv_id);
    field.push(';');
    let mut line = String::with_capacity(LINE_LENGTH * 2);
    let last = results.len() - 1;
    for (index, result) in results.iter().enumerate() {
        line.clear();
        line.push('\t');
        result.render_into(&mut line);
        if index != last {
            line.push(';');
        }
        field.push_str("\r\n");
        push_folded(&mut field, &line);
    }
    field
}

/// One `method=result (comment) ptype.property=value ...` entry.
struct ResInfo {
    method: &'static str,
    result: &'static str,
    comment: Option<String>,
    properties: Vec<(&'static str, String)>,
}

impl ResInfo {
    fn new(method: &'static str, result: &'static str) -> ResInfo {
        ResInfo {
            method,
            result,
            comment: None,
            properties: Vec::new(),
        }
    }

    fn comment(mut self, text: &str) -> ResInfo {
        if !text.trim().is_empty() {
            self.comment = Some(text.trim().to_string());
        }
        self
    }

    /// A property naming a domain, or an address at one: its domain in A-labels.
    fn identity(self, name: &'static str, identity: &str) -> ResInfo {
        let ascii = ascii_domain(identity);
        self.property(name, &ascii)
    }

    /// Adds `name=value` unless the value is empty (an empty pvalue is not allowed).
    fn property(mut self, name: &'static str, property_value: &str) -> ResInfo {
        if !property_value.is_empty() {
            self.properties.push((name, property_value.to_string()));
        }
        self
    }

    fn render_into(&self, out: &mut String) {
        out.push_str(self.method);
        out.push('=');
        out.push_str(self.result);
        if let Some(text) = &self.comment {
            out.push_str(" (");
            push_comment(out, text);
            out.push(')');
        }
        for (name, property_value) in &self.properties {
            out.push(' ');
            out.push_str(name);
            out.push('=');
            push_value(out, property_value);
        }
    }
}

fn spf_result(check: &SpfCheck) -> ResInfo {
    let result = ResInfo::new("spf", check.result.as_str()).comment(&check.reason);
    match check.identity_kind {
        SpfIdentityKind::Mailfrom => result.identity("smtp.mailfrom", &check.identity),
        SpfIdentityKind::Helo => {
            let helo = check
                .identity
                .rsplit_once('@')
                .map_or(check.identity.as_str(), |(_, domain)| domain);
            result.identity("smtp.helo", helo)
        }
    }
}

fn dkim_result(signature: &DkimSignatureReport) -> ResInfo {
    let result = match signature.result {
        DkimResult::Pass => "pass",
        DkimResult::Fail => "fail",
        DkimResult::Invalid => "neutral",
        DkimResult::Temperror => "temperror",
    };
    ResInfo::new("dkim", result)
        .comment(&signature.reason)
        .identity("header.d", &signature.domain)
        .identity("header.s", &signature.selector)
        .property("header.a", &signature.algorithm)
}

/// `dmarc=<result> (p=... [sp=...] [np=...] [t=y] dis=...; <tag> of <record name> applies)
/// header.from=<domain>`: the comment names the record's policies, the disposition and which
/// tag of which record applied (RFC 9989 §4.7).
fn dmarc_result(dmarc: &DmarcReport) -> ResInfo {
    let comment = match &dmarc.record {
        Some(record) => {
            let mut comment = format!("p={}", record.p);
            for (tag, policy) in [("sp", &record.sp), ("np", &record.np)] {
                if let Some(policy) = policy {
                    comment.push_str(&format!(" {tag}={policy}"));
                }
            }
            if record.testing {
                comment.push_str(" t=y");
            }
            comment.push_str(&format!(" dis={}", dmarc.policy));
            if let Some(tag) = dmarc.policy_tag {
                comment.push_str(&format!("; {} of {} applies", tag.as_str(), record.name));
            }
            comment
        }
        None => dmarc
            .problem
            .clone()
            .unwrap_or_else(|| dmarc.reason.clone()),
    };
    ResInfo::new("dmarc", dmarc.result.as_str())
        .comment(&comment)
        .identity("header.from", dmarc.from_domain.as_deref().unwrap_or(""))
}

fn arc_result(arc: &ArcReport) -> ResInfo {
    let info = ResInfo::new("arc", arc.result.as_str());
    match arc.result {
        ArcResult::Fail => info.comment(&arc.reason),
        ArcResult::None | ArcResult::Pass => info,
    }
}

/// RFC 2045 `tspecials`, which a token may not contain.
const TSPECIALS: &[u8] = b"()<>@,;:\\\"/[]?=";

fn is_token(text: &str) -> bool {
    !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_graphic() && !TSPECIALS.contains(&b))
}

/// RFC 5322 `atext`, the characters of a dot-atom.
fn is_atext(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-/=?^_`{|}~".contains(&b)
}

fn is_dot_atom(text: &str) -> bool {
    !text.is_empty()
        && text
            .split('.')
            .all(|atom| !atom.is_empty() && atom.bytes().all(is_atext))
}

/// A property value as RFC 8601 §2.2 allows it: a token, `local-part@domain` written as is
/// when both halves are dot-atoms, and anything else as a quoted string; in ASCII and cut at
/// [`VALUE_LENGTH`] bytes.
fn push_value(out: &mut String, text: &str) {
    let ascii = plain_ascii(text);
    let text: Cow<'_, str> = if ascii.len() > VALUE_LENGTH {
        // ASCII, so every byte index is a character boundary.
        Cow::Owned(format!("{}...", &ascii[..VALUE_LENGTH]))
    } else {
        ascii
    };
    let bare = is_token(&text)
        || text.rsplit_once('@').is_some_and(|(local, domain)| {
            (local.is_empty() || is_dot_atom(local)) && is_dot_atom(domain)
        });
    if bare {
        out.push_str(&text);
        return;
    }
    out.reserve(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        if matches!(c, '"' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
}

/// Comment text: in ASCII, parentheses and backslashes escaped, control characters (line
/// breaks above all) turned into spaces, cut at a word when very long.
fn push_comment(out: &mut String, text: &str) {
    let ascii = plain_ascii(text);
    let (kept, cut) = if ascii.len() > COMMENT_LENGTH {
        let end = ascii[..COMMENT_LENGTH].rfind(' ').unwrap_or(COMMENT_LENGTH);
        (&ascii[..end], true)
    } else {
        (&ascii[..], false)
    };
    out.reserve(kept.len() + 4);
    for c in kept.chars() {
        if matches!(c, '(' | ')' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    if cut {
        out.push_str(" ...");
    }
}

/// `identity` (a domain, or `local-part@domain`) with its domain in A-labels when it is written
/// in U-labels; as it was when it is ASCII already or is no valid domain name (a local part
/// stays as it is: it has no ASCII form).
fn ascii_domain(identity: &str) -> Cow<'_, str> {
    if identity.is_ascii() {
        return Cow::Borrowed(identity);
    }
    let (local, domain) = match identity.rsplit_once('@') {
        Some((local, domain)) => (Some(local), domain),
        None => (None, identity),
    };
    if domain.is_ascii() {
        return Cow::Borrowed(identity);
    }
    match (idna::domain_to_ascii_strict(domain), local) {
        (Ok(domain), Some(local)) => Cow::Owned(format!("{local}@{domain}")),
        (Ok(domain), None) => Cow::Owned(domain),
        (Err(_), _) => Cow::Borrowed(identity),
    }
}

/// `text` in printable ASCII and spaces: control characters become spaces, the symbols the
/// verifier's own reasons use are spelt out, and any other non-ASCII character becomes `?`.
fn plain_ascii(text: &str) -> Cow<'_, str> {
    if text.bytes().all(|b| b == b' ' || b.is_ascii_graphic()) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_control() => out.push(' '),
            c if c.is_ascii() => out.push(c),
            // "RFC 7208 §2.3" reads "RFC 7208 section 2.3".
            '§' => {
                out.push_str("section");
                if chars.peek().is_some_and(|next| !next.is_whitespace()) {
                    out.push(' ');
                }
            }
            '→' => out.push_str("->"),
            '←' => out.push_str("<-"),
            '—' | '–' | '‐' | '−' => out.push('-'),
            '…' => out.push_str("..."),
            '×' => out.push('x'),
            '≤' => out.push_str("<="),
            '≥' => out.push_str(">="),
            '‘' | '’' => out.push('\''),
            '“' | '”' => out.push('"'),
            c if c.is_whitespace() => out.push(' '),
            _ => out.push('?'),
        }
    }
    Cow::Owned(out)
}

/// Where the folding scanner is in a result line.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Scan {
    /// Between pieces, where a space may fold.
    Plain,
    /// Inside a quoted string, which must not fold.
    Quoted,
    /// Inside a comment: a space may fold, and `"` is text, not the start of a quoted string.
    Comment,
}

/// Appends `line` to `out`, folded at spaces outside quoted strings so that each piece stays
/// within [`LINE_LENGTH`] where possible; continuation lines are indented with a tab and two
/// spaces.
fn push_folded(out: &mut String, line: &str) {
    const CONTINUATION: &str = "\r\n\t  ";
    out.reserve(line.len() + 16);
    let mut line_start = out.len(); // index in `out` where the current physical line starts
    let mut last_break: Option<usize> = None; // index in `out` of a space we may fold at
    let mut scan = Scan::Plain;
    let mut escaped = false;
    // Comments nest (RFC 5322 §3.2.2); ours do not, but escaped text must not end one early.
    let mut depth = 0usize;
    for c in line.chars() {
        if escaped {
            escaped = false;
        } else {
            match (scan, c) {
                (Scan::Quoted | Scan::Comment, '\\') => escaped = true,
                (Scan::Quoted, '"') => scan = Scan::Plain,
                (Scan::Plain, '"') => scan = Scan::Quoted,
                (Scan::Plain | Scan::Comment, '(') => {
                    depth += 1;
                    scan = Scan::Comment;
                }
                (Scan::Comment, ')') => {
                    depth -= 1;
                    if depth == 0 {
                        scan = Scan::Plain;
                    }
                }
                (Scan::Plain | Scan::Comment, ' ') => last_break = Some(out.len()),
                _ => {}
            }
        }
        out.push(c);
        if out.len() - line_start > LINE_LENGTH
            && let Some(space) = last_break.take()
            && space > line_start + 1
        {
            out.replace_range(space..space + 1, CONTINUATION);
            line_start = space + 2;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(text: &str) -> String {
        let mut out = String::new();
        push_value(&mut out, text);
        out
    }

    fn comment_text(text: &str) -> String {
        let mut out = String::new();
        push_comment(&mut out, text);
        out
    }

    #[test]
    fn internationalized_domains_are_written_in_their_a_labels() {
        assert_eq!(ascii_domain("bücher.example"), "xn--bcher-kva.example");
        assert_eq!(
            ascii_domain("info@Bücher.example"),
            "info@xn--bcher-kva.example"
        );
        assert_eq!(ascii_domain("sélecteur"), "xn--slecteur-b1a");
        assert_eq!(ascii_domain("plain.example"), "plain.example");
        // A local part has no ASCII form; it is left for the field's `?`.
        assert_eq!(
            ascii_domain("jürgen@bücher.example"),
            "jürgen@xn--bcher-kva.example"
        );
        // Not a domain name: left as it is.
        assert_eq!(ascii_domain("a\u{0}ü b"), "a\u{0}ü b");
    }

    fn fold(line: &str) -> String {
        let mut out = String::from("Authentication-Results: x;\r\n");
        let start = out.len();
        push_folded(&mut out, line);
        out.split_off(start)
    }

    proptest::proptest! {
        /// Whatever the text, the field's pieces read back as its ASCII form: a value bare or
        /// quoted (cut when long), a comment escaped (and cut at a word when long), a line
        /// folded only at spaces.
        #[test]
        fn values_comments_and_folds_read_back_as_the_text(
            text in "[ a-z@.\"\\\\()\t\r\n\u{85}\u{e9}\u{1F600}\u{a7}\u{2192};=-]{0,400}"
        ) {
            let ascii = plain_ascii(&text).into_owned();
            proptest::prop_assert!(ascii.bytes().all(|b| b == b' ' || b.is_ascii_graphic()));

            let quoted = value(&text);
            proptest::prop_assert!(quoted.is_ascii(), "{quoted:?}");
            let shown = if ascii.len() > VALUE_LENGTH {
                format!("{}...", &ascii[..VALUE_LENGTH])
            } else {
                ascii.clone()
            };
            if quoted != shown {
                let inner = quoted.strip_prefix('"').and_then(|q| q.strip_suffix('"'));
                proptest::prop_assert!(inner.is_some(), "{quoted:?}");
                proptest::prop_assert_eq!(&unescape(inner.unwrap()), &shown);
            }

            let comment = comment_text(&text);
            proptest::prop_assert!(comment.is_ascii(), "{comment:?}");
            let read = unescape(&comment);
            match read.strip_suffix(" ...") {
                Some(kept) if ascii.len() > COMMENT_LENGTH => {
                    proptest::prop_assert!(kept.len() <= COMMENT_LENGTH);
                    proptest::prop_assert!(ascii.starts_with(kept));
                }
                _ => proptest::prop_assert_eq!(&read, &ascii),
            }

            let line = format!("\tdkim=pass ({comment}) header.d={quoted}");
            let folded = fold(&line);
            proptest::prop_assert_eq!(folded.replace("\r\n\t  ", " "), line);
        }

        /// Whatever the reasons, names and domains hold — non-ASCII symbols, line breaks,
        /// parentheses, kilobytes without a space — the whole field is ASCII, every line break
        /// is a fold, and no line exceeds 998 bytes.
        #[test]
        fn the_field_is_ascii_and_its_lines_bounded_for_hostile_values(
            values in proptest::collection::vec(hostile(), 12)
        ) {
            let field = field_with(&values);
            proptest::prop_assert!(field.is_ascii(), "{field:?}");
            for (index, line) in field.split("\r\n").enumerate() {
                proptest::prop_assert!(line.len() <= 998, "{} bytes: {line:?}", line.len());
                proptest::prop_assert!(
                    index == 0 || line.starts_with([' ', '\t']),
                    "a line break that is not a fold before {line:?}"
                );
                proptest::prop_assert!(
                    !line.contains(['\r', '\n']),
                    "a bare CR or LF in {line:?}"
                );
            }
        }
    }

    /// Text a hostile message or DNS answer can put in a report: long runs without a space,
    /// quoted-string material with spaces, symbols, control and non-ASCII characters.
    fn hostile() -> impl proptest::strategy::Strategy<Value = String> {
        proptest::prop_oneof![
            "[a-z0-9.-]{0,5000}",
            "[ a-z.\"\\\\()\t\r\n\u{85}\u{e9}\u{1F600}\u{a7}\u{2192}\u{2028};=@-]{0,3000}",
            "[\u{a7}\u{2192}\u{e9}\u{1F600}\"\\\\()]{0,1500}",
        ]
    }

    /// The field for a report whose every free-text part is one of `values`.
    fn field_with(values: &[String]) -> String {
        use crate::report::{
            Alignment, AlignmentMode, ArcReport, ArcResult, DkimReasonCode, DmarcResult,
            SpfIdentityKind, SpfResult,
        };
        let check = |kind, identity: &str, reason: &str| SpfCheck {
            result: SpfResult::Fail,
            ..crate::spf::not_checked(kind, identity, "example.test", reason)
        };
        let spf = SpfReport {
            check: check(SpfIdentityKind::Mailfrom, &values[0], &values[1]),
            aligned: false,
            helo: Some(check(SpfIdentityKind::Helo, &values[2], &values[3])),
        };
        let signature = DkimSignatureReport {
            domain: values[4].clone(),
            selector: values[5].clone(),
            algorithm: values[6].clone(),
            canonicalization: String::new(),
            identity: None,
            signed_headers: Vec::new(),
            signed_headers_not_listed: 0,
            body_length: None,
            timestamp: None,
            expiration: None,
            key_type: None,
            key_bits: None,
            result: DkimResult::Fail,
            reason: values[7].clone(),
            reason_code: DkimReasonCode::SignatureMismatch,
            aligned: false,
            warnings: Vec::new(),
            header_value: String::new(),
        };
        let alignment = Alignment {
            mode: AlignmentMode::Relaxed,
            aligned: false,
            domain: None,
        };
        let dmarc = DmarcReport {
            from_domain: Some(values[8].clone()),
            organizational_domain: None,
            problem: Some(values[9].clone()),
            record: None,
            spf_alignment: alignment.clone(),
            dkim_alignment: alignment,
            result: DmarcResult::Permerror,
            policy: "none".into(),
            reason: values[10].clone(),
            policy_tag: None,
            author_domain_exists: None,
            queries: Vec::new(),
            walk_queries: 0,
            walk_query_limit: 0,
            organizational_domains: Vec::new(),
            notes: Vec::new(),
            rfc7489: None,
            rfc7489_differences: Vec::new(),
        };
        let arc = ArcReport {
            result: ArcResult::Fail,
            sets: 1,
            reason: values[11].clone(),
        };
        authentication_results("tester.test", &spf, &[signature], &dmarc, &arc)
    }

    #[test]
    fn the_symbols_of_the_reasons_are_written_in_ascii() {
        assert_eq!(
            comment_text("HELO '[192.0.2.1]' (RFC 7208 §2.3): none"),
            "HELO '[192.0.2.1]' \\(RFC 7208 section 2.3\\): none"
        );
        assert_eq!(
            comment_text("a.test → b.test — §§ 4–6 …"),
            "a.test -> b.test - section section 4-6 ..."
        );
        assert_eq!(comment_text("café 😀"), "caf? ?");
        assert_eq!(value("caf\u{e9}.test"), "\"caf?.test\"");
    }

    #[test]
    fn a_kilobyte_domain_is_cut_so_its_line_stays_short() {
        let long = "a".repeat(5000);
        let shown = value(&long);
        assert_eq!(shown.len(), VALUE_LENGTH + 3);
        assert!(shown.ends_with("..."));
    }

    /// `text` with each backslash escape replaced by the character it escapes.
    fn unescape(text: &str) -> String {
        let mut out = String::new();
        let mut chars = text.chars();
        while let Some(c) = chars.next() {
            out.push(if c == '\\' {
                chars.next().unwrap_or('\\')
            } else {
                c
            });
        }
        out
    }

    #[test]
    fn tokens_and_addresses_stay_bare_other_values_are_quoted() {
        assert_eq!(value("rsa-sha256"), "rsa-sha256");
        assert_eq!(value("example.test"), "example.test");
        assert_eq!(value("alice@example.test"), "alice@example.test");
        assert_eq!(
            value("first.last+tag@example.test"),
            "first.last+tag@example.test"
        );
        assert_eq!(value("a b@example.test"), "\"a b@example.test\"");
        assert_eq!(value("say \"hi\""), "\"say \\\"hi\\\"\"");
    }

    #[test]
    fn comments_escape_parentheses_and_drop_line_breaks() {
        assert_eq!(
            comment_text("key (2048 bits)\r\nok\\"),
            "key \\(2048 bits\\)  ok\\\\"
        );
    }

    #[test]
    fn folding_breaks_long_lines_at_spaces_outside_quotes_only() {
        let long = format!(
            "\tdkim=pass ({}) header.d=\"{}\"",
            "word ".repeat(30).trim_end(),
            "quoted text ".repeat(10)
        );
        let folded = fold(&long);
        assert_eq!(
            folded.replace("\r\n\t  ", " "),
            long,
            "unfolding gives back the line"
        );
        for physical in folded.split("\r\n") {
            assert!(
                physical.len() <= LINE_LENGTH || physical.contains('"'),
                "{physical:?} is too long"
            );
        }
        let quoted_part = folded.split('"').nth(1).unwrap();
        assert!(
            !quoted_part.contains("\r\n"),
            "never folds inside a quoted string"
        );
    }
}
