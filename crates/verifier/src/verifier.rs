//! The [`Verifier`]: runs every check on one message and assembles the [`Report`].
//!
//! SPF (MAIL FROM and HELO), DKIM, ARC and the DMARC policy lookup do not depend on one another,
//! so they run at the same time; DMARC alignment, the verdicts and the Authentication-Results
//! field are then worked out from their results without further DNS.

use std::net::IpAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::auth_results::authentication_results;
use crate::dkim::RawMessage;
use crate::dmarc::FromField;
use crate::dns::{Dns, DnsConfig, DnsSetupError};
use crate::report::{Report, SpfCheck, SpfIdentityKind, SpfReport, Verdicts};
use crate::verdict::{dkim_verdict, spf_verdict};
use crate::{arc, diagnosis, dkim, dmarc, spf};

/// The reason given for SPF when the client's address is unknown.
const NO_CLIENT_IP: &str = "no client IP address was given, so SPF cannot be evaluated";

/// How the verifier is set up.
#[derive(Clone, Debug)]
pub struct VerifierConfig {
    /// The authserv-id written in `Authentication-Results` (the tester's host name).
    pub authserv_id: String,
    pub dns: DnsConfig,
    /// The most time SPF evaluation of one identity may take (RFC 7208 §4.6.4 suggests 20 s).
    pub spf_time_limit: Duration,
    /// The most time all DKIM key lookups of one message may take together; ARC validation,
    /// which fetches keys the same way, gets the same limit.
    pub dkim_time_limit: Duration,
    /// The most time all DMARC queries of one message may take together: the tree walk from
    /// the From domain, the walks for the organizational domains of the SPF and DKIM domains,
    /// and the RFC 7489 comparison.
    pub dmarc_time_limit: Duration,
}

impl VerifierConfig {
    pub fn new(authserv_id: impl Into<String>, dns: DnsConfig) -> Self {
        VerifierConfig {
            authserv_id: authserv_id.into(),
            dns,
            spf_time_limit: Duration::from_secs(20),
            dkim_time_limit: Duration::from_secs(20),
            dmarc_time_limit: Duration::from_secs(20),
        }
    }
}

/// How a message arrived, and its bytes.
#[derive(Clone, Copy, Debug)]
pub struct MessageInput<'a> {
    /// The SMTP client's address; without it SPF is reported as not checked.
    pub client_ip: Option<IpAddr>,
    /// The HELO/EHLO name.
    pub helo: &'a str,
    /// The MAIL FROM address without angle brackets; empty for the null reverse-path `<>`.
    pub mail_from: &'a str,
    /// The message as received (header and body, CRLF line endings expected).
    pub message: &'a [u8],
    /// What the client declared about the body with MAIL FROM's `BODY=` parameter.
    pub body: BodyParameter,
}

/// MAIL FROM's `BODY=` parameter (RFC 6152): whether the client said the message may hold
/// 8-bit bytes. Only diagnosis reads it; it never changes a verdict.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum BodyParameter {
    /// Not known, for example for a message read from a file.
    #[default]
    Unknown,
    /// MAIL FROM had no `BODY=` parameter, which declares a 7-bit message.
    Absent,
    /// `BODY=7BIT`.
    SevenBit,
    /// `BODY=8BITMIME`: 8-bit bytes in the body are allowed.
    EightBitMime,
}

/// Runs all checks on a message. Cheap to clone; share one per process so the DNS cache is shared.
#[derive(Clone)]
pub struct Verifier {
    pub(crate) config: VerifierConfig,
    pub(crate) dns: Dns,
}

impl Verifier {
    pub fn new(config: VerifierConfig) -> Result<Verifier, DnsSetupError> {
        let dns = Dns::new(&config.dns)?;
        Ok(Verifier { config, dns })
    }

    pub fn dns(&self) -> &Dns {
        &self.dns
    }

    /// Verifies `input` as of now.
    pub async fn verify(&self, input: &MessageInput<'_>) -> Report {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        self.verify_at(input, now).await
    }

    /// Verifies `input` as of `now` (seconds since the epoch), which decides DKIM `x=` expiry.
    pub async fn verify_at(&self, input: &MessageInput<'_>, now: u64) -> Report {
        let dns = &self.dns;
        let config = &self.config;
        // Split into header fields once, for DKIM and the diagnosis.
        let message = RawMessage::parse(input.message);
        let ((spf_check, helo_check), (mut dkim, dkim_not_listed), arc, policy) = tokio::join!(
            self.check_spf(input),
            dkim::verify_listed_signatures(dns, &message, now, config.dkim_time_limit),
            arc::verify_chain(dns, input.message, config.dkim_time_limit),
            dmarc::discover(dns, FromField::read(input.message), config.dmarc_time_limit),
        );

        let dmarc = policy.evaluate(dns, &spf_check, &dkim).await;
        for (signature, aligned) in dkim.iter_mut().zip(&dmarc.dkim_aligned) {
            signature.aligned = *aligned;
        }
        let spf = SpfReport {
            check: spf_check,
            aligned: dmarc.spf_aligned,
            helo: helo_check,
        };
        let any_dkim_aligned = dkim.iter().any(|signature| signature.aligned);
        let verdicts = Verdicts {
            spf: spf_verdict(&spf, any_dkim_aligned),
            dkim: dkim_verdict(&dkim, spf.aligned),
        };
        let authentication_results =
            authentication_results(&config.authserv_id, &spf, &dkim, &dmarc.report, &arc);
        let mut report = Report {
            verdicts,
            spf,
            dkim,
            dkim_not_listed,
            dmarc: dmarc.report,
            arc,
            authentication_results,
            diagnosis: Vec::new(),
        };
        // Diagnosis comes last and only explains: the verdicts above are final.
        let upstream =
            diagnosis::gather(dns, input, &message, &report, config.spf_time_limit).await;
        report.diagnosis = diagnosis::diagnose(input, &message, &report, &upstream);
        report
    }

    /// SPF for the identity that counts (MAIL FROM, or HELO for the null reverse-path) and,
    /// separately, for the HELO name; without a client address neither can be evaluated.
    async fn check_spf(&self, input: &MessageInput<'_>) -> (SpfCheck, Option<SpfCheck>) {
        let time_limit = self.config.spf_time_limit;
        let Some(ip) = input.client_ip else {
            return (not_checked(input), None);
        };
        if input.mail_from.trim().is_empty() {
            // The null reverse-path: the HELO check is the one that counts, so it runs once.
            let helo =
                spf::check_mail_from(&self.dns, ip, input.mail_from, input.helo, time_limit).await;
            return (helo.clone(), Some(helo));
        }
        let (mail_from, helo) = tokio::join!(
            spf::check_mail_from(&self.dns, ip, input.mail_from, input.helo, time_limit),
            spf::check_helo(&self.dns, ip, input.helo, time_limit),
        );
        (mail_from, Some(helo))
    }
}

/// The SPF check reported when the client address is unknown, for the identity that would count.
fn not_checked(input: &MessageInput<'_>) -> SpfCheck {
    let mail_from = input.mail_from.trim();
    if mail_from.is_empty() {
        let helo = input.helo.trim();
        spf::not_checked(
            SpfIdentityKind::Helo,
            &format!("postmaster@{helo}"),
            helo,
            NO_CLIENT_IP,
        )
    } else {
        let domain = mail_from
            .rsplit_once('@')
            .map_or(mail_from, |(_, domain)| domain);
        spf::not_checked(SpfIdentityKind::Mailfrom, mail_from, domain, NO_CLIENT_IP)
    }
}
