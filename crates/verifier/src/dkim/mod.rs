//! DKIM verification (RFC 6376, RFC 8463 ed25519-sha256, RFC 8301 algorithm and key-size
//! requirements), done here rather than by a library so that every signature gets a precise
//! result and reason: malformed signatures are reported rather than dropped, a changed body is
//! a `fail`, and relaxed body canonicalization follows the RFC exactly.
//!
//! - `tags`: the tag=value list syntax of signatures and key records.
//! - `message`: header fields as received and the body, from raw bytes.
//! - `canonical`: simple and relaxed canonicalization.
//! - `signature`: one `DKIM-Signature` field and the checks that need no key.
//! - `key`: key records and public keys.
//! - `verify`: fetching keys and verifying hashes and signatures.

use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};

use crate::report::{DkimReasonCode, DkimResult};

pub(crate) mod canonical;
mod key;
pub(crate) mod message;
mod signature;
pub(crate) mod tags;

/// Shared with ARC, whose signatures use the same key records.
pub(crate) use key::{MIN_RSA_BITS, rsa_public_key};
mod verify;

pub use message::RawMessage;
pub use verify::{MAX_VERIFIED_SIGNATURES, verify_listed_signatures, verify_signatures};

/// Base64 as DKIM writers produce it: standard alphabet, padding optional.
pub(crate) const LENIENT_BASE64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Why a signature cannot be verified at all (result `invalid`).
#[derive(Clone, Debug, PartialEq, Eq)]
struct Invalid {
    code: DkimReasonCode,
    /// A sentence naming the specifics.
    reason: String,
}

impl Invalid {
    fn new(code: DkimReasonCode, reason: impl Into<String>) -> Invalid {
        Invalid {
            code,
            reason: reason.into(),
        }
    }
}

/// The result of one signature with its reason.
#[derive(Clone, Debug)]
struct Outcome {
    result: DkimResult,
    code: DkimReasonCode,
    reason: String,
}

impl Outcome {
    fn fail(code: DkimReasonCode, reason: String) -> Outcome {
        Outcome {
            result: DkimResult::Fail,
            code,
            reason,
        }
    }
}

impl From<Invalid> for Outcome {
    fn from(invalid: Invalid) -> Outcome {
        Outcome {
            result: DkimResult::Invalid,
            code: invalid.code,
            reason: invalid.reason,
        }
    }
}
