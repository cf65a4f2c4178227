//! The [`Verifier`]: runs every check on one message and assembles the [`Report`].

use std::net::IpAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::dns::{Dns, DnsConfig, DnsSetupError};
use crate::report::Report;

/// How the verifier is set up.
#[derive(Clone, Debug)]
pub struct VerifierConfig {
    /// The authserv-id written in `Authentication-Results` (the tester's host name).
    pub authserv_id: String,
    pub dns: DnsConfig,
    /// The most time SPF evaluation of one identity may take (RFC 7208 §4.6.4 suggests 20 s).
    pub spf_time_limit: Duration,
    /// The most time all DKIM key lookups of one message may take together.
    pub dkim_time_limit: Duration,
}

impl VerifierConfig {
    pub fn new(authserv_id: impl Into<String>, dns: DnsConfig) -> Self {
        VerifierConfig {
            authserv_id: authserv_id.into(),
            dns,
            spf_time_limit: Duration::from_secs(20),
            dkim_time_limit: Duration::from_secs(20),
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

    pub fn config(&self) -> &VerifierConfig {
        &self.config
    }

    /// Verifies `input` as of now.
    pub async fn verify(&self, input: &MessageInput<'_>) -> Report {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        self.verify_at(input, now).await
    }

    /// Verifies `input` as of `now` (seconds since the epoch), which decides DKIM `x=` expiry.
    pub async fn verify_at(&self, input: &MessageInput<'_>, now: u64) -> Report {
        let _ = (input, now);
        unimplemented!("assembled in the verifier issue")
    }
}
