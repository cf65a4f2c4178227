//! The two tester verdicts: one line each for the `spf@` and `dkim@` mailboxes.
//!
//! `|OK|` means the identity passed and aligns with the From domain, `|~OK|` that it passed and
//! the message still passes DMARC through the other identity, `!! ... !!` that something needs
//! fixing. The strings are part of the stable report and users filter mail on them.

use crate::report::{DkimResult, DkimSignatureReport, SpfReport, SpfResult};

/// The verdict for the `spf@` mailbox.
///
/// `any_dkim_aligned`: some DKIM signature passed with a `d=` aligned with the From domain.
pub fn spf_verdict(spf: &SpfReport, any_dkim_aligned: bool) -> String {
    let failure = match spf.check.result {
        SpfResult::Pass => None,
        SpfResult::Fail => Some("spf-fail"),
        SpfResult::Softfail => Some("spf-softfail"),
        SpfResult::Neutral => Some("spf-neutral"),
        SpfResult::None => Some("spf-none"),
        SpfResult::Permerror => Some("spf-permerror"),
        SpfResult::Temperror => Some("spf-temperror"),
    };
    match failure {
        Some(name) => format!("!! {name} !!"),
        None if spf.aligned => "|OK| spf-pass".into(),
        None if any_dkim_aligned => "|~OK| spf-pass".into(),
        None => "!! spf-diff !!".into(),
    }
}

/// The verdict for the `dkim@` mailbox.
///
/// `spf_aligned`: SPF passed for a domain aligned with the From domain.
pub fn dkim_verdict(signatures: &[DkimSignatureReport], spf_aligned: bool) -> String {
    if signatures.is_empty() {
        return "!! dkim-none !!".into();
    }
    let has = |result: DkimResult| {
        signatures
            .iter()
            .any(|signature| signature.result == result)
    };
    let verdict = if has(DkimResult::Pass) {
        if signatures
            .iter()
            .any(|signature| signature.result == DkimResult::Pass && signature.aligned)
        {
            "|OK| dkim-pass"
        } else if spf_aligned {
            "|~OK| dkim-pass"
        } else {
            "!! dkim-diff !!"
        }
    } else if has(DkimResult::Fail) {
        "!! dkim-fail !!"
    } else if has(DkimResult::Invalid) {
        "!! dkim-invalid !!"
    } else {
        "!! dkim-temperror !!"
    };
    verdict.into()
}
