//! Reading one `DKIM-Signature` header field: its tags, and the RFC 6376 §6.1.1 checks that
//! decide whether it can be verified at all (plus RFC 8301's rejection of SHA-1).

use std::ops::Range;

use base64::Engine;

use super::canonical::Canonicalization;
use super::tags::{MAX_TAG_LIST_BYTES, MAX_TAGS, TagList, TagListError, without_fws};
use super::{Invalid, LENIENT_BASE64};
use crate::report::DkimReasonCode;

/// The signing algorithms this verifier accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Algorithm {
    RsaSha256,
    Ed25519Sha256,
}

impl Algorithm {
    /// The key type (`k=` of the key record) this algorithm needs.
    pub fn key_type(self) -> &'static str {
        match self {
            Algorithm::RsaSha256 => "rsa",
            Algorithm::Ed25519Sha256 => "ed25519",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Algorithm::RsaSha256 => "rsa-sha256",
            Algorithm::Ed25519Sha256 => "ed25519-sha256",
        }
    }
}

/// A signature that passed every check that needs neither the key nor the message.
#[derive(Clone, Debug)]
pub struct Signature {
    pub algorithm: Algorithm,
    pub header_canonicalization: Canonicalization,
    pub body_canonicalization: Canonicalization,
    /// `d=`, lowercased.
    pub domain: String,
    pub selector: String,
    /// The domain part of `i=` (that of `d=` when `i=` is absent), lowercased.
    pub identity_domain: String,
    /// `h=`, names as written.
    pub signed_headers: Vec<String>,
    pub body_length: Option<u64>,
    /// `bh=` as written (without whitespace) and decoded.
    pub body_hash_text: String,
    pub body_hash: Vec<u8>,
    /// `b=` decoded.
    pub signature: Vec<u8>,
    /// Where the `b=` value sits in the header field value, to remove it when hashing.
    pub signature_value_span: Range<usize>,
}

impl Signature {
    /// Where the key record is published: `<s>._domainkey.<d>`.
    pub fn key_name(&self) -> String {
        format!("{}._domainkey.{}", self.selector, self.domain)
    }
}

/// The tags that must be present (RFC 6376 §6.1.1), in the order reported.
const REQUIRED_TAGS: [&str; 7] = ["v", "a", "b", "bh", "d", "h", "s"];

/// Runs the §6.1.1 checks on a header field value, in the order a reader would fix them:
/// syntax, version, missing tags, algorithm, canonicalization, encodings, identity, signed
/// headers, times.
pub fn parse(value: &str, now: u64) -> Result<Signature, Invalid> {
    let tags = TagList::parse(value).map_err(|error| match error {
        TagListError::Syntax(detail) => {
            malformed(format!("the tag list cannot be parsed: {detail}"))
        }
        TagListError::Duplicate(name) => malformed(format!(
            "tag {name}= appears more than once; a signature must carry each tag once"
        )),
        TagListError::TooLong(length) => malformed(format!(
            "the signature field is {length} bytes long; signatures over {MAX_TAG_LIST_BYTES} bytes \
             are not verified (a real one is under 4 KiB)"
        )),
        TagListError::TooManyTags => malformed(format!(
            "the signature has more than {MAX_TAGS} tags; signatures with more are not verified \
             (RFC 6376 defines 14)"
        )),
    })?;

    if let Some(version) = tags.value("v")
        && version != "1"
    {
        return Err(Invalid::new(
            DkimReasonCode::UnsupportedVersion,
            format!(
                "v={version} is not a DKIM version this verifier knows; only v=1 exists (RFC 6376)"
            ),
        ));
    }
    let missing: Vec<String> = REQUIRED_TAGS
        .iter()
        .filter(|name| tags.get(name).is_none())
        .map(|name| format!("{name}="))
        .collect();
    match missing.as_slice() {
        [] => {}
        [one] => {
            return Err(Invalid::new(
                DkimReasonCode::MissingTag,
                format!("required tag {one} is missing"),
            ));
        }
        several => {
            return Err(Invalid::new(
                DkimReasonCode::MissingTag,
                format!("required tags {} are missing", several.join(", ")),
            ));
        }
    }
    for name in REQUIRED_TAGS {
        if tags.value(name).is_some_and(|v| without_fws(v).is_empty()) {
            return Err(malformed(format!("required tag {name}= is empty")));
        }
    }

    let algorithm = parse_algorithm(tags.value("a").unwrap_or_default())?;
    let (header_canonicalization, body_canonicalization) = parse_canonicalization(tags.value("c"))?;

    let body_hash_text = without_fws(tags.value("bh").unwrap_or_default());
    let body_hash = LENIENT_BASE64
        .decode(&body_hash_text)
        .map_err(|e| malformed(format!("bh= is not valid base64 ({e})")))?;
    let signature_tag = tags.get("b").expect("b= was checked to be present");
    let signature = LENIENT_BASE64
        .decode(without_fws(signature_tag.value))
        .map_err(|e| malformed(format!("b= is not valid base64 ({e})")))?;

    let domain = tags.value("d").unwrap_or_default().to_ascii_lowercase();
    let selector = tags.value("s").unwrap_or_default().to_string();
    if let Some(bad) = [("d", domain.as_str()), ("s", selector.as_str())]
        .into_iter()
        .find(|(_, name)| name.chars().any(|c| super::tags::is_fws(c) || c == '@'))
    {
        return Err(malformed(format!(
            "{}={} is not a domain name",
            bad.0, bad.1
        )));
    }

    let signed_headers = parse_signed_headers(tags.value("h").unwrap_or_default())?;
    if !signed_headers
        .iter()
        .any(|name| name.eq_ignore_ascii_case("from"))
    {
        return Err(Invalid::new(
            DkimReasonCode::FromNotSigned,
            format!(
                "h= ({}) does not include From; RFC 6376 requires the From field to be signed",
                signed_headers.join(":")
            ),
        ));
    }

    let identity_domain = match tags.value("i") {
        None => domain.clone(),
        Some(identity) => {
            let Some((_, identity_domain)) = identity.rsplit_once('@') else {
                return Err(malformed(format!(
                    "i={identity} is not an identity: it lacks the @"
                )));
            };
            let identity_domain = identity_domain.to_ascii_lowercase();
            if !is_same_or_subdomain(&identity_domain, &domain) {
                return Err(Invalid::new(
                    DkimReasonCode::IdentityNotInDomain,
                    format!(
                        "i={identity} is not in the signing domain d={domain}: its domain must be \
                         {domain} or a subdomain of it"
                    ),
                ));
            }
            identity_domain
        }
    };

    let body_length = parse_number(&tags, "l")?;
    let timestamp = parse_number(&tags, "t")?;
    let expiration = parse_number(&tags, "x")?;
    if let (Some(t), Some(x)) = (timestamp, expiration)
        && x < t
    {
        return Err(malformed(format!(
            "x={x} (expiration) is earlier than t={t} (signing time)"
        )));
    }
    if let Some(x) = expiration
        && x < now
    {
        return Err(Invalid::new(
            DkimReasonCode::SignatureExpired,
            format!(
                "the signature expired: x={x} is {} seconds before the time of verification ({now})",
                now - x
            ),
        ));
    }
    if let Some(methods) = tags.value("q")
        && !without_fws(methods).split(':').any(|m| m == "dns/txt")
    {
        return Err(malformed(format!(
            "q={methods} names no key query method this verifier supports (dns/txt)"
        )));
    }

    Ok(Signature {
        algorithm,
        header_canonicalization,
        body_canonicalization,
        domain,
        selector,
        identity_domain,
        signed_headers,
        body_length,
        body_hash_text,
        body_hash,
        signature,
        signature_value_span: signature_tag.value_span.clone(),
    })
}

fn malformed(reason: String) -> Invalid {
    Invalid::new(DkimReasonCode::MalformedSignature, reason)
}

fn parse_algorithm(value: &str) -> Result<Algorithm, Invalid> {
    match value.to_ascii_lowercase().as_str() {
        "rsa-sha256" => Ok(Algorithm::RsaSha256),
        "ed25519-sha256" => Ok(Algorithm::Ed25519Sha256),
        "rsa-sha1" => Err(Invalid::new(
            DkimReasonCode::Sha1Rejected,
            "a=rsa-sha1 is no longer acceptable (RFC 8301): SHA-1 signatures can be forged; sign with rsa-sha256",
        )),
        _ => Err(Invalid::new(
            DkimReasonCode::UnsupportedAlgorithm,
            format!("a={value} is not a supported signing algorithm (rsa-sha256, ed25519-sha256)"),
        )),
    }
}

/// `c=header[/body]`; an absent `c=` is simple/simple and an absent body half is simple.
fn parse_canonicalization(
    value: Option<&str>,
) -> Result<(Canonicalization, Canonicalization), Invalid> {
    let Some(value) = value else {
        return Ok((Canonicalization::Simple, Canonicalization::Simple));
    };
    let (header, body) = value.split_once('/').unwrap_or((value, "simple"));
    match (
        Canonicalization::parse(header),
        Canonicalization::parse(body),
    ) {
        (Some(header), Some(body)) => Ok((header, body)),
        _ => Err(Invalid::new(
            DkimReasonCode::UnsupportedCanonicalization,
            format!(
                "c={value} is not a known canonicalization (simple or relaxed, for header/body)"
            ),
        )),
    }
}

fn parse_signed_headers(value: &str) -> Result<Vec<String>, Invalid> {
    let names: Vec<String> = without_fws(value).split(':').map(str::to_string).collect();
    if let Some(bad) = names
        .iter()
        .find(|n| n.is_empty() || !n.bytes().all(|b| b.is_ascii_graphic() && b != b':'))
    {
        return Err(malformed(format!(
            "h={value} is not a colon-separated list of header field names (\"{bad}\")"
        )));
    }
    Ok(names)
}

fn parse_number(tags: &TagList<'_>, name: &str) -> Result<Option<u64>, Invalid> {
    let Some(value) = tags.value(name) else {
        return Ok(None);
    };
    match value.parse::<u64>() {
        Ok(number) if value.bytes().all(|b| b.is_ascii_digit()) => Ok(Some(number)),
        _ => Err(malformed(format!("{name}={value} is not a whole number"))),
    }
}

/// `name` equals `domain` or ends with `.domain` (both lowercased already).
pub fn is_same_or_subdomain(name: &str, domain: &str) -> bool {
    let name = name.trim_end_matches('.');
    let domain = domain.trim_end_matches('.');
    name == domain
        || name
            .strip_suffix(domain)
            .is_some_and(|prefix| prefix.ends_with('.'))
}

/// The `h=` names as written, for the report, even when the signature is malformed.
pub fn signed_header_names(tags: &TagList<'_>) -> Vec<String> {
    tags.value("h")
        .map(|h| {
            without_fws(h)
                .split(':')
                .filter(|n| !n.is_empty())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str =
        "v=1; a=rsa-sha256; d=Example.COM; s=sel; c=relaxed; h=from:to; bh=AAAA; b=AAAA";

    fn code(value: &str) -> DkimReasonCode {
        parse(value, 1_000).unwrap_err().code
    }

    #[test]
    fn a_complete_signature_parses_with_defaults() {
        let signature = parse(GOOD, 1_000).unwrap();
        assert_eq!(signature.domain, "example.com");
        assert_eq!(signature.identity_domain, "example.com");
        assert_eq!(signature.header_canonicalization, Canonicalization::Relaxed);
        assert_eq!(signature.body_canonicalization, Canonicalization::Simple);
        assert_eq!(signature.key_name(), "sel._domainkey.example.com");
        assert_eq!(&GOOD[signature.signature_value_span.clone()], "AAAA");
    }

    #[test]
    fn missing_tags_are_named() {
        let error = parse(
            "v=1; a=rsa-sha256; d=example.com; h=from; bh=AAAA; b=AAAA",
            0,
        )
        .unwrap_err();
        assert_eq!(error.code, DkimReasonCode::MissingTag);
        assert_eq!(error.reason, "required tag s= is missing");
        let error = parse("a=rsa-sha256; h=from; bh=AAAA; b=AAAA", 0).unwrap_err();
        assert_eq!(error.reason, "required tags v=, d=, s= are missing");
    }

    #[test]
    fn each_section_6_1_1_check_has_its_code() {
        assert_eq!(
            code(&GOOD.replace("v=1", "v=2")),
            DkimReasonCode::UnsupportedVersion
        );
        assert_eq!(
            code(&GOOD.replace("rsa-sha256", "rsa-sha1")),
            DkimReasonCode::Sha1Rejected
        );
        assert_eq!(
            code(&GOOD.replace("rsa-sha256", "dsa-sha256")),
            DkimReasonCode::UnsupportedAlgorithm
        );
        assert_eq!(
            code(&GOOD.replace("c=relaxed", "c=foo/bar")),
            DkimReasonCode::UnsupportedCanonicalization
        );
        assert_eq!(
            code(&GOOD.replace("h=from:to", "h=to")),
            DkimReasonCode::FromNotSigned
        );
        assert_eq!(
            code(&format!("{GOOD}; i=@example.org")),
            DkimReasonCode::IdentityNotInDomain
        );
        assert_eq!(
            code(&format!("{GOOD}; i=@notexample.com")),
            DkimReasonCode::IdentityNotInDomain
        );
        assert_eq!(
            code(&format!("{GOOD}; x=999")),
            DkimReasonCode::SignatureExpired
        );
        assert_eq!(
            code(&format!("{GOOD}; t=2000; x=1500")),
            DkimReasonCode::MalformedSignature
        );
        assert_eq!(
            code(&GOOD.replace("b=AAAA", "b=A!AA")),
            DkimReasonCode::MalformedSignature
        );
        assert_eq!(
            code(&format!("{GOOD}; d=other.com")),
            DkimReasonCode::MalformedSignature
        );
        assert_eq!(
            code(&format!("{GOOD}; l=ten")),
            DkimReasonCode::MalformedSignature
        );
    }

    #[test]
    fn an_identity_in_a_subdomain_is_accepted() {
        let signature = parse(&format!("{GOOD}; i=user@Mail.Example.com"), 1_000).unwrap();
        assert_eq!(signature.identity_domain, "mail.example.com");
    }

    #[test]
    fn expiry_is_judged_against_the_time_given() {
        assert!(parse(&format!("{GOOD}; t=500; x=2000"), 1_000).is_ok());
        assert_eq!(
            parse(&format!("{GOOD}; t=500; x=2000"), 2_001)
                .unwrap_err()
                .code,
            DkimReasonCode::SignatureExpired
        );
    }
}
