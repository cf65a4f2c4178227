//! Verifying every `DKIM-Signature` of a message (RFC 6376 §6.1): read each signature, fetch
//! the keys (all lookups together under one time limit), then compare the body hash and the
//! signature over the signed header fields.

use std::cell::OnceCell;
use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::Verifier as _;
use sha2::{Digest, Sha256};

use super::canonical::{Canonicalization, canonical_body, canonical_header};
use super::key::{KeyProblem, KeyRecord, PublicKey, parse_key_record};
use super::message::{HeaderField, RawMessage};
use super::signature::{self, Signature};
use super::tags::TagList;
use super::{Invalid, Outcome};
use crate::dns::{Dns, LookupError, MAX_TXT_RECORD_BYTES};
use crate::report::{
    DkimReasonCode, DkimResult, DkimSignatureReport, MAX_LISTED_SIGNATURES,
    MAX_LISTED_SIGNED_HEADERS,
};

/// The most signatures verified per message. Real mail carries one to three; each one costs a
/// key lookup, a body hash and a public-key operation, so without a limit a message of
/// hundreds of copies would cost hundreds of times the work. Those past it are still reported,
/// as `invalid` and unverified.
pub const MAX_VERIFIED_SIGNATURES: usize = 20;

/// Every DKIM-Signature header field of `message`, in header order, malformed ones included,
/// up to [`MAX_LISTED_SIGNATURES`] (see [`verify_listed_signatures`] for the count of the rest).
/// `now` is seconds since the epoch (decides x= expiry). `aligned` is left false: the caller computes alignment.
/// All key lookups together are bounded by `time_limit` (then temperror, reason says so).
/// Only the first [`MAX_VERIFIED_SIGNATURES`] are verified.
pub async fn verify_signatures(
    dns: &Dns,
    message: &[u8],
    now: u64,
    time_limit: Duration,
) -> Vec<DkimSignatureReport> {
    verify_listed_signatures(dns, &RawMessage::parse(message), now, time_limit)
        .await
        .0
}

/// As [`verify_signatures`], for a message already split into its fields (the verifier
/// splits it once for DKIM and the diagnosis), with the number of signature fields past
/// [`MAX_LISTED_SIGNATURES`], which are neither verified nor described.
pub async fn verify_listed_signatures(
    dns: &Dns,
    message: &RawMessage<'_>,
    now: u64,
    time_limit: Duration,
) -> (Vec<DkimSignatureReport>, u32) {
    let fields: Vec<&HeaderField> = message
        .fields()
        .iter()
        .filter(|field| message.is_named(field, "DKIM-Signature"))
        .collect();
    let total = fields.len();
    let not_listed = u32::try_from(total.saturating_sub(MAX_LISTED_SIGNATURES)).unwrap_or(u32::MAX);
    let checks: Vec<Check> = fields
        .into_iter()
        .take(MAX_LISTED_SIGNATURES)
        .enumerate()
        .map(|(index, field)| {
            if index < MAX_VERIFIED_SIGNATURES {
                Check::read(message, field, now)
            } else {
                Check::skip(message, field, total)
            }
        })
        .collect();
    let key_names: BTreeSet<String> = checks
        .iter()
        .filter_map(|check| check.signature.as_ref().ok().map(Signature::key_name))
        .collect();
    let keys = fetch_keys(dns, key_names, time_limit).await;
    let bodies = CanonicalBodies::new(message);
    let reports = checks
        .into_iter()
        .map(|check| check.finish(message, &bodies, &keys))
        .collect();
    (reports, not_listed)
}

/// The body canonicalized each way, computed at most once however many signatures need it.
struct CanonicalBodies<'m> {
    body: &'m [u8],
    simple: OnceCell<Vec<u8>>,
    relaxed: OnceCell<Vec<u8>>,
}

impl<'m> CanonicalBodies<'m> {
    fn new(message: &'m RawMessage<'_>) -> Self {
        CanonicalBodies {
            body: message.body(),
            simple: OnceCell::new(),
            relaxed: OnceCell::new(),
        }
    }

    fn get(&self, canonicalization: Canonicalization) -> &[u8] {
        let cell = match canonicalization {
            Canonicalization::Simple => &self.simple,
            Canonicalization::Relaxed => &self.relaxed,
        };
        cell.get_or_init(|| canonical_body(self.body, canonicalization))
    }
}

/// Why no key record could be had.
enum KeyLookupFailure {
    Dns(LookupError),
    OutOfTime(Duration),
}

type KeyLookups = HashMap<String, Result<Vec<Vec<u8>>, KeyLookupFailure>>;

/// Looks up each key name once, all at the same time, giving up on those unanswered when
/// `time_limit` has passed.
async fn fetch_keys(dns: &Dns, names: BTreeSet<String>, time_limit: Duration) -> KeyLookups {
    let deadline = tokio::time::Instant::now() + time_limit;
    let lookups = names.into_iter().map(|name| async move {
        let answer = match tokio::time::timeout_at(deadline, dns.txt(&name)).await {
            Ok(answer) => answer.map_err(KeyLookupFailure::Dns),
            Err(_) => Err(KeyLookupFailure::OutOfTime(time_limit)),
        };
        (name, answer)
    });
    futures::future::join_all(lookups)
        .await
        .into_iter()
        .collect()
}

/// One signature on its way through verification.
struct Check {
    field: HeaderField,
    report: DkimSignatureReport,
    signature: Result<Signature, Invalid>,
}

impl Check {
    /// Reads the header field and runs the checks that need neither key nor body.
    fn read(message: &RawMessage<'_>, field: &HeaderField, now: u64) -> Check {
        let raw_value = message.field_value(field);
        let header_value = String::from_utf8_lossy(raw_value).into_owned();
        let report = describe(&header_value);
        let signature = match std::str::from_utf8(raw_value) {
            Ok(value) => signature::parse(value, now),
            Err(_) => Err(Invalid::new(
                DkimReasonCode::MalformedSignature,
                "the header field holds bytes that are not UTF-8; DKIM tags are ASCII text",
            )),
        };
        Check {
            field: field.clone(),
            report,
            signature,
        }
    }

    /// Reports a signature past [`MAX_VERIFIED_SIGNATURES`] without verifying it.
    fn skip(message: &RawMessage<'_>, field: &HeaderField, total: usize) -> Check {
        let header_value = String::from_utf8_lossy(message.field_value(field)).into_owned();
        Check {
            field: field.clone(),
            report: describe(&header_value),
            signature: Err(Invalid::new(
                DkimReasonCode::TooManySignatures,
                format!(
                    "not verified: the message carries {total} DKIM-Signature fields and only the first \
                     {MAX_VERIFIED_SIGNATURES} are verified; sign once per signing domain"
                ),
            )),
        }
    }

    fn finish(
        self,
        message: &RawMessage<'_>,
        bodies: &CanonicalBodies<'_>,
        keys: &KeyLookups,
    ) -> DkimSignatureReport {
        let mut report = self.report;
        let outcome = match &self.signature {
            Err(invalid) => invalid.clone().into(),
            Ok(signature) => verify(message, bodies, &self.field, signature, keys, &mut report),
        };
        report.result = outcome.result;
        report.reason_code = outcome.code;
        report.reason = outcome.reason;
        report
    }
}

/// The report fields that come straight from the tags, read leniently so that even a
/// malformed signature shows what it claims.
fn describe(header_value: &str) -> DkimSignatureReport {
    let tags = TagList::parse_lenient(header_value);
    let text = |name: &str| tags.value(name).map(super::tags::without_fws);
    let number = |name: &str| text(name).and_then(|v| v.parse::<u64>().ok());
    let body_length = number("l");
    let mut warnings = Vec::new();
    if let Some(length) = body_length {
        warnings.push(format!(
            "l={length}: the signature covers only the first {length} octets of the body, so anyone can append \
             content without breaking it; sign the whole body (drop l=)"
        ));
    }
    let mut signed_headers = signature::signed_header_names(&tags);
    let signed_headers_not_listed = u32::try_from(
        signed_headers
            .len()
            .saturating_sub(MAX_LISTED_SIGNED_HEADERS),
    )
    .unwrap_or(u32::MAX);
    signed_headers.truncate(MAX_LISTED_SIGNED_HEADERS);
    DkimSignatureReport {
        domain: text("d").unwrap_or_default().to_ascii_lowercase(),
        selector: text("s").unwrap_or_default(),
        algorithm: text("a").unwrap_or_default(),
        canonicalization: text("c").unwrap_or_else(|| "simple/simple".to_string()),
        identity: text("i"),
        signed_headers,
        signed_headers_not_listed,
        body_length,
        timestamp: number("t"),
        expiration: number("x"),
        key_type: None,
        key_bits: None,
        result: DkimResult::Invalid,
        reason: String::new(),
        reason_code: DkimReasonCode::MalformedSignature,
        aligned: false,
        warnings,
        header_value: header_value.to_string(),
    }
}

/// RFC 6376 §6.1.2 and §6.1.3 for a signature that passed the §6.1.1 checks.
fn verify(
    message: &RawMessage<'_>,
    bodies: &CanonicalBodies<'_>,
    field: &HeaderField,
    signature: &Signature,
    keys: &KeyLookups,
    report: &mut DkimSignatureReport,
) -> Outcome {
    let name = signature.key_name();
    let record = match key_record(&name, signature, keys, report) {
        Ok(record) => record,
        Err(outcome) => return outcome,
    };
    if record.testing {
        report.warnings.push(format!(
            "the key record at {name} has t=y (testing): receivers may treat this message as unsigned; \
             remove t=y once DKIM works"
        ));
    }
    if record.strict_identity && signature.identity_domain != signature.domain {
        return Invalid::new(
            DkimReasonCode::IdentityNotInDomain,
            format!(
                "the key at {name} has t=s, so i= must be in {} itself, but it is in {}",
                signature.domain, signature.identity_domain
            ),
        )
        .into();
    }

    if let Err(outcome) = check_body_hash(
        bodies.get(signature.body_canonicalization),
        signature,
        report,
    ) {
        return outcome;
    }

    let header_data = signed_header_data(message, field, signature);
    let verified = match &record.key {
        PublicKey::Rsa(key) => verify_rsa_sha256(key, &header_data, &signature.signature),
        PublicKey::Ed25519(key) => match ed25519_dalek::Signature::from_slice(&signature.signature)
        {
            // RFC 8463 §3: Ed25519 signs the SHA-256 digest of the header data.
            Ok(ed_signature) => key
                .verify(&Sha256::digest(&header_data), &ed_signature)
                .is_ok(),
            Err(_) => {
                return Outcome::fail(
                    DkimReasonCode::SignatureMismatch,
                    format!(
                        "b= is {} bytes; an ed25519 signature is 64 bytes",
                        signature.signature.len()
                    ),
                );
            }
        },
    };
    if verified {
        Outcome {
            result: DkimResult::Pass,
            code: DkimReasonCode::Verified,
            reason: format!(
                "verified: the body hash and the signature match the {}-bit {} key at {name}",
                record.bits,
                signature.algorithm.key_type()
            ),
        }
    } else {
        Outcome::fail(
            DkimReasonCode::SignatureMismatch,
            format!(
                "the signature did not verify with the key at {name}: a signed header field ({}) was changed after \
                 signing, or the message was signed with a different private key than the one published",
                signature.signed_headers.join(", ")
            ),
        )
    }
}

/// Finds and parses the key record, filling in the key type and size as they become known.
fn key_record(
    name: &str,
    signature: &Signature,
    keys: &KeyLookups,
    report: &mut DkimSignatureReport,
) -> Result<KeyRecord, Outcome> {
    let records = match keys.get(name) {
        Some(Ok(records)) => records,
        Some(Err(KeyLookupFailure::Dns(error))) => return Err(lookup_failure(name, error)),
        Some(Err(KeyLookupFailure::OutOfTime(limit))) => {
            return Err(Outcome {
                result: DkimResult::Temperror,
                code: DkimReasonCode::DnsFailure,
                reason: format!(
                    "the key lookup for {name} did not finish within the {} ms allowed for DKIM key lookups; \
                     try again later",
                    limit.as_millis()
                ),
            });
        }
        None => unreachable!("every parsed signature's key name is looked up"),
    };
    if records.len() > 1 {
        report.warnings.push(format!(
            "{} TXT records are published at {name}; publish exactly one key record per selector",
            records.len()
        ));
    }
    let mut first_problem: Option<KeyProblem> = None;
    for record in records {
        match parse_key_record(record, name, signature.algorithm) {
            Ok(record) => {
                report.key_type = Some(signature.algorithm.key_type().to_string());
                report.key_bits = Some(record.bits);
                return Ok(record);
            }
            Err(problem) => {
                first_problem.get_or_insert(problem);
            }
        }
    }
    let problem = first_problem.expect("a successful lookup has at least one record");
    report.key_type = problem.key_type;
    report.key_bits = problem.key_bits;
    Err(problem.invalid.into())
}

fn lookup_failure(name: &str, error: &LookupError) -> Outcome {
    match error {
        LookupError::Temporary(_, detail) => Outcome {
            result: DkimResult::Temperror,
            code: DkimReasonCode::DnsFailure,
            reason: format!("the key lookup for {name} failed ({detail}); try again later"),
        },
        LookupError::NxDomain(_) => key_not_found(format!(
            "no key record: {name} does not exist (NXDOMAIN); publish the public key there or fix s= and d="
        )),
        LookupError::NoRecords(..) => key_not_found(format!(
            "no key record: {name} has no TXT record; publish the public key there or fix s= and d="
        )),
        LookupError::InvalidName(_) => key_not_found(format!(
            "no key record can exist at {name}: it is not a valid domain name; fix s= and d="
        )),
        LookupError::TooLarge(_, length) => Invalid::new(
            DkimReasonCode::KeyMalformed,
            format!(
                "the key record at {name} is {length} bytes long; TXT records over {MAX_TXT_RECORD_BYTES} bytes \
                 are not read (a 4096-bit key record is under 1 KiB)"
            ),
        )
        .into(),
    }
}

fn key_not_found(reason: String) -> Outcome {
    Invalid::new(DkimReasonCode::KeyNotFound, reason).into()
}

/// RFC 6376 §6.1.3 steps 1 to 3: hash the canonicalized body (up to `l=`) and compare with `bh=`.
fn check_body_hash(
    canonical: &[u8],
    signature: &Signature,
    report: &mut DkimSignatureReport,
) -> Result<(), Outcome> {
    let signed = match signature.body_length {
        None => canonical,
        Some(length) if length > canonical.len() as u64 => {
            return Err(Outcome::fail(
                DkimReasonCode::BodyHashMismatch,
                format!(
                    "body hash did not verify: l={length} but the {} body is only {} octets, so the body was \
                     shortened after signing",
                    signature.body_canonicalization,
                    canonical.len()
                ),
            ));
        }
        Some(length) => {
            let unsigned = canonical.len() as u64 - length;
            if unsigned > 0 {
                report.warnings.push(format!(
                    "{unsigned} octets of the {} body come after the l={length} limit and are not covered by the signature",
                    signature.body_canonicalization
                ));
            }
            &canonical[..length as usize]
        }
    };
    let computed = Sha256::digest(signed);
    if computed.as_slice() == signature.body_hash.as_slice() {
        return Ok(());
    }
    Err(Outcome::fail(
        DkimReasonCode::BodyHashMismatch,
        format!(
            "body hash did not verify: the body was changed after signing (bh={} but the {} body hashes to {})",
            signature.body_hash_text,
            signature.body_canonicalization,
            STANDARD.encode(computed)
        ),
    ))
}

/// The data the signature covers (RFC 6376 §3.7, §5.4.2): each field named in `h=`, taken
/// from the bottom up for repeated names (a name listed more often than present adds
/// nothing), then the signature's own field with the `b=` value removed and no final CRLF.
fn signed_header_data(
    message: &RawMessage<'_>,
    signature_field: &HeaderField,
    signature: &Signature,
) -> Vec<u8> {
    let canonicalization = signature.header_canonicalization;
    let fields = message.fields();
    // Each name's instances in header order, taken from the end as `h=` names them, so the
    // work is linear in `h=` plus the header however often a name is listed. The signature's
    // own field is never one of the fields it signs.
    let mut unused: HashMap<Vec<u8>, Vec<usize>> = HashMap::new();
    for (index, field) in fields.iter().enumerate() {
        if field != signature_field {
            let name = message.field_name(field).to_ascii_lowercase();
            unused.entry(name).or_default().push(index);
        }
    }
    let mut data = Vec::new();
    for name in &signature.signed_headers {
        let instance = unused
            .get_mut(name.to_ascii_lowercase().as_bytes())
            .and_then(Vec::pop);
        if let Some(index) = instance {
            canonical_header(
                message.field_bytes(&fields[index]),
                canonicalization,
                &mut data,
            );
        }
    }
    let field_bytes = message.field_bytes(signature_field);
    let value_start = signature_field.colon + 1 - signature_field.span.start;
    let span = &signature.signature_value_span;
    let mut without_signature = field_bytes[..value_start + span.start].to_vec();
    without_signature.extend_from_slice(&field_bytes[value_start + span.end..]);
    canonical_header(&without_signature, canonicalization, &mut data);
    data.truncate(data.len() - 2);
    data
}

/// RSASSA-PKCS1-v1_5 with SHA-256 over `data`, by ring's constant-time assembly, several
/// times faster than the pure-Rust big-number code. It takes moduli of 1024 to 8192 bits, the
/// sizes key records are accepted with.
fn verify_rsa_sha256(key: &rsa::RsaPublicKey, data: &[u8], signature: &[u8]) -> bool {
    use rsa::traits::PublicKeyParts as _;
    let components = ring::signature::RsaPublicKeyComponents {
        n: key.n().to_bytes_be(),
        e: key.e().to_bytes_be(),
    };
    components
        .verify(
            &ring::signature::RSA_PKCS1_1024_8192_SHA256_FOR_LEGACY_USE_ONLY,
            data,
            signature,
        )
        .is_ok()
}
