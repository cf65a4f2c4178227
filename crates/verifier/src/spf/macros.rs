//! The SPF macro language (RFC 7208 §7): parsing `macro-string`s and expanding them.
//!
//! Parsing is separate from expansion because syntax errors in a record are found before
//! anything is evaluated (a bad macro anywhere makes the whole record a permerror), while
//! expansion needs the values of one evaluation (the sender, the current domain, the client IP).

use std::fmt::Write as _;
use std::net::IpAddr;

/// Where a macro string appears; it decides which characters and macro letters are allowed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MacroContext {
    /// The target of a mechanism, `redirect=` or `exp=`: no spaces, no `c`, `r` or `t`.
    DomainSpec,
    /// The value of an unknown modifier: any macro letter, no spaces.
    UnknownModifier,
    /// The text of the TXT record `exp=` points at: spaces and every macro letter allowed.
    Explanation,
}

/// One macro letter (RFC 7208 §7.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MacroLetter {
    /// `s`: the sender, `local-part@domain`.
    Sender,
    /// `l`: the sender's local-part.
    LocalPart,
    /// `o`: the sender's domain.
    SenderDomain,
    /// `d`: the domain whose record is being evaluated.
    Domain,
    /// `i`: the client IP, dotted (nibbles for IPv6).
    Ip,
    /// `p`: the validated domain name of the client IP.
    ValidatedName,
    /// `v`: `in-addr` or `ip6`.
    IpVersion,
    /// `h`: the HELO/EHLO name.
    Helo,
    /// `c`: the client IP in its usual text form (explanations only).
    ReadableIp,
    /// `r`: the receiving host's name (explanations only).
    Receiver,
    /// `t`: the current time in seconds since the epoch (explanations only).
    Timestamp,
}

impl MacroLetter {
    fn from_char(c: char) -> Option<MacroLetter> {
        Some(match c.to_ascii_lowercase() {
            's' => MacroLetter::Sender,
            'l' => MacroLetter::LocalPart,
            'o' => MacroLetter::SenderDomain,
            'd' => MacroLetter::Domain,
            'i' => MacroLetter::Ip,
            'p' => MacroLetter::ValidatedName,
            'v' => MacroLetter::IpVersion,
            'h' => MacroLetter::Helo,
            'c' => MacroLetter::ReadableIp,
            'r' => MacroLetter::Receiver,
            't' => MacroLetter::Timestamp,
            _ => return None,
        })
    }

    fn explanation_only(self) -> bool {
        matches!(
            self,
            MacroLetter::ReadableIp | MacroLetter::Receiver | MacroLetter::Timestamp
        )
    }
}

/// A `%{...}` expansion with its transformers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MacroExpand {
    pub letter: MacroLetter,
    /// Written in uppercase: the value is URL-escaped after transformation.
    pub url_escape: bool,
    /// Keep only this many right-hand parts.
    pub keep: Option<usize>,
    pub reverse: bool,
    /// Characters the value is split on; `.` when none are given.
    pub delimiters: Vec<char>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Piece {
    Literal(String),
    /// `%%`, `%_` or `%-`: a macro-expand that stands for fixed text.
    Escape(&'static str),
    Expand(MacroExpand),
}

/// A parsed macro string.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MacroString {
    pieces: Vec<Piece>,
}

/// The values macros expand to during one evaluation.
#[derive(Clone, Debug)]
pub struct MacroValues<'a> {
    pub local_part: &'a str,
    pub sender_domain: &'a str,
    pub domain: &'a str,
    pub ip: IpAddr,
    /// The `p` value, looked up beforehand when [`MacroString::uses_validated_name`].
    pub validated_name: Option<&'a str>,
    pub helo: &'a str,
    pub receiver: &'a str,
    pub timestamp: u64,
}

/// The largest number of right-hand parts a transformer may ask for that we honour exactly;
/// RFC 7208 §7.3 requires at least 128 labels, and no domain has more.
const MAX_PARTS: usize = 255;

impl MacroString {
    /// Parses `text` as a macro string allowed in `context`.
    pub fn parse(text: &str, context: MacroContext) -> Result<MacroString, String> {
        let mut pieces = Vec::new();
        let mut literal = String::new();
        let mut chars = text.chars().peekable();
        while let Some(c) = chars.next() {
            if c != '%' {
                check_literal_char(c, context)?;
                literal.push(c);
                continue;
            }
            let escape = match chars.next() {
                Some('%') => Some("%"),
                Some('_') => Some(" "),
                Some('-') => Some("%20"),
                Some('{') => None,
                Some(other) => {
                    return Err(format!(
                        "'%{other}' is not a macro: '%' must be followed by '{{', '%', '_' or '-' (RFC 7208 §7.1)"
                    ));
                }
                None => {
                    return Err(
                        "a '%' at the end is not a macro; write '%%' for a percent sign".into(),
                    );
                }
            };
            if !literal.is_empty() {
                pieces.push(Piece::Literal(std::mem::take(&mut literal)));
            }
            match escape {
                Some(text) => pieces.push(Piece::Escape(text)),
                None => pieces.push(Piece::Expand(parse_expand(&mut chars, context)?)),
            }
        }
        if !literal.is_empty() {
            pieces.push(Piece::Literal(literal));
        }
        Ok(MacroString { pieces })
    }

    /// Whether expansion needs the validated domain name of the client (`%{p}`), a DNS lookup.
    pub fn uses_validated_name(&self) -> bool {
        self.pieces
            .iter()
            .any(|p| matches!(p, Piece::Expand(e) if e.letter == MacroLetter::ValidatedName))
    }

    /// Whether the string ends in a macro expansion (which satisfies `domain-end`, §7.1).
    pub fn ends_with_macro(&self) -> bool {
        matches!(
            self.pieces.last(),
            Some(Piece::Expand(_) | Piece::Escape(_))
        )
    }

    /// The literal text after the last macro (all of it when there is no macro).
    pub fn trailing_literal(&self) -> &str {
        match self.pieces.last() {
            Some(Piece::Literal(text)) => text,
            _ => "",
        }
    }

    /// Expands every macro with `values`.
    pub fn expand(&self, values: &MacroValues<'_>) -> String {
        let mut out = String::new();
        for piece in &self.pieces {
            match piece {
                Piece::Literal(text) => out.push_str(text),
                Piece::Escape(text) => out.push_str(text),
                Piece::Expand(expand) => out.push_str(&expand_one(expand, values)),
            }
        }
        out
    }
}

fn check_literal_char(c: char, context: MacroContext) -> Result<(), String> {
    match c {
        '!'..='~' => Ok(()),
        ' ' if context == MacroContext::Explanation => Ok(()),
        ' ' => Err("a space cannot appear here".into()),
        c if c.is_control() => Err(format!(
            "control character {:?} is not allowed (RFC 7208 §4.6.1)",
            c
        )),
        c => Err(format!(
            "non-ASCII character {c:?} is not allowed; SPF records are 7-bit ASCII"
        )),
    }
}

fn parse_expand(
    chars: &mut std::iter::Peekable<std::str::Chars<'_>>,
    context: MacroContext,
) -> Result<MacroExpand, String> {
    let letter_char = chars.next().ok_or("'%{' is not closed")?;
    let letter = MacroLetter::from_char(letter_char)
        .ok_or_else(|| format!("'%{{{letter_char}' names no macro; the letters are s l o d i p h c r t v (RFC 7208 §7.2)"))?;
    if letter.explanation_only() && context == MacroContext::DomainSpec {
        return Err(format!(
            "macro '%{{{letter_char}}}' is only allowed in explanation text (RFC 7208 §7.2)"
        ));
    }
    let mut digits = String::new();
    while let Some(&c) = chars.peek() {
        if !c.is_ascii_digit() {
            break;
        }
        digits.push(c);
        chars.next();
    }
    let keep = if digits.is_empty() {
        None
    } else {
        let count = digits.parse::<usize>().unwrap_or(usize::MAX).min(MAX_PARTS);
        if count == 0 {
            return Err(format!(
                "'%{{{letter_char}{digits}' asks for zero parts; the count must be at least 1 (RFC 7208 §7.3)"
            ));
        }
        Some(count)
    };
    let reverse = matches!(chars.peek(), Some('r' | 'R'));
    if reverse {
        chars.next();
    }
    let mut delimiters = Vec::new();
    loop {
        match chars.next() {
            Some('}') => break,
            Some(c @ ('.' | '-' | '+' | ',' | '/' | '_' | '=')) => delimiters.push(c),
            Some(c) => {
                return Err(format!(
                    "{c:?} cannot appear in a macro; delimiters are . - + , / _ = (RFC 7208 §7.1)"
                ));
            }
            None => return Err("'%{' is not closed".into()),
        }
    }
    Ok(MacroExpand {
        letter,
        url_escape: letter_char.is_ascii_uppercase(),
        keep,
        reverse,
        delimiters,
    })
}

fn expand_one(expand: &MacroExpand, values: &MacroValues<'_>) -> String {
    let raw = match expand.letter {
        MacroLetter::Sender => format!("{}@{}", values.local_part, values.sender_domain),
        MacroLetter::LocalPart => values.local_part.to_string(),
        MacroLetter::SenderDomain => values.sender_domain.to_string(),
        MacroLetter::Domain => values.domain.to_string(),
        MacroLetter::Ip => dotted_ip(values.ip),
        MacroLetter::ValidatedName => values.validated_name.unwrap_or("unknown").to_string(),
        MacroLetter::IpVersion => match values.ip {
            IpAddr::V4(_) => "in-addr".into(),
            IpAddr::V6(_) => "ip6".into(),
        },
        MacroLetter::Helo => values.helo.to_string(),
        MacroLetter::ReadableIp => values.ip.to_string(),
        MacroLetter::Receiver => values.receiver.to_string(),
        MacroLetter::Timestamp => values.timestamp.to_string(),
    };
    let transformed = transform(&raw, expand);
    if expand.url_escape {
        url_escape(&transformed)
    } else {
        transformed
    }
}

/// Splits on the delimiters, reverses, keeps the right-hand parts, and joins with dots (§7.3).
fn transform(value: &str, expand: &MacroExpand) -> String {
    if expand.keep.is_none() && !expand.reverse && expand.delimiters.is_empty() {
        return value.to_string();
    }
    let is_delimiter = |c: char| {
        if expand.delimiters.is_empty() {
            c == '.'
        } else {
            expand.delimiters.contains(&c)
        }
    };
    let mut parts: Vec<&str> = value.split(is_delimiter).collect();
    if expand.reverse {
        parts.reverse();
    }
    if let Some(keep) = expand.keep
        && keep < parts.len()
    {
        parts.drain(..parts.len() - keep);
    }
    parts.join(".")
}

/// The `i` form: dotted decimal for IPv4; for IPv6, 32 dot-separated nibbles (§7.3). The
/// nibbles are uppercase hex, as the RFC 7208 test suite expects; DNS ignores the case.
fn dotted_ip(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => {
            let mut out = String::with_capacity(63);
            for byte in v6.octets() {
                for nibble in [byte >> 4, byte & 0xf] {
                    if !out.is_empty() {
                        out.push('.');
                    }
                    let _ = write!(out, "{nibble:X}");
                }
            }
            out
        }
    }
}

/// URL-escapes every byte outside RFC 3986's unreserved set (§7.3, uppercase macro letters).
fn url_escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(byte as char);
        } else {
            let _ = write!(out, "%{byte:02X}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(ip: &str) -> MacroValues<'static> {
        MacroValues {
            local_part: "strong-bad",
            sender_domain: "email.example.com",
            domain: "email.example.com",
            ip: ip.parse().unwrap(),
            validated_name: None,
            helo: "mx.example.org",
            receiver: "unknown",
            timestamp: 0,
        }
    }

    fn expand(text: &str, ip: &str) -> String {
        MacroString::parse(text, MacroContext::Explanation)
            .unwrap()
            .expand(&values(ip))
    }

    #[test]
    fn expands_the_rfc_7208_section_7_4_examples() {
        assert_eq!(expand("%{s}", "192.0.2.3"), "strong-bad@email.example.com");
        assert_eq!(expand("%{o}", "192.0.2.3"), "email.example.com");
        assert_eq!(expand("%{d2}", "192.0.2.3"), "example.com");
        assert_eq!(expand("%{d4}", "192.0.2.3"), "email.example.com");
        assert_eq!(expand("%{dr}", "192.0.2.3"), "com.example.email");
        assert_eq!(expand("%{d2r}", "192.0.2.3"), "example.email");
        assert_eq!(expand("%{l}", "192.0.2.3"), "strong-bad");
        assert_eq!(expand("%{l-}", "192.0.2.3"), "strong.bad");
        assert_eq!(expand("%{lr}", "192.0.2.3"), "strong-bad");
        assert_eq!(expand("%{lr-}", "192.0.2.3"), "bad.strong");
        assert_eq!(expand("%{l1r-}", "192.0.2.3"), "strong");
        assert_eq!(
            expand("%{ir}.%{v}._spf.%{d2}", "192.0.2.3"),
            "3.2.0.192.in-addr._spf.example.com"
        );
        assert_eq!(
            expand("%{lr-}.lp._spf.%{d2}", "192.0.2.3"),
            "bad.strong.lp._spf.example.com"
        );
        assert_eq!(
            expand("%{ir}.%{v}._spf.%{d2}", "2001:db8::cb01").to_ascii_lowercase(),
            "1.0.b.c.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6._spf.example.com"
        );
    }

    #[test]
    fn uppercase_letters_are_url_escaped_and_escapes_expand() {
        let mut v = values("192.0.2.3");
        v.local_part = "~jack&jill=up";
        let text = MacroString::parse("%{L}|%%|%_|%-", MacroContext::Explanation)
            .unwrap()
            .expand(&v);
        assert_eq!(text, "~jack%26jill%3Dup|%| |%20");
    }

    #[test]
    fn rejects_bad_macros() {
        for bad in ["%", "%x", "%{", "%{q}", "%{d0}", "%{d2!}", "%(ir)", "a b"] {
            assert!(
                MacroString::parse(bad, MacroContext::DomainSpec).is_err(),
                "{bad} should be rejected"
            );
        }
        assert!(MacroString::parse("%{c}", MacroContext::DomainSpec).is_err());
        assert!(MacroString::parse("%{c} %{r} %{t}", MacroContext::Explanation).is_ok());
    }
}
