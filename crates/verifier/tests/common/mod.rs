//! Shared by the verifier's integration tests: signing keys, a signer, and a loopback DNS
//! server pre-filled with the keys' records.
//!
//! The keys in `tests/data/` were made with `openssl genpkey` for these tests only. Each key's
//! public half is published under its own selector at `<selector>._domainkey.<domain>`.
#![allow(dead_code)]

use std::time::Duration;

use authcheck_testdns::TestDns;
use authcheck_verifier::{DnsConfig, MessageInput, Report, Verifier, VerifierConfig};
use mail_auth::common::crypto::{Ed25519Key, RsaKey, Sha256};
use mail_auth::common::headers::HeaderWriter;
use mail_auth::dkim::{Canonicalization, DkimSigner};
use rustls_pki_types::PrivateKeyDer;
use rustls_pki_types::pem::PemObject;

/// A test signing key and where its public half is published.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TestKey {
    Rsa2048,
    Rsa1024,
    Rsa512,
    Ed25519,
}

impl TestKey {
    pub const ALL: [TestKey; 4] = [
        TestKey::Rsa2048,
        TestKey::Rsa1024,
        TestKey::Rsa512,
        TestKey::Ed25519,
    ];

    /// The selector this key is published under.
    pub fn selector(self) -> &'static str {
        match self {
            TestKey::Rsa2048 => "rsa2048",
            TestKey::Rsa1024 => "rsa1024",
            TestKey::Rsa512 => "rsa512",
            TestKey::Ed25519 => "ed25519",
        }
    }

    fn file_stem(self) -> &'static str {
        self.selector()
    }

    fn read(self, suffix: &str) -> Vec<u8> {
        let path = format!(
            "{}/tests/data/{}{suffix}",
            env!("CARGO_MANIFEST_DIR"),
            self.file_stem()
        );
        std::fs::read(&path).unwrap_or_else(|e| panic!("read {path}: {e}"))
    }

    /// The DKIM key record (TXT value) publishing this key.
    pub fn dns_record(self) -> String {
        let public = String::from_utf8(self.read(".pub.b64")).unwrap();
        let k = if self == TestKey::Ed25519 {
            "ed25519"
        } else {
            "rsa"
        };
        format!("v=DKIM1; k={k}; p={}", public.trim())
    }
}

/// How to sign.
#[derive(Clone, Debug)]
pub struct SignOptions {
    pub domain: String,
    pub key: TestKey,
    pub selector: Option<String>,
    pub headers: Vec<String>,
    pub relaxed: bool,
    pub expiration_secs: Option<u64>,
}

impl SignOptions {
    pub fn new(domain: &str, key: TestKey) -> Self {
        SignOptions {
            domain: domain.into(),
            key,
            selector: None,
            headers: ["From", "To", "Subject", "Date", "Message-ID"]
                .map(String::from)
                .to_vec(),
            relaxed: true,
            expiration_secs: None,
        }
    }
}

/// Returns `message` with a DKIM-Signature header field prepended.
pub fn sign(message: &[u8], options: &SignOptions) -> Vec<u8> {
    let selector = options
        .selector
        .clone()
        .unwrap_or_else(|| options.key.selector().into());
    let canon = if options.relaxed {
        Canonicalization::Relaxed
    } else {
        Canonicalization::Simple
    };
    let header = match options.key {
        TestKey::Ed25519 => {
            let der = PrivateKeyDer::from_pem_slice(&options.key.read(".pem")).unwrap();
            let key = Ed25519Key::from_pkcs8_der(der.secret_der()).unwrap();
            let mut signer = DkimSigner::from_key(key)
                .domain(&options.domain)
                .selector(selector)
                .headers(options.headers.clone())
                .header_canonicalization(canon)
                .body_canonicalization(canon);
            if let Some(x) = options.expiration_secs {
                signer = signer.expiration(x);
            }
            signer.sign(message).unwrap().to_header()
        }
        _ => {
            let der = PrivateKeyDer::from_pem_slice(&options.key.read(".pem")).unwrap();
            let key = RsaKey::<Sha256>::from_key_der(der).unwrap();
            let mut signer = DkimSigner::from_key(key)
                .domain(&options.domain)
                .selector(selector)
                .headers(options.headers.clone())
                .header_canonicalization(canon)
                .body_canonicalization(canon);
            if let Some(x) = options.expiration_secs {
                signer = signer.expiration(x);
            }
            signer.sign(message).unwrap().to_header()
        }
    };
    let mut out = header.into_bytes();
    out.extend_from_slice(message);
    out
}

/// Publishes every test key under `<selector>._domainkey.<domain>`.
pub fn publish_keys(dns: &TestDns, domain: &str) {
    for key in TestKey::ALL {
        dns.add_txt(
            &format!("{}._domainkey.{domain}", key.selector()),
            &key.dns_record(),
        );
    }
}

/// A DNS configuration that sends every query to `dns` and gives up quickly.
pub fn dns_config(dns: &TestDns) -> DnsConfig {
    DnsConfig {
        servers: vec![dns.addr()],
        query_timeout: Duration::from_millis(500),
        attempts: 1,
    }
}

/// A verifier that asks `dns`.
pub fn verifier(dns: &TestDns) -> Verifier {
    Verifier::new(VerifierConfig::new("tester.test", dns_config(dns))).unwrap()
}

/// A simple message with CRLF line endings.
pub fn message(from: &str, subject: &str, body: &str) -> Vec<u8> {
    format!(
        "From: Sender <{from}>\r\nTo: spf@tester.test\r\nSubject: {subject}\r\nDate: Mon, 23 Nov 2026 10:00:00 +0000\r\nMessage-ID: <test@{}>\r\n\r\n{body}",
        from.rsplit('@').next().unwrap_or("example.test")
    )
    .into_bytes()
}

/// Verifies `message` as received from `ip` with this HELO and MAIL FROM.
pub async fn verify(
    verifier: &Verifier,
    ip: &str,
    helo: &str,
    mail_from: &str,
    message: &[u8],
) -> Report {
    let input = MessageInput {
        client_ip: Some(ip.parse().unwrap()),
        helo,
        mail_from,
        message,
    };
    verifier.verify(&input).await
}

/// Like [`sign`], adding `i=identity` when given and an `l=` body length when `body_length`.
pub fn sign_with_identity_and_length(
    message: &[u8],
    options: &SignOptions,
    identity: Option<&str>,
    body_length: bool,
) -> Vec<u8> {
    fn finish<T: mail_auth::common::crypto::SigningKey>(
        signer: DkimSigner<T, mail_auth::dkim::Done>,
        message: &[u8],
        options: &SignOptions,
        identity: Option<&str>,
        body_length: bool,
    ) -> String {
        let canon = if options.relaxed {
            Canonicalization::Relaxed
        } else {
            Canonicalization::Simple
        };
        let mut signer = signer
            .header_canonicalization(canon)
            .body_canonicalization(canon)
            .body_length(body_length);
        if let Some(identity) = identity {
            signer = signer.agent_user_identifier(identity);
        }
        if let Some(x) = options.expiration_secs {
            signer = signer.expiration(x);
        }
        signer.sign(message).unwrap().to_header()
    }
    let selector = options
        .selector
        .clone()
        .unwrap_or_else(|| options.key.selector().into());
    let der = PrivateKeyDer::from_pem_slice(&options.key.read(".pem")).unwrap();
    let header = match options.key {
        TestKey::Ed25519 => {
            let key = Ed25519Key::from_pkcs8_der(der.secret_der()).unwrap();
            let signer = DkimSigner::from_key(key)
                .domain(&options.domain)
                .selector(selector)
                .headers(options.headers.clone());
            finish(signer, message, options, identity, body_length)
        }
        _ => {
            let key = RsaKey::<Sha256>::from_key_der(der).unwrap();
            let signer = DkimSigner::from_key(key)
                .domain(&options.domain)
                .selector(selector)
                .headers(options.headers.clone());
            finish(signer, message, options, identity, body_length)
        }
    };
    let mut out = header.into_bytes();
    out.extend_from_slice(message);
    out
}
