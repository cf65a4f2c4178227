//! The `Authentication-Results` header field (RFC 8601) summing up a report.
//!
//! One result per method and identity: SPF for the MAIL FROM (or the HELO name for the null
//! reverse-path) and, when checked separately, for the HELO name; one `dkim=` per signature;
//! `dmarc=`; `arc=`. Reasons go in `(comments)`. Property values that are not plain tokens or
//! addresses are quoted. Each result starts a line, and long lines fold at spaces, never inside
//! a quoted string, so unfolding gives back the same field.
//!
//! DKIM results use the RFC 8601 §2.7.1 names: `pass`, `fail`, `temperror`, and `neutral` for a
//! signature that could not be processed (the report's `invalid`), with the reason in a comment.

use crate::report::{
    ArcReport, ArcResult, DkimResult, DkimSignatureReport, DmarcReport, SpfCheck, SpfIdentityKind,
    SpfReport,
};

/// Lines are folded to stay within this many bytes where spaces allow (RFC 5322 §2.1.1).
const LINE_LENGTH: usize = 78;
/// Comments longer than this are cut (at a word) so the field stays readable.
const COMMENT_LENGTH: usize = 160;

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

    let mut field = format!("Authentication-Results: {};", value(authserv_id));
    let last = results.len() - 1;
    for (index, result) in results.iter().enumerate() {
        let separator = if index == last { "" } else { ";" };
        field.push_str("\r\n");
        field.push_str(&fold(&format!("\t{}{separator}", result.render())));
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

    /// Adds `name=value` unless the value is empty (an empty pvalue is not allowed).
    fn property(mut self, name: &'static str, property_value: &str) -> ResInfo {
        if !property_value.is_empty() {
            self.properties.push((name, property_value.to_string()));
        }
        self
    }

    fn render(&self) -> String {
        let mut out = format!("{}={}", self.method, self.result);
        if let Some(text) = &self.comment {
            out.push_str(" (");
            out.push_str(&comment_text(text));
            out.push(')');
        }
        for (name, property_value) in &self.properties {
            out.push_str(&format!(" {name}={}", value(property_value)));
        }
        out
    }
}

fn spf_result(check: &SpfCheck) -> ResInfo {
    let result = ResInfo::new("spf", check.result.as_str()).comment(&check.reason);
    match check.identity_kind {
        SpfIdentityKind::Mailfrom => result.property("smtp.mailfrom", &check.identity),
        SpfIdentityKind::Helo => {
            let helo = check
                .identity
                .rsplit_once('@')
                .map_or(check.identity.as_str(), |(_, domain)| domain);
            result.property("smtp.helo", helo)
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
        .property("header.d", &signature.domain)
        .property("header.s", &signature.selector)
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
        .property("header.from", dmarc.from_domain.as_deref().unwrap_or(""))
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
/// when both halves are dot-atoms, and anything else as a quoted string.
fn value(text: &str) -> String {
    if is_token(text) {
        return text.to_string();
    }
    if let Some((local, domain)) = text.rsplit_once('@')
        && (local.is_empty() || is_dot_atom(local))
        && is_dot_atom(domain)
    {
        return text.to_string();
    }
    let mut quoted = String::with_capacity(text.len() + 2);
    quoted.push('"');
    for c in text.chars() {
        match c {
            '"' | '\\' => {
                quoted.push('\\');
                quoted.push(c);
            }
            c if c.is_control() => quoted.push(' '),
            c => quoted.push(c),
        }
    }
    quoted.push('"');
    quoted
}

/// Comment text: parentheses and backslashes escaped, control characters (line breaks above
/// all) turned into spaces, cut at a word when very long.
fn comment_text(text: &str) -> String {
    let mut short: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if short.len() > COMMENT_LENGTH {
        let cut = short.floor_char_boundary(COMMENT_LENGTH);
        let cut = short[..cut].rfind(' ').unwrap_or(cut);
        short.truncate(cut);
        short.push_str(" ...");
    }
    let mut escaped = String::with_capacity(short.len());
    for c in short.chars() {
        if matches!(c, '(' | ')' | '\\') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

/// Folds one line at spaces outside quoted strings so that each piece stays within
/// [`LINE_LENGTH`] where possible; continuation lines are indented with a tab and two spaces.
fn fold(line: &str) -> String {
    const CONTINUATION: &str = "\r\n\t  ";
    let mut out = String::with_capacity(line.len() + 16);
    let mut line_start = 0; // index in `out` where the current physical line starts
    let mut last_break: Option<usize> = None; // index in `out` of a space we may fold at
    let mut in_quotes = false;
    let mut escaped = false;
    for c in line.chars() {
        if in_quotes {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_quotes = false;
            }
        } else if c == '"' {
            in_quotes = true;
        } else if c == ' ' {
            last_break = Some(out.len());
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
    out
}

#[cfg(test)]
mod tests {
    use super::*;

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
