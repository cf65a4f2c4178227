//! SPF record selection and syntax (RFC 7208 §4.5, §4.6, §5, §6, §12).
//!
//! A whole record is parsed before any term is evaluated, so a syntax error anywhere makes the
//! record a permerror even when an earlier mechanism would have matched (§4.6).

use std::net::{Ipv4Addr, Ipv6Addr};

use crate::report::SpfResult;

use super::macros::{MacroContext, MacroString};

/// A mechanism's prefix (§4.6.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Qualifier {
    Pass,
    Fail,
    SoftFail,
    Neutral,
}

impl Qualifier {
    /// The result a matching mechanism with this qualifier gives.
    pub fn result(self) -> SpfResult {
        match self {
            Qualifier::Pass => SpfResult::Pass,
            Qualifier::Fail => SpfResult::Fail,
            Qualifier::SoftFail => SpfResult::Softfail,
            Qualifier::Neutral => SpfResult::Neutral,
        }
    }
}

/// Prefix lengths of `a` and `mx`: one for IPv4 clients, one for IPv6 clients (§5.6).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DualCidr {
    pub v4: u8,
    pub v6: u8,
}

impl Default for DualCidr {
    fn default() -> Self {
        DualCidr { v4: 32, v6: 128 }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Mechanism {
    All,
    Include(MacroString),
    A {
        domain: Option<MacroString>,
        cidr: DualCidr,
    },
    Mx {
        domain: Option<MacroString>,
        cidr: DualCidr,
    },
    Ptr(Option<MacroString>),
    Ip4 {
        network: Ipv4Addr,
        prefix: u8,
    },
    Ip6 {
        network: Ipv6Addr,
        prefix: u8,
    },
    Exists(MacroString),
}

impl Mechanism {
    /// Whether evaluating it queries DNS, so it counts against the limit of 10 (§4.6.4).
    pub fn queries_dns(&self) -> bool {
        !matches!(
            self,
            Mechanism::All | Mechanism::Ip4 { .. } | Mechanism::Ip6 { .. }
        )
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TermKind {
    Directive {
        qualifier: Qualifier,
        mechanism: Mechanism,
    },
    Redirect(MacroString),
    Explanation(MacroString),
    /// A modifier this implementation does not know: ignored (§6).
    UnknownModifier,
}

/// One term, with its text as written (for the trace).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Term {
    pub text: String,
    pub kind: TermKind,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    pub terms: Vec<Term>,
}

impl Record {
    pub fn redirect(&self) -> Option<(&Term, &MacroString)> {
        self.terms.iter().find_map(|t| match &t.kind {
            TermKind::Redirect(spec) => Some((t, spec)),
            _ => None,
        })
    }

    pub fn explanation(&self) -> Option<(&Term, &MacroString)> {
        self.terms.iter().find_map(|t| match &t.kind {
            TermKind::Explanation(spec) => Some((t, spec)),
            _ => None,
        })
    }
}

/// Why a record is not valid SPF.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyntaxError {
    /// The offending term as written, when one term is to blame.
    pub term: Option<String>,
    pub problem: String,
}

impl std::fmt::Display for SyntaxError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.term {
            Some(term) => write!(f, "'{term}': {}", self.problem),
            None => f.write_str(&self.problem),
        }
    }
}

const VERSION: &[u8] = b"v=spf1";

/// Whether a TXT record is an SPF record: `v=spf1` (any case) then a space or the end (§4.5).
pub fn is_spf_record(txt: &[u8]) -> bool {
    txt.len() >= VERSION.len()
        && txt[..VERSION.len()].eq_ignore_ascii_case(VERSION)
        && (txt.len() == VERSION.len() || txt[VERSION.len()] == b' ')
}

/// Parses a record already selected by [`is_spf_record`].
pub fn parse_record(txt: &[u8]) -> Result<Record, SyntaxError> {
    let text = match std::str::from_utf8(txt) {
        Ok(text) if text.is_ascii() => text,
        _ => {
            let lossy = String::from_utf8_lossy(txt);
            let term = lossy.split(' ').find(|t| !t.is_ascii()).map(str::to_string);
            return Err(SyntaxError {
                term,
                problem: "non-ASCII characters are not allowed; SPF records are 7-bit ASCII (RFC 7208 §3)".into(),
            });
        }
    };
    let mut terms = Vec::new();
    let mut seen_redirect = false;
    let mut seen_explanation = false;
    for text in text[VERSION.len()..].split(' ').filter(|t| !t.is_empty()) {
        let error = |problem: String| SyntaxError {
            term: Some(text.to_string()),
            problem,
        };
        let kind = parse_term(text).map_err(error)?;
        let duplicate = match kind {
            TermKind::Redirect(_) => std::mem::replace(&mut seen_redirect, true),
            TermKind::Explanation(_) => std::mem::replace(&mut seen_explanation, true),
            _ => false,
        };
        if duplicate {
            return Err(error("this modifier appears more than once; redirect= and exp= may each appear once (RFC 7208 §6)".into()));
        }
        terms.push(Term {
            text: text.to_string(),
            kind,
        });
    }
    Ok(Record { terms })
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')
}

fn parse_term(text: &str) -> Result<TermKind, String> {
    let name_len = text.find(|c: char| !is_name_char(c)).unwrap_or(text.len());
    if text[name_len..].starts_with('=') {
        return parse_modifier(&text[..name_len], &text[name_len + 1..]);
    }
    let (qualifier, rest) = match text.chars().next() {
        Some('+') => (Qualifier::Pass, &text[1..]),
        Some('-') => (Qualifier::Fail, &text[1..]),
        Some('~') => (Qualifier::SoftFail, &text[1..]),
        Some('?') => (Qualifier::Neutral, &text[1..]),
        _ => (Qualifier::Pass, text),
    };
    let name_end = rest.find([':', '/']).unwrap_or(rest.len());
    let (name, args) = rest.split_at(name_end);
    let mechanism = match name.to_ascii_lowercase().as_str() {
        "all" if args.is_empty() => Mechanism::All,
        "all" => return Err("'all' takes no argument (RFC 7208 §5.1)".into()),
        "include" => Mechanism::Include(required_domain(args, "include")?),
        "exists" => Mechanism::Exists(required_domain(args, "exists")?),
        "ptr" => Mechanism::Ptr(match args.strip_prefix(':') {
            Some(spec) => Some(domain_spec(spec)?),
            None if args.is_empty() => None,
            None => {
                return Err("'ptr' takes only ':domain', no prefix length (RFC 7208 §5.5)".into());
            }
        }),
        "a" => {
            let (domain, cidr) = domain_and_cidr(args)?;
            Mechanism::A { domain, cidr }
        }
        "mx" => {
            let (domain, cidr) = domain_and_cidr(args)?;
            Mechanism::Mx { domain, cidr }
        }
        "ip4" => {
            let value = args
                .strip_prefix(':')
                .ok_or("'ip4' needs ':' and an address (RFC 7208 §5.6)")?;
            let (address, prefix) = value
                .split_once('/')
                .map_or((value, None), |(a, p)| (a, Some(p)));
            let network = parse_ipv4(address).ok_or_else(|| {
                format!("'{address}' is not an IPv4 address in dotted-quad form (RFC 7208 §5.6)")
            })?;
            let prefix = prefix.map_or(Ok(32), |p| prefix_length(p, 32))?;
            Mechanism::Ip4 { network, prefix }
        }
        "ip6" => {
            let value = args
                .strip_prefix(':')
                .ok_or("'ip6' needs ':' and an address (RFC 7208 §5.6)")?;
            let (address, prefix) = value
                .split_once('/')
                .map_or((value, None), |(a, p)| (a, Some(p)));
            let network: Ipv6Addr = address
                .parse()
                .map_err(|_| format!("'{address}' is not an IPv6 address (RFC 7208 §5.6)"))?;
            let prefix = prefix.map_or(Ok(128), |p| prefix_length(p, 128))?;
            Mechanism::Ip6 { network, prefix }
        }
        "redirect" | "exp" => {
            return Err(format!(
                "'{name}' is a modifier and needs '=' (RFC 7208 §6)"
            ));
        }
        _ => return Err(format!("'{name}' is not a mechanism (RFC 7208 §5)")),
    };
    Ok(TermKind::Directive {
        qualifier,
        mechanism,
    })
}

fn parse_modifier(name: &str, value: &str) -> Result<TermKind, String> {
    if !name.starts_with(|c: char| c.is_ascii_alphabetic()) {
        return Err("a modifier name must start with a letter (RFC 7208 §12)".into());
    }
    match name.to_ascii_lowercase().as_str() {
        "redirect" => Ok(TermKind::Redirect(non_empty_domain(value, "redirect=")?)),
        "exp" => Ok(TermKind::Explanation(non_empty_domain(value, "exp=")?)),
        _ => {
            MacroString::parse(value, MacroContext::UnknownModifier)?;
            Ok(TermKind::UnknownModifier)
        }
    }
}

fn required_domain(args: &str, mechanism: &str) -> Result<MacroString, String> {
    let spec = args
        .strip_prefix(':')
        .ok_or_else(|| format!("'{mechanism}' needs ':' and a domain (RFC 7208 §5)"))?;
    non_empty_domain(spec, mechanism)
}

fn non_empty_domain(spec: &str, what: &str) -> Result<MacroString, String> {
    if spec.is_empty() {
        return Err(format!("'{what}' needs a domain (RFC 7208 §12)"));
    }
    domain_spec(spec)
}

/// A `domain-spec`: a macro string ending in a macro or in `.toplabel` (§7.1).
fn domain_spec(spec: &str) -> Result<MacroString, String> {
    if spec.is_empty() {
        return Err("the domain is empty (RFC 7208 §12)".into());
    }
    let parsed = MacroString::parse(spec, MacroContext::DomainSpec)?;
    if parsed.ends_with_macro() {
        return Ok(parsed);
    }
    let tail = parsed.trailing_literal();
    let tail = tail.strip_suffix('.').unwrap_or(tail);
    match tail.rsplit_once('.') {
        Some((_, top)) if is_toplabel(top) => Ok(parsed),
        Some((_, top)) => Err(format!(
            "'{spec}' is not a domain name: its last label '{top}' must be letters, digits and inner hyphens, not all digits (RFC 7208 §7.1)"
        )),
        None => Err(format!(
            "'{spec}' is not a fully qualified domain name (RFC 7208 §7.1)"
        )),
    }
}

fn is_toplabel(label: &str) -> bool {
    let bytes = label.as_bytes();
    !bytes.is_empty()
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'-')
        && bytes[0] != b'-'
        && bytes[bytes.len() - 1] != b'-'
        && (label.contains('-') || bytes.iter().any(u8::is_ascii_alphabetic))
}

/// Splits `a`/`mx` arguments (`[:domain][/v4][//v6]`) into the domain and the prefix lengths.
fn domain_and_cidr(args: &str) -> Result<(Option<MacroString>, DualCidr), String> {
    let Some(value) = args.strip_prefix(':') else {
        return Ok((None, dual_cidr(args)?));
    };
    // The domain may itself contain '/', but a valid domain-spec never ends in "/digits",
    // so the prefix lengths are read from the end.
    let mut end = value.len();
    if let Some(start) = trailing_digits(&value[..end])
        && value[..start].ends_with("//")
    {
        end = start - 2;
    }
    if let Some(start) = trailing_digits(&value[..end])
        && value[..start].ends_with('/')
    {
        end = start - 1;
    }
    let (spec, cidr) = value.split_at(end);
    Ok((Some(domain_spec(spec)?), dual_cidr(cidr)?))
}

fn trailing_digits(text: &str) -> Option<usize> {
    let start = text.trim_end_matches(|c: char| c.is_ascii_digit()).len();
    (start < text.len()).then_some(start)
}

/// `[ "/" ip4-cidr ] [ "//" ip6-cidr ]`.
fn dual_cidr(text: &str) -> Result<DualCidr, String> {
    let mut cidr = DualCidr::default();
    let (v4, v6) = match text.find("//") {
        Some(at) => (&text[..at], Some(&text[at + 2..])),
        None => (text, None),
    };
    if !v4.is_empty() {
        let digits = v4
            .strip_prefix('/')
            .ok_or_else(|| format!("'{text}' is not a prefix length (RFC 7208 §5.6)"))?;
        cidr.v4 = prefix_length(digits, 32)?;
    }
    if let Some(digits) = v6 {
        cidr.v6 = prefix_length(digits, 128)?;
    }
    Ok(cidr)
}

fn prefix_length(digits: &str, max: u8) -> Result<u8, String> {
    let valid = !digits.is_empty()
        && digits.len() <= 3
        && digits.bytes().all(|b| b.is_ascii_digit())
        && (digits == "0" || !digits.starts_with('0'));
    match digits.parse::<u8>() {
        Ok(n) if valid && n <= max => Ok(n),
        _ => Err(format!(
            "'/{digits}' is not a prefix length from 0 to {max} (RFC 7208 §5.6)"
        )),
    }
}

/// Strict dotted quad: four decimal numbers 0-255 without leading zeros (§12 `ip4-network`).
fn parse_ipv4(text: &str) -> Option<Ipv4Addr> {
    let mut octets = [0u8; 4];
    let mut parts = text.split('.');
    for octet in &mut octets {
        let part = parts.next()?;
        if part.is_empty() || part.len() > 3 || !part.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        if part.len() > 1 && part.starts_with('0') {
            return None;
        }
        *octet = part.parse().ok()?;
    }
    parts.next().is_none().then(|| Ipv4Addr::from(octets))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Record, SyntaxError> {
        parse_record(text.as_bytes())
    }

    #[test]
    fn selects_only_version_1_records() {
        assert!(is_spf_record(b"v=spf1"));
        assert!(is_spf_record(b"V=SpF1 -all"));
        assert!(!is_spf_record(b"v=spf10"));
        assert!(!is_spf_record(b"v=spf1mx"));
        assert!(!is_spf_record(b"spf1 -all"));
    }

    #[test]
    fn parses_every_mechanism_and_dual_cidr() {
        let record = parse("v=spf1 +a -mx:example.com/24//64 ~ptr ?ip4:192.0.2.0/24 ip6:2001:db8::/32 exists:%{i}.x.example include:_spf.example.net a:foo:bar/baz.example.com all").unwrap();
        let kinds: Vec<_> = record.terms.iter().map(|t| &t.kind).collect();
        assert!(matches!(
            kinds[1],
            TermKind::Directive {
                qualifier: Qualifier::Fail,
                mechanism: Mechanism::Mx {
                    cidr: DualCidr { v4: 24, v6: 64 },
                    ..
                }
            }
        ));
        assert!(matches!(
            kinds[3],
            TermKind::Directive {
                mechanism: Mechanism::Ip4 { prefix: 24, .. },
                ..
            }
        ));
        assert!(matches!(
            kinds[7],
            TermKind::Directive {
                mechanism: Mechanism::A {
                    domain: Some(_),
                    cidr: DualCidr { v4: 32, v6: 128 }
                },
                ..
            }
        ));
        assert_eq!(record.terms.len(), 9);
    }

    #[test]
    fn rejects_syntax_errors_anywhere() {
        for bad in [
            "v=spf1 -all moo",
            "v=spf1 ip4:1.2.3.4/33",
            "v=spf1 ip4:1.2.3.4/032",
            "v=spf1 ip4:1.2.3",
            "v=spf1 ip4:1.2.3.4//32",
            "v=spf1 ip6:::1/129",
            "v=spf1 a/24/64",
            "v=spf1 a:museum",
            "v=spf1 a:abc.123",
            "v=spf1 a:example.-com",
            "v=spf1 include:",
            "v=spf1 exists",
            "v=spf1 ptr/0",
            "v=spf1 -all.",
            "v=spf1 redirect:x.example.com",
            "v=spf1 exp=",
            "v=spf1 redirect=a.example redirect=b.example",
            "v=spf1 1up=foo",
            "v=spf1 =all",
            "v=spf1 foo=%abc",
            "v=spf1 a:ctrl.example.com\rptr",
            "v=spf1 exists:%{c}.example.com",
        ] {
            assert!(parse(bad).is_err(), "{bad:?} should be a syntax error");
        }
    }

    #[test]
    fn accepts_unknown_modifiers_and_extra_spaces() {
        let record = parse("v=spf1 moo.cow-far_out=man:dog/cat  ip4:1.2.3.4 -all ").unwrap();
        assert_eq!(record.terms[0].kind, TermKind::UnknownModifier);
        assert_eq!(record.terms.len(), 3);
    }
}
