//! STARTTLS (RFC 3207): after the 220 the TLS handshake runs on the same connection, and the
//! session starts over — no greeting, no transaction, nothing the client sent before the
//! handshake (RFC 3207 section 4.2; pipelined plaintext would be an injection, CVE-2011-0411).

use rustls::ProtocolVersion;
use rustls::server::ServerConnection;
use tokio::time::timeout;
use tokio_rustls::TlsAcceptor;

use super::{Next, Session, SessionError, State, Step, Stream};
use crate::delivery::{Delivery, TlsInfo};
use crate::replies;

impl<D: Delivery> Session<D> {
    pub(super) fn starttls(&mut self) -> Step {
        let refusal = if self.config.tls.is_none() {
            replies::NOT_IMPLEMENTED
        } else if self.tls.is_some() {
            replies::ALREADY_TLS
        } else if matches!(self.state, State::Transaction(_)) {
            replies::TLS_IN_TRANSACTION
        } else {
            self.push(&replies::READY_FOR_TLS);
            return Step::Stop(Next::StartTls);
        };
        self.command_reply(refusal)
    }

    /// Runs the handshake after the 220 has been sent.
    pub(super) async fn start_tls(&mut self) -> Result<(), SessionError> {
        self.input.clear();
        self.helo = None;
        self.state = State::Connected;
        let (Some(config), Stream::Plain(tcp)) = (
            self.config.tls.clone(),
            std::mem::replace(&mut self.stream, Stream::Upgrading),
        ) else {
            return Err(SessionError::TlsHandshake(std::io::Error::other(
                "STARTTLS on a connection already upgraded",
            )));
        };
        let tls = timeout(
            self.config.command_timeout,
            TlsAcceptor::from(config).accept(tcp),
        )
        .await
        .map_err(|_| SessionError::TlsTimeout)?
        .map_err(SessionError::TlsHandshake)?;
        self.tls = Some(tls_info(tls.get_ref().1));
        self.stream = Stream::Tls(Box::new(tls));
        Ok(())
    }
}

fn tls_info(connection: &ServerConnection) -> TlsInfo {
    let version = match connection.protocol_version() {
        Some(ProtocolVersion::TLSv1_3) => "TLSv1.3".to_string(),
        Some(ProtocolVersion::TLSv1_2) => "TLSv1.2".to_string(),
        Some(other) => format!("{other:?}"),
        None => "unknown".to_string(),
    };
    let cipher = match connection.negotiated_cipher_suite() {
        Some(suite) => {
            let suite = suite.suite();
            suite
                .as_str()
                .map_or_else(|| format!("{suite:?}"), str::to_string)
        }
        None => "unknown".to_string(),
    };
    TlsInfo { version, cipher }
}
