//! Test material shared by the crates' tests and the end-to-end tests: DKIM signing keys,
//! a signer, their DNS key records, simple test messages, a headless browser
//! ([`browser::Browser`]) and a process's CPU time for benchmarks ([`process::cpu_time`]).
//!
//! The keys in `keys/` were made with `openssl genpkey` for these tests only and protect
//! nothing. Each key's public half is published under its own selector at
//! `<selector>._domainkey.<domain>` by [`publish_keys`].

pub mod browser;
pub mod png;
pub mod process;

use authcheck_testdns::TestDns;
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

    fn read(self, suffix: &str) -> Vec<u8> {
        let path = format!(
            "{}/keys/{}{suffix}",
            env!("CARGO_MANIFEST_DIR"),
            self.selector()
        );
        std::fs::read(&path).unwrap_or_else(|e| panic!("read {path}: {e}"))
    }

    /// The private key, PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`).
    pub fn private_pem(self) -> Vec<u8> {
        self.read(".pem")
    }

    /// The DKIM key record (TXT value) publishing this key.
    pub fn dns_record(self) -> String {
        let public = String::from_utf8(self.read(".pub.b64")).expect("base64 is ASCII");
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
    /// Defaults to the key's own selector.
    pub selector: Option<String>,
    pub headers: Vec<String>,
    /// relaxed/relaxed when true, simple/simple when false.
    pub relaxed: bool,
    /// Seconds from now until `x=`.
    pub expiration_secs: Option<u64>,
    /// `i=`, the agent or user identifier.
    pub identity: Option<String>,
    /// Whether to write `l=` (the signed body length).
    pub body_length: bool,
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
            identity: None,
            body_length: false,
        }
    }
}

fn sign_with<K: mail_auth::common::crypto::SigningKey>(
    key: K,
    message: &[u8],
    options: &SignOptions,
) -> String {
    let selector = options
        .selector
        .clone()
        .unwrap_or_else(|| options.key.selector().into());
    let canon = if options.relaxed {
        Canonicalization::Relaxed
    } else {
        Canonicalization::Simple
    };
    let mut signer = DkimSigner::from_key(key)
        .domain(&options.domain)
        .selector(selector)
        .headers(options.headers.clone())
        .header_canonicalization(canon)
        .body_canonicalization(canon)
        .body_length(options.body_length);
    if let Some(x) = options.expiration_secs {
        signer = signer.expiration(x);
    }
    if let Some(identity) = &options.identity {
        signer = signer.agent_user_identifier(identity);
    }
    signer
        .sign(message)
        .expect("sign the test message")
        .to_header()
}

/// Returns `message` with a DKIM-Signature header field prepended.
pub fn sign(message: &[u8], options: &SignOptions) -> Vec<u8> {
    let der = PrivateKeyDer::from_pem_slice(&options.key.private_pem()).expect("test key PEM");
    let header = match options.key {
        TestKey::Ed25519 => {
            let key = Ed25519Key::from_pkcs8_der(der.secret_der()).expect("ed25519 test key");
            sign_with(key, message, options)
        }
        _ => sign_with(
            RsaKey::<Sha256>::from_key_der(der).expect("RSA test key"),
            message,
            options,
        ),
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

/// Publishes a domain set up well: SPF permitting only `ip`, DMARC `p=reject` with aggregate
/// reports to `dmarc@<domain>`, and every test key.
pub fn publish_sender_domain(dns: &TestDns, domain: &str, ip: &str) {
    dns.add_txt(domain, &format!("v=spf1 ip4:{ip} -all"));
    dns.add_txt(
        &format!("_dmarc.{domain}"),
        &format!("v=DMARC1; p=reject; rua=mailto:dmarc@{domain}"),
    );
    publish_keys(dns, domain);
}

/// `count` distinct empty DKIM-style tags (`aaaa=; baaa=; ...`), folded every 8 tags as a
/// mailer would: a tag list that costs a quadratic parser dearly.
pub fn distinct_empty_tags(count: usize) -> String {
    let mut tags = String::with_capacity(count * 9);
    for i in 0..count {
        let mut n = i;
        for _ in 0..4 {
            tags.push(char::from(b'a' + (n % 26) as u8));
            n /= 26;
        }
        tags.push_str("=;");
        tags.push_str(if i % 8 == 7 { "\r\n " } else { " " });
    }
    tags
}

/// A PKCS#1 RSAPublicKey (DER) whose modulus has `bits` bits: not a real key (nobody knows its
/// factors and making one would take minutes), but its size is all a verifier may look at
/// before refusing it.
pub fn crafted_rsa_public_key(bits: usize) -> Vec<u8> {
    let mut modulus = vec![0x00, 0x80];
    modulus.extend(std::iter::repeat_n(0x5a, bits / 8 - 2));
    modulus.push(0x01);
    let mut sequence = der(0x02, &modulus);
    sequence.extend(der(0x02, &[0x01, 0x00, 0x01]));
    der(0x30, &sequence)
}

/// DER: `tag`, the definite length of `content`, `content`.
fn der(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    match content.len() {
        length @ 0..=127 => out.push(length as u8),
        length @ 128..=255 => out.extend([0x81, length as u8]),
        length => out.extend([0x82, (length >> 8) as u8, length as u8]),
    }
    out.extend_from_slice(content);
    out
}

/// A simple message with CRLF line endings.
pub fn message(from: &str, subject: &str, body: &str) -> Vec<u8> {
    let domain = from.rsplit('@').next().unwrap_or("example.test");
    format!(
        "From: Sender <{from}>\r\nTo: spf@tester.test\r\nSubject: {subject}\r\nDate: Mon, 23 Nov 2026 10:00:00 +0000\r\nMessage-ID: <test@{domain}>\r\n\r\n{body}"
    )
    .into_bytes()
}
