//! TLS server configurations for STARTTLS: from PEM files, or a self-signed certificate made at
//! start-up so STARTTLS works out of the box (test senders rarely check the certificate).

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::ServerConfig;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// Why a TLS configuration could not be built. Each names the file and what to fix.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{} is not valid PEM: {source}", path.display())]
    Pem {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{} holds no certificate; expected a PEM block starting with -----BEGIN CERTIFICATE-----", path.display())]
    NoCertificate { path: PathBuf },
    #[error(
        "{} holds no private key; expected a PEM block starting with -----BEGIN PRIVATE KEY----- (or RSA/EC PRIVATE KEY)",
        path.display()
    )]
    NoPrivateKey { path: PathBuf },
    #[error("the certificate {} and the key {} cannot be used: {source}", cert.display(), key.display())]
    Unusable {
        cert: PathBuf,
        key: PathBuf,
        source: rustls::Error,
    },
    #[error("cannot make a self-signed certificate for {hostname:?}: {reason}")]
    SelfSigned { hostname: String, reason: String },
}

/// A configuration with a freshly generated self-signed certificate for `hostname`.
pub fn self_signed_tls(hostname: &str) -> Result<Arc<ServerConfig>, TlsError> {
    let self_signed_error = |reason: String| TlsError::SelfSigned {
        hostname: hostname.to_string(),
        reason,
    };
    let generated = rcgen::generate_simple_self_signed(vec![hostname.to_string()])
        .map_err(|e| self_signed_error(e.to_string()))?;
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
        generated.signing_key.serialize_der(),
    ));
    let cert = generated.cert.der().clone();
    server_config(vec![cert], key).map_err(|e| self_signed_error(e.to_string()))
}

/// A configuration from a PEM certificate chain file and a PEM private key file.
pub fn load_tls(cert: &Path, key: &Path) -> Result<Arc<ServerConfig>, TlsError> {
    let chain = read_certificates(cert)?;
    let private_key = read_private_key(key)?;
    server_config(chain, private_key).map_err(|source| TlsError::Unusable {
        cert: cert.to_path_buf(),
        key: key.to_path_buf(),
        source,
    })
}

fn open(path: &Path) -> Result<BufReader<File>, TlsError> {
    File::open(path)
        .map(BufReader::new)
        .map_err(|source| TlsError::Read {
            path: path.to_path_buf(),
            source,
        })
}

fn read_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let chain = rustls_pemfile::certs(&mut open(path)?)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| TlsError::Pem {
            path: path.to_path_buf(),
            source,
        })?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificate {
            path: path.to_path_buf(),
        });
    }
    Ok(chain)
}

fn read_private_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    rustls_pemfile::private_key(&mut open(path)?)
        .map_err(|source| TlsError::Pem {
            path: path.to_path_buf(),
            source,
        })?
        .ok_or_else(|| TlsError::NoPrivateKey {
            path: path.to_path_buf(),
        })
}

/// Names the ring provider explicitly: another crate in the program may enable a second
/// rustls provider, and then rustls cannot pick a default by itself.
fn server_config(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<Arc<ServerConfig>, rustls::Error> {
    let config =
        ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(chain, key)?;
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_self_signed_configuration_can_be_made() {
        assert!(self_signed_tls("mx.tester.example").is_ok());
    }

    #[test]
    fn pem_files_written_from_a_generated_certificate_load() {
        let dir = std::env::temp_dir().join(format!("authcheck-smtp-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let generated =
            rcgen::generate_simple_self_signed(vec!["mx.tester.example".to_string()]).unwrap();
        let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
        std::fs::write(&cert, generated.cert.pem()).unwrap();
        std::fs::write(&key, generated.signing_key.serialize_pem()).unwrap();

        assert!(load_tls(&cert, &key).is_ok());

        // Swapped files: each error names the file that is wrong.
        let err = load_tls(&key, &cert).unwrap_err();
        assert!(matches!(err, TlsError::NoCertificate { .. }), "{err}");
        assert!(err.to_string().contains("key.pem"), "{err}");
        let err = load_tls(&cert, &dir.join("missing.pem")).unwrap_err();
        assert!(matches!(err, TlsError::Read { .. }), "{err}");
        assert!(err.to_string().contains("missing.pem"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
