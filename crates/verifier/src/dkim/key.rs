//! DKIM key records (RFC 6376 §3.6.1, RFC 8463 §4) and the public keys they publish.
//!
//! RSA keys are accepted as SubjectPublicKeyInfo (what the RFC specifies) or as a bare PKCS#1
//! RSAPublicKey (what some publishers put there and receivers accept). Ed25519 keys are the raw
//! 32 bytes.

use base64::Engine;
use rsa::BigUint;
use rsa::pkcs8::SubjectPublicKeyInfoRef;
use rsa::traits::PublicKeyParts;

use super::signature::Algorithm;
use super::tags::{TagList, TagListError, without_fws};
use super::{Invalid, LENIENT_BASE64};
use crate::report::DkimReasonCode;

/// RSA keys below this size are refused (RFC 8301 §3.2).
pub const MIN_RSA_BITS: usize = 1024;
/// The largest RSA key accepted. RFC 8301 §3.2 asks verifiers to handle keys up to 4,096
/// bits; 8,192 is the most the constant-time verifier (ring) takes, and larger keys would only
/// make each signature cost more CPU. The size is read from the key's length, before any
/// arithmetic.
pub const MAX_RSA_BITS: usize = 8192;

/// A public key ready to verify with.
#[derive(Clone, Debug)]
pub enum PublicKey {
    Rsa(rsa::RsaPublicKey),
    Ed25519(ed25519_dalek::VerifyingKey),
}

/// A parsed key record.
#[derive(Clone, Debug)]
pub struct KeyRecord {
    pub key: PublicKey,
    /// RSA modulus size in bits, or 256 for ed25519.
    pub bits: u32,
    /// `t=y`: the domain is testing DKIM.
    pub testing: bool,
    /// `t=s`: `i=` must be in `d=` itself, not a subdomain.
    pub strict_identity: bool,
}

/// What went wrong reading a key record, and what was learnt before it went wrong.
#[derive(Clone, Debug)]
pub struct KeyProblem {
    pub invalid: Invalid,
    pub key_type: Option<String>,
    pub key_bits: Option<u32>,
}

/// Parses the TXT record found at `name` for a signature made with `algorithm`.
pub fn parse_key_record(
    record: &[u8],
    name: &str,
    algorithm: Algorithm,
) -> Result<KeyRecord, KeyProblem> {
    let problem = |code: DkimReasonCode,
                   reason: String,
                   key_type: &Option<String>,
                   key_bits: Option<u32>| KeyProblem {
        invalid: Invalid::new(code, reason),
        key_type: key_type.clone(),
        key_bits,
    };
    let malformed = |reason: String, key_type: &Option<String>| {
        problem(DkimReasonCode::KeyMalformed, reason, key_type, None)
    };

    let text = std::str::from_utf8(record).map_err(|_| {
        malformed(
            format!("the key record at {name} is not text (it holds bytes that are not UTF-8)"),
            &None,
        )
    })?;
    let tags = TagList::parse(text).map_err(|error| {
        let detail = match error {
            TagListError::Syntax(detail) => detail,
            other => other.to_string(),
        };
        malformed(
            format!("the key record at {name} cannot be parsed: {detail}"),
            &None,
        )
    })?;

    if let Some(version) = tags.value("v")
        && version != "DKIM1"
    {
        return Err(malformed(
            format!("the key record at {name} has v={version}; a DKIM key record must say v=DKIM1"),
            &None,
        ));
    }
    let declared_type = tags.value("k").unwrap_or("rsa");
    if !matches!(declared_type, "rsa" | "ed25519") {
        return Err(malformed(
            format!(
                "the key record at {name} has k={declared_type}, which is not a known key type (rsa, ed25519)"
            ),
            &None,
        ));
    }
    let key_type = Some(declared_type.to_string());
    if let Some(hashes) = tags.value("h")
        && !without_fws(hashes).split(':').any(|h| h == "sha256")
    {
        return Err(malformed(
            format!(
                "the key record at {name} allows only h={hashes}, which excludes sha256 used by this signature"
            ),
            &key_type,
        ));
    }
    if let Some(services) = tags.value("s")
        && !without_fws(services)
            .split(':')
            .any(|s| s == "*" || s == "email")
    {
        return Err(malformed(
            format!("the key record at {name} is for service s={services}, not email"),
            &key_type,
        ));
    }
    let Some(encoded) = tags.value("p").map(without_fws) else {
        return Err(malformed(
            format!("the key record at {name} has no p= (public key) tag"),
            &key_type,
        ));
    };
    if encoded.is_empty() {
        return Err(problem(
            DkimReasonCode::KeyRevoked,
            format!(
                "the key at {name} is revoked (p= is empty): sign with a key that is published"
            ),
            &key_type,
            None,
        ));
    }
    if declared_type != algorithm.key_type() {
        return Err(problem(
            DkimReasonCode::KeyAlgorithmMismatch,
            format!(
                "the key at {name} is k={declared_type} but the signature uses a={}, which needs a k={} key",
                algorithm.name(),
                algorithm.key_type()
            ),
            &key_type,
            None,
        ));
    }
    let der = LENIENT_BASE64.decode(&encoded).map_err(|e| {
        malformed(
            format!("p= of the key record at {name} is not valid base64 ({e})"),
            &key_type,
        )
    })?;

    let (key, bits) = match algorithm {
        Algorithm::RsaSha256 => {
            let key = rsa_public_key(&der).map_err(|error| match error {
                RsaKeyError::TooLong(bits) => problem(
                    DkimReasonCode::KeyTooLong,
                    format!(
                        "the RSA key at {name} is {bits} bits; keys over {MAX_RSA_BITS} bits are refused \
                         (RFC 8301 asks verifiers for up to 4096), publish a 2048-bit key"
                    ),
                    &key_type,
                    Some(u32::try_from(bits).unwrap_or(u32::MAX)),
                ),
                RsaKeyError::Malformed(detail) => malformed(
                    format!("p= of the key record at {name} is not an RSA public key: {detail}"),
                    &key_type,
                ),
            })?;
            let bits = key.n().bits();
            if bits < MIN_RSA_BITS {
                return Err(problem(
                    DkimReasonCode::KeyTooShort,
                    format!(
                        "the RSA key at {name} is {bits} bits; keys under {MIN_RSA_BITS} bits are refused (RFC 8301), \
                         publish a 2048-bit key"
                    ),
                    &key_type,
                    Some(bits as u32),
                ));
            }
            (PublicKey::Rsa(key), bits as u32)
        }
        Algorithm::Ed25519Sha256 => {
            let bytes: [u8; 32] = der.as_slice().try_into().map_err(|_| {
                malformed(
                    format!(
                        "p= of the key record at {name} is {} bytes; an ed25519 key is 32 bytes",
                        der.len()
                    ),
                    &key_type,
                )
            })?;
            let key = ed25519_dalek::VerifyingKey::from_bytes(&bytes).map_err(|_| {
                malformed(
                    format!("p= of the key record at {name} is not a valid ed25519 public key"),
                    &key_type,
                )
            })?;
            (PublicKey::Ed25519(key), 256)
        }
    };
    let flags: Vec<String> = tags
        .value("t")
        .map(|t| without_fws(t).split(':').map(str::to_string).collect())
        .unwrap_or_default();
    Ok(KeyRecord {
        key,
        bits,
        testing: flags.iter().any(|f| f == "y"),
        strict_identity: flags.iter().any(|f| f == "s"),
    })
}

/// Why [`rsa_public_key`] gave no key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum RsaKeyError {
    /// The modulus has this many bits, more than [`MAX_RSA_BITS`].
    TooLong(usize),
    /// Not an RSA public key; the detail says what is wrong.
    Malformed(String),
}

/// An RSA public key from SubjectPublicKeyInfo DER or bare PKCS#1 RSAPublicKey DER, refused
/// without arithmetic when its modulus is over [`MAX_RSA_BITS`].
pub(crate) fn rsa_public_key(der: &[u8]) -> Result<rsa::RsaPublicKey, RsaKeyError> {
    let malformed = |detail: &str| RsaKeyError::Malformed(detail.to_string());
    let pkcs1 = match SubjectPublicKeyInfoRef::try_from(der) {
        Ok(info) => {
            if info.algorithm.oid != rsa::pkcs1::ALGORITHM_OID {
                return Err(RsaKeyError::Malformed(format!(
                    "its SubjectPublicKeyInfo is for algorithm {}, not RSA",
                    info.algorithm.oid
                )));
            }
            let inner = info
                .subject_public_key
                .as_bytes()
                .ok_or_else(|| malformed("its key bit string is not whole bytes"))?;
            rsa::pkcs1::RsaPublicKey::try_from(inner)
                .map_err(|e| RsaKeyError::Malformed(e.to_string()))?
        }
        Err(_) => rsa::pkcs1::RsaPublicKey::try_from(der).map_err(|_| {
            malformed("it is neither SubjectPublicKeyInfo nor PKCS#1 RSAPublicKey DER")
        })?,
    };
    let bits = bit_length(pkcs1.modulus.as_bytes());
    if bits > MAX_RSA_BITS {
        return Err(RsaKeyError::TooLong(bits));
    }
    let modulus = BigUint::from_bytes_be(pkcs1.modulus.as_bytes());
    let exponent = BigUint::from_bytes_be(pkcs1.public_exponent.as_bytes());
    rsa::RsaPublicKey::new_with_max_size(modulus, exponent, MAX_RSA_BITS)
        .map_err(|e| RsaKeyError::Malformed(e.to_string()))
}

/// The number of significant bits in a big-endian unsigned integer.
fn bit_length(big_endian: &[u8]) -> usize {
    let significant = match big_endian.iter().position(|&b| b != 0) {
        Some(first) => &big_endian[first..],
        None => return 0,
    };
    significant.len() * 8 - significant[0].leading_zeros() as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bit_length_ignores_leading_zeros() {
        assert_eq!(bit_length(&[]), 0);
        assert_eq!(bit_length(&[0, 0]), 0);
        assert_eq!(bit_length(&[0, 1]), 1);
        assert_eq!(bit_length(&[0x80, 0]), 16);
        assert_eq!(bit_length(&[0, 0x7f, 0xff]), 15);
    }
}
