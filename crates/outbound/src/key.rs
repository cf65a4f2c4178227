//! The tester's own DKIM key: made once (RSA, 2048 bits: every receiver verifies RSA, and RFC
//! 8301 asks for at least 1024), kept in a PKCS#8 PEM file readable by its owner only, and
//! published by the operator as the TXT record [`SigningKey::dns_record`] gives.

use std::io::Write;
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use mail_auth::common::crypto::{RsaKey, Sha256};
use mail_auth::common::headers::HeaderWriter;
use mail_auth::dkim::{Canonicalization, DkimSigner};
use rsa::RsaPrivateKey;
use rsa::pkcs8::der::zeroize::Zeroizing;
use rsa::pkcs8::{DecodePrivateKey, EncodePrivateKey, EncodePublicKey, LineEnding};
use rustls_pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

/// The size of a key [`SigningKey::generate`] makes.
pub const KEY_BITS: usize = 2048;

/// The header fields a signature covers: those a reader sees and a relay has no reason to
/// change.
const SIGNED_HEADERS: [&str; 9] = [
    "From",
    "To",
    "Subject",
    "Date",
    "Message-ID",
    "In-Reply-To",
    "References",
    "Auto-Submitted",
    "MIME-Version",
];

/// Why the key could not be read, made or used. Each names the file and what to do.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot read the DKIM key {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{} is not a PKCS#8 PEM RSA private key (-----BEGIN PRIVATE KEY-----): {reason}; \
         move it away to have a new key made, then publish the new DNS record",
        path.display()
    )]
    Invalid { path: PathBuf, reason: String },
    #[error("cannot write the DKIM key {}: {source}", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot make an RSA key: {0}")]
    Generate(String),
    #[error("cannot sign with the DKIM key: {0}")]
    Sign(String),
}

/// An RSA private key that signs the tester's own mail.
#[derive(Clone)]
pub struct SigningKey {
    private: RsaPrivateKey,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the private half, whatever prints it.
        f.debug_struct("SigningKey")
            .field("dns_record", &self.dns_record())
            .finish()
    }
}

/// What [`SigningKey::load_or_generate`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyOrigin {
    /// Read from the file.
    Loaded,
    /// Made now and written to the file: the operator must publish its record.
    Generated,
}

impl SigningKey {
    /// A new random key of [`KEY_BITS`] bits.
    pub fn generate() -> Result<SigningKey, KeyError> {
        let private = RsaPrivateKey::new(&mut rand::rngs::OsRng, KEY_BITS)
            .map_err(|error| KeyError::Generate(error.to_string()))?;
        Ok(SigningKey { private })
    }

    /// Reads a PKCS#8 PEM key (`-----BEGIN PRIVATE KEY-----`).
    pub fn from_pem(pem: &str) -> Result<SigningKey, String> {
        RsaPrivateKey::from_pkcs8_pem(pem)
            .map(|private| SigningKey { private })
            .map_err(|error| error.to_string())
    }

    /// The key in `path`, or, when there is no such file, a new key written there (mode 0600,
    /// through a temporary file renamed into place, so a crash never leaves half a key).
    pub fn load_or_generate(path: &Path) -> Result<(SigningKey, KeyOrigin), KeyError> {
        if let Some(key) = SigningKey::load(path)? {
            return Ok((key, KeyOrigin::Loaded));
        }
        let key = SigningKey::generate()?;
        key.write_new(path)?;
        Ok((key, KeyOrigin::Generated))
    }

    /// The key in `path`, or `None` when there is no such file.
    pub fn load(path: &Path) -> Result<Option<SigningKey>, KeyError> {
        match std::fs::read_to_string(path) {
            Ok(pem) => SigningKey::from_pem(&pem)
                .map(Some)
                .map_err(|reason| KeyError::Invalid {
                    path: path.to_owned(),
                    reason,
                }),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(KeyError::Read {
                path: path.to_owned(),
                source,
            }),
        }
    }

    /// The private key as PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`), as
    /// [`SigningKey::from_pem`] reads it; wiped from memory when dropped.
    pub fn pkcs8_pem(&self) -> Result<Zeroizing<String>, KeyError> {
        self.private
            .to_pkcs8_pem(LineEnding::LF)
            .map_err(|error| KeyError::Generate(error.to_string()))
    }

    fn write_new(&self, path: &Path) -> Result<(), KeyError> {
        let write_error = |source| KeyError::Write {
            path: path.to_owned(),
            source,
        };
        let pem = self.pkcs8_pem()?;
        let partial = path.with_extension("partial");
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(&partial).map_err(write_error)?;
        file.write_all(pem.as_bytes()).map_err(write_error)?;
        file.sync_all().map_err(write_error)?;
        std::fs::rename(&partial, path).map_err(write_error)
    }

    /// The TXT record to publish at `<selector>._domainkey.<domain>`.
    pub fn dns_record(&self) -> String {
        let public = self
            .private
            .to_public_key()
            .to_public_key_der()
            .expect("an RSA public key always encodes");
        format!("v=DKIM1; k=rsa; p={}", STANDARD.encode(public.as_bytes()))
    }

    /// `message` with a DKIM-Signature field for `d=domain; s=selector` in front (relaxed
    /// canonicalization, rsa-sha256).
    pub fn sign(&self, message: &[u8], domain: &str, selector: &str) -> Result<Vec<u8>, KeyError> {
        let der = self
            .private
            .to_pkcs8_der()
            .map_err(|error| KeyError::Sign(error.to_string()))?;
        let der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(der.as_bytes()));
        let key = RsaKey::<Sha256>::from_key_der(der)
            .map_err(|error| KeyError::Sign(error.to_string()))?;
        let signature = DkimSigner::from_key(key)
            .domain(domain)
            .selector(selector)
            .headers(SIGNED_HEADERS)
            .header_canonicalization(Canonicalization::Relaxed)
            .body_canonicalization(Canonicalization::Relaxed)
            .sign(message)
            .map_err(|error| KeyError::Sign(error.to_string()))?;
        let mut signed = Vec::with_capacity(message.len() + 600);
        signature.write_header(&mut signed);
        signed.extend_from_slice(message);
        Ok(signed)
    }
}
