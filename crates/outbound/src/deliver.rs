//! One delivery attempt to one SMTP server, step by step, so that the caller can say which
//! step failed and with what reply: connect, greeting, EHLO, STARTTLS when the server offers
//! it, AUTH, MAIL FROM, RCPT TO, DATA. Every step's command and reply is kept in a bounded
//! [`Transcript`] (credentials never: AUTH shows only its mechanism), which the session log
//! shows.
//!
//! To MX hosts TLS is opportunistic, as between mail servers (RFC 7435): used whenever
//! offered, the certificate not checked, and reported in [`Delivered::tls`]; a server that
//! does not offer STARTTLS gets the message in clear text. A smarthost is a server the operator
//! named, so its certificate is checked ([`SmarthostTls`]: the system's roots, or the
//! authorities of a CA file) before anything else is sent, with STARTTLS or implicit TLS (port
//! 465); a password ([`Credentials`]) is only ever sent over such a checked connection, with
//! AUTH PLAIN or LOGIN, whichever the server offers.

use std::fmt;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use mail_send::SmtpClient;
use mail_send::smtp::AssertReply;
use mail_send::smtp::tls::build_tls_connector;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use smtp_proto::{AUTH_LOGIN, AUTH_PLAIN, EhloResponse, Response};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// An SMTP server to deliver to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Server {
    pub addr: SocketAddr,
    /// Its host name: sent as the TLS server name and shown in reports.
    pub name: String,
}

/// One message and its envelope.
#[derive(Debug, Clone)]
pub struct Outgoing<'a> {
    /// The name given in EHLO.
    pub helo: &'a str,
    /// The reverse-path; empty for `<>`.
    pub mail_from: &'a str,
    pub recipients: &'a [String],
    /// The message with CRLF line ends; dot-stuffing is done here.
    pub message: &'a [u8],
}

/// A user name and password for a smarthost's AUTH.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the password, whatever prints it.
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// How a smarthost's TLS is set up and its certificate checked; made once from the settings.
#[derive(Clone)]
pub struct SmarthostTls {
    connector: TlsConnector,
    /// TLS from the first byte (port 465, RFC 8314) instead of STARTTLS.
    implicit: bool,
}

impl fmt::Debug for SmarthostTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmarthostTls")
            .field("implicit", &self.implicit)
            .finish_non_exhaustive()
    }
}

impl SmarthostTls {
    /// Certificates checked against the system's roots (as mail-send's connector does), or,
    /// when `ca_file` is given, against the certificate authorities in that PEM file only (a
    /// private smarthost's own CA). `implicit` for TLS from the first byte (port 465).
    pub fn new(ca_file: Option<&Path>, implicit: bool) -> Result<SmarthostTls, String> {
        let connector = match ca_file {
            None => build_tls_connector(false)?,
            Some(path) => {
                let pem = std::fs::read(path).map_err(|error| {
                    format!(
                        "cannot read the smarthost CA file {}: {error}",
                        path.display()
                    )
                })?;
                let mut roots = rustls::RootCertStore::empty();
                for certificate in CertificateDer::pem_slice_iter(&pem) {
                    let certificate = certificate.map_err(|error| {
                        format!(
                            "the smarthost CA file {} is not PEM certificates: {error}",
                            path.display()
                        )
                    })?;
                    roots.add(certificate).map_err(|error| {
                        format!(
                            "the smarthost CA file {} holds an unusable certificate: {error}",
                            path.display()
                        )
                    })?;
                }
                if roots.is_empty() {
                    return Err(format!(
                        "the smarthost CA file {} holds no certificate; give a PEM file with \
                         the certificate of the authority that signs the smarthost's",
                        path.display()
                    ));
                }
                let provider = Arc::new(rustls::crypto::ring::default_provider());
                let config = rustls::ClientConfig::builder_with_provider(provider)
                    .with_safe_default_protocol_versions()
                    .map_err(|error| error.to_string())?
                    .with_root_certificates(roots)
                    .with_no_client_auth();
                TlsConnector::from(Arc::new(config))
            }
        };
        Ok(SmarthostTls {
            connector,
            implicit,
        })
    }
}

/// How one delivery uses TLS.
#[derive(Clone, Copy)]
enum Security<'a> {
    /// To an MX host: STARTTLS when offered, the certificate not checked.
    Opportunistic,
    /// To a smarthost: its certificate checked; required when authenticating.
    Checked(&'a SmarthostTls),
}

/// A step of an SMTP transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Connect,
    Greeting,
    Ehlo,
    StartTls,
    Auth,
    MailFrom,
    RcptTo,
    Data,
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Step::Connect => "connect",
            Step::Greeting => "greeting",
            Step::Ehlo => "EHLO",
            Step::StartTls => "STARTTLS",
            Step::Auth => "AUTH",
            Step::MailFrom => "MAIL FROM",
            Step::RcptTo => "RCPT TO",
            Step::Data => "DATA",
        })
    }
}

/// A server's reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub code: u16,
    /// The text after the code, lines joined with a space.
    pub text: String,
}

impl fmt::Display for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.code, self.text)
    }
}

/// The most exchanges a [`Transcript`] keeps; later ones are counted, not kept. A delivery to
/// one recipient has about ten.
pub const MAX_TRANSCRIPT_EXCHANGES: usize = 32;
/// The most bytes of one exchange's command or reply text kept.
pub const MAX_EXCHANGE_TEXT_BYTES: usize = 512;

/// One step of a delivery as the session log shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exchange {
    pub at: SystemTime,
    /// The command as sent, without credentials; or what happened without a command, in
    /// parentheses: `(connect)`, `(TLS handshake)`, `(message, 1234 bytes)`.
    pub command: String,
    /// The reply code; 0 when there was no reply (the network failed, or no reply is due).
    pub code: u16,
    /// The reply's enhanced status code (`4.3.0`), when it had one.
    pub status: Option<String>,
    /// The reply's text after the status code, or what went wrong.
    pub text: String,
}

/// What was said with one server, bounded ([`MAX_TRANSCRIPT_EXCHANGES`],
/// [`MAX_EXCHANGE_TEXT_BYTES`]) whatever the server answers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Transcript {
    pub exchanges: Vec<Exchange>,
    /// Exchanges past [`MAX_TRANSCRIPT_EXCHANGES`], left out.
    pub left_out: u32,
}

impl Transcript {
    /// Keeps `command` and the server's reply to it.
    fn push_reply(&mut self, command: &str, response: &Response<String>) {
        let text = one_line(&response.message);
        self.keep(command, response.code, enhanced_status(response.esc), &text);
    }

    /// Keeps `command`, or an event without a command, with `text` saying what happened.
    fn push(&mut self, command: &str, code: u16, text: &str) {
        self.keep(command, code, None, text);
    }

    fn keep(&mut self, command: &str, code: u16, status: Option<String>, text: &str) {
        if self.exchanges.len() >= MAX_TRANSCRIPT_EXCHANGES {
            self.left_out = self.left_out.saturating_add(1);
            return;
        }
        self.exchanges.push(Exchange {
            at: SystemTime::now(),
            command: cut(command),
            code,
            status,
            text: cut(text),
        });
    }
}

fn cut(text: &str) -> String {
    text[..text.floor_char_boundary(MAX_EXCHANGE_TEXT_BYTES)].to_owned()
}

/// A message the server took.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivered {
    /// The TLS version used (for example `TLSv1.3`), or `None` in clear text.
    pub tls: Option<String>,
    /// The server's reply to the end of the data.
    pub reply: Reply,
    pub transcript: Transcript,
}

/// Why a message was not taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{step} failed: {detail}")]
pub struct Failure {
    pub step: Step,
    /// The server's refusal, when it gave one.
    pub reply: Option<Reply>,
    /// What went wrong, as a person reads it: the reply, or the network error.
    pub detail: String,
    /// The TLS version, when the failure came after STARTTLS.
    pub tls: Option<String>,
    /// What was said up to the failure.
    pub transcript: Transcript,
}

impl Failure {
    /// A 5xx reply: the same message will never be taken, so trying again is pointless.
    pub fn is_permanent(&self) -> bool {
        self.reply.as_ref().is_some_and(|reply| reply.code >= 500)
    }

    fn at(step: Step, error: mail_send::Error) -> Failure {
        let reply = match &error {
            mail_send::Error::UnexpectedReply(response)
            | mail_send::Error::AuthenticationFailed(response) => Some(shown_reply(response)),
            _ => None,
        };
        let detail = match &reply {
            Some(reply) => format!("the server answered {reply}"),
            None => match error {
                mail_send::Error::Timeout => "no answer in time".to_owned(),
                mail_send::Error::UnparseableReply => {
                    "the connection closed or the answer was not SMTP".to_owned()
                }
                other => other.to_string(),
            },
        };
        Failure {
            step,
            reply,
            detail,
            tls: None,
            transcript: Transcript::default(),
        }
    }

    /// A failure at `step` that no reply of the server's caused.
    fn because(step: Step, detail: impl Into<String>) -> Failure {
        Failure {
            step,
            reply: None,
            detail: detail.into(),
            tls: None,
            transcript: Transcript::default(),
        }
    }
}

fn shown_reply(response: &Response<String>) -> Reply {
    Reply {
        code: response.code,
        text: reply_text(response.esc, &response.message),
    }
}

/// Delivers `outgoing` to `server`, an MX host, each network wait bounded by `timeout`, with
/// opportunistic TLS.
pub async fn deliver(
    server: &Server,
    outgoing: &Outgoing<'_>,
    timeout: Duration,
) -> Result<Delivered, Failure> {
    delivery(server, outgoing, timeout, Security::Opportunistic, None).await
}

/// Delivers `outgoing` to `server`, a smarthost, checking its certificate with `tls` and
/// authenticating with `credentials` when given: then a server that does not offer STARTTLS
/// (without implicit TLS) is a failure at that step, as the password never goes in clear
/// text, and so is a certificate that does not check out.
pub async fn deliver_to_smarthost(
    server: &Server,
    outgoing: &Outgoing<'_>,
    timeout: Duration,
    tls: &SmarthostTls,
    credentials: Option<&Credentials>,
) -> Result<Delivered, Failure> {
    delivery(
        server,
        outgoing,
        timeout,
        Security::Checked(tls),
        credentials,
    )
    .await
}

async fn delivery(
    server: &Server,
    outgoing: &Outgoing<'_>,
    timeout: Duration,
    security: Security<'_>,
    credentials: Option<&Credentials>,
) -> Result<Delivered, Failure> {
    let mut transcript = Transcript::default();
    match converse(
        server,
        outgoing,
        timeout,
        security,
        credentials,
        &mut transcript,
    )
    .await
    {
        Ok((tls, reply)) => Ok(Delivered {
            tls,
            reply,
            transcript,
        }),
        Err(failure) => Err(Failure {
            transcript,
            ..failure
        }),
    }
}

/// Sends `line` (or only reads, for the greeting), keeps it as `shown` with the reply in
/// `transcript`, and returns the reply; a network failure is kept too.
async fn exchange<T: AsyncRead + AsyncWrite + Unpin>(
    client: &mut SmtpClient<T>,
    transcript: &mut Transcript,
    step: Step,
    shown: &str,
    line: Option<&[u8]>,
) -> Result<Response<String>, Failure> {
    let answer = match line {
        Some(line) => client.cmd(line).await,
        None => tokio::time::timeout(client.timeout, client.read())
            .await
            .unwrap_or(Err(mail_send::Error::Timeout)),
    };
    match answer {
        Ok(response) => {
            transcript.push_reply(shown, &response);
            Ok(response)
        }
        Err(error) => {
            let failure = Failure::at(step, error);
            transcript.push(shown, 0, &failure.detail);
            Err(failure)
        }
    }
}

/// Sends `command` as written (kept so in the transcript) and expects a 2xx reply.
async fn command<T: AsyncRead + AsyncWrite + Unpin>(
    client: &mut SmtpClient<T>,
    transcript: &mut Transcript,
    step: Step,
    command: &str,
) -> Result<(), Failure> {
    let line = format!("{command}\r\n");
    let response = exchange(client, transcript, step, command, Some(line.as_bytes())).await?;
    positive(step, response)
}

/// A 2xx reply, or the failure of `step`.
fn positive(step: Step, response: Response<String>) -> Result<(), Failure> {
    response
        .assert_positive_completion()
        .map_err(|error| Failure::at(step, error))
}

/// EHLO, kept in `transcript` with the server's name and what it offers.
async fn ehlo<T: AsyncRead + AsyncWrite + Unpin>(
    client: &mut SmtpClient<T>,
    transcript: &mut Transcript,
    helo: &str,
) -> Result<EhloResponse<String>, Failure> {
    let shown = format!("EHLO {helo}");
    match client.ehlo(helo).await {
        Ok(capabilities) => {
            let mut offers = Vec::new();
            if capabilities.has_capability(smtp_proto::EXT_START_TLS) {
                offers.push("STARTTLS");
            }
            if capabilities.auth_mechanisms & AUTH_PLAIN != 0 {
                offers.push("AUTH PLAIN");
            }
            if capabilities.auth_mechanisms & AUTH_LOGIN != 0 {
                offers.push("AUTH LOGIN");
            }
            let text = if offers.is_empty() {
                capabilities.hostname.clone()
            } else {
                format!("{} (offers {})", capabilities.hostname, offers.join(", "))
            };
            transcript.push(&shown, 250, &text);
            Ok(capabilities)
        }
        Err(error) => {
            if let mail_send::Error::UnexpectedReply(response) = &error {
                transcript.push_reply(&shown, response);
            }
            let failure = Failure::at(Step::Ehlo, error);
            if failure.reply.is_none() {
                transcript.push(&shown, 0, &failure.detail);
            }
            Err(failure)
        }
    }
}

/// The whole conversation with one server: the TLS version used and the reply to the data.
async fn converse(
    server: &Server,
    outgoing: &Outgoing<'_>,
    timeout: Duration,
    security: Security<'_>,
    credentials: Option<&Credentials>,
    transcript: &mut Transcript,
) -> Result<(Option<String>, Reply), Failure> {
    let mut client = match SmtpClient::connect(server.addr, timeout).await {
        Ok(client) => client,
        Err(error) => {
            let failure = Failure::at(Step::Connect, error);
            transcript.push("(connect)", 0, &failure.detail);
            return Err(failure);
        }
    };
    let connector = match security {
        Security::Checked(tls) if tls.implicit => {
            let (mut client, tls) = handshake(client, &tls.connector, server, transcript).await?;
            let greeting = exchange(&mut client, transcript, Step::Greeting, "(connect)", None)
                .await
                .map_err(with(&tls))?;
            positive(Step::Greeting, greeting).map_err(with(&tls))?;
            return secured(client, tls, outgoing, credentials, transcript).await;
        }
        Security::Checked(tls) => tls.connector.clone(),
        Security::Opportunistic => build_tls_connector(true)
            .map_err(|error| Failure::because(Step::StartTls, error.to_string()))?,
    };
    let greeting = exchange(&mut client, transcript, Step::Greeting, "(connect)", None).await?;
    positive(Step::Greeting, greeting)?;
    let capabilities = ehlo(&mut client, transcript, outgoing.helo).await?;
    if !capabilities.has_capability(smtp_proto::EXT_START_TLS) {
        if credentials.is_some() {
            return Err(Failure::because(
                Step::StartTls,
                "the server does not offer STARTTLS, and the password is never sent in clear \
                 text",
            ));
        }
        return transaction(client, outgoing, None, transcript).await;
    }
    command(&mut client, transcript, Step::StartTls, "STARTTLS").await?;
    let (client, tls) = handshake(client, &connector, server, transcript).await?;
    secured(client, tls, outgoing, credentials, transcript).await
}

/// The TLS handshake on a connected client (after STARTTLS, or at once for implicit TLS),
/// kept in the transcript with the version and cipher or why it failed; the TLS version.
async fn handshake(
    client: SmtpClient<TcpStream>,
    connector: &TlsConnector,
    server: &Server,
    transcript: &mut Transcript,
) -> Result<
    (
        SmtpClient<tokio_rustls::client::TlsStream<TcpStream>>,
        Option<String>,
    ),
    Failure,
> {
    let client = match client.into_tls(connector, &server.name).await {
        Ok(client) => client,
        Err(error) => {
            let failure = Failure::at(Step::StartTls, error);
            transcript.push("(TLS handshake)", 0, &failure.detail);
            return Err(failure);
        }
    };
    let connection = client.tls_connection();
    let tls = connection
        .protocol_version()
        .map(|version| tls_version_name(&format!("{version:?}")));
    let cipher = connection
        .negotiated_cipher_suite()
        .map(|suite| format!("{:?}", suite.suite()))
        .unwrap_or_default();
    transcript.push(
        "(TLS handshake)",
        0,
        &format!("{} {cipher}", tls.as_deref().unwrap_or("TLS")),
    );
    Ok((client, tls))
}

/// A failure that came after the TLS handshake, with its version.
fn with(tls: &Option<String>) -> impl Fn(Failure) -> Failure + '_ {
    move |failure| Failure {
        tls: tls.clone(),
        ..failure
    }
}

/// EHLO, AUTH when there are credentials, and the transaction, over TLS.
async fn secured<T: AsyncRead + AsyncWrite + Unpin>(
    mut client: SmtpClient<T>,
    tls: Option<String>,
    outgoing: &Outgoing<'_>,
    credentials: Option<&Credentials>,
    transcript: &mut Transcript,
) -> Result<(Option<String>, Reply), Failure> {
    let capabilities = ehlo(&mut client, transcript, outgoing.helo)
        .await
        .map_err(with(&tls))?;
    if let Some(credentials) = credentials {
        authenticate(&mut client, transcript, credentials, &capabilities)
            .await
            .map_err(with(&tls))?;
    }
    transaction(client, outgoing, tls, transcript).await
}

/// AUTH PLAIN, or else LOGIN, whichever the server offers; the transcript shows the mechanism
/// and the replies, never the user name or the password.
async fn authenticate<T: AsyncRead + AsyncWrite + Unpin>(
    client: &mut SmtpClient<T>,
    transcript: &mut Transcript,
    credentials: &Credentials,
    capabilities: &EhloResponse<String>,
) -> Result<(), Failure> {
    let login =
        mail_send::Credentials::new(credentials.username.as_str(), credentials.password.as_str());
    let encode = |mechanism: u64, challenge: &str| {
        login
            .encode(mechanism, challenge)
            .map_err(|error| Failure::because(Step::Auth, error.to_string()))
    };
    let mut response = if capabilities.auth_mechanisms & AUTH_PLAIN != 0 {
        let line = format!("AUTH PLAIN {}\r\n", encode(AUTH_PLAIN, "")?);
        exchange(
            client,
            transcript,
            Step::Auth,
            "AUTH PLAIN (credentials hidden)",
            Some(line.as_bytes()),
        )
        .await?
    } else if capabilities.auth_mechanisms & AUTH_LOGIN != 0 {
        let mut response = exchange(
            client,
            transcript,
            Step::Auth,
            "AUTH LOGIN",
            Some(b"AUTH LOGIN\r\n"),
        )
        .await?;
        // The server asks for the user name, then the password; each answer is hidden.
        for shown in ["(user name hidden)", "(password hidden)"] {
            if response.code != 334 {
                break;
            }
            let line = format!("{}\r\n", encode(AUTH_LOGIN, &response.message)?);
            response =
                exchange(client, transcript, Step::Auth, shown, Some(line.as_bytes())).await?;
        }
        response
    } else {
        return Err(Failure::because(
            Step::Auth,
            "the server offers neither AUTH PLAIN nor AUTH LOGIN",
        ));
    };
    if response.code == 334 {
        // A challenge after the password: give up rather than answer it.
        response = exchange(client, transcript, Step::Auth, "*", Some(b"*\r\n")).await?;
    }
    if response.code == 235 {
        Ok(())
    } else {
        Err(Failure::at(
            Step::Auth,
            mail_send::Error::UnexpectedReply(response),
        ))
    }
}

/// A reply's text as the server sent it: the enhanced status code (which the parser takes
/// apart from the text) in front, when there is one, the lines joined with a space.
fn reply_text(esc: [u8; 3], message: &str) -> String {
    let message = one_line(message);
    match enhanced_status(esc) {
        Some(status) => format!("{status} {message}"),
        None => message,
    }
}

/// The enhanced status code smtp-proto took apart from a reply (`[4, 3, 0]`), as written.
fn enhanced_status(esc: [u8; 3]) -> Option<String> {
    let [class, subject, detail] = esc;
    (esc != [0, 0, 0]).then(|| format!("{class}.{subject}.{detail}"))
}

/// A reply's lines joined with a space.
fn one_line(message: &str) -> String {
    message.replace(['\r', '\n'], " ")
}

/// `TLSv1_3` (rustls' name) as people write it: `TLSv1.3`.
fn tls_version_name(debug: &str) -> String {
    debug.replace('_', ".")
}

/// MAIL FROM, RCPT TO, DATA and QUIT on a greeted connection.
async fn transaction<T: AsyncRead + AsyncWrite + Unpin>(
    mut client: SmtpClient<T>,
    outgoing: &Outgoing<'_>,
    tls: Option<String>,
    transcript: &mut Transcript,
) -> Result<(Option<String>, Reply), Failure> {
    let with_tls = with(&tls);
    let mail_from = format!("MAIL FROM:<{}>", outgoing.mail_from);
    command(&mut client, transcript, Step::MailFrom, &mail_from)
        .await
        .map_err(&with_tls)?;
    for recipient in outgoing.recipients {
        let rcpt_to = format!("RCPT TO:<{recipient}>");
        command(&mut client, transcript, Step::RcptTo, &rcpt_to)
            .await
            .map_err(&with_tls)?;
    }
    let response = exchange(
        &mut client,
        transcript,
        Step::Data,
        "DATA",
        Some(b"DATA\r\n"),
    )
    .await
    .map_err(&with_tls)?;
    response
        .assert_code(354)
        .map_err(|error| with_tls(Failure::at(Step::Data, error)))?;
    let data = dot_stuffed(outgoing.message);
    let shown = format!("(message, {} bytes)", outgoing.message.len());
    let timeout = client.timeout;
    let written = tokio::time::timeout(timeout, async {
        client.stream.write_all(&data).await?;
        client.stream.flush().await
    })
    .await;
    let write_failure = match written {
        Ok(Ok(())) => None,
        Ok(Err(error)) => Some(mail_send::Error::Io(error)),
        Err(_) => Some(mail_send::Error::Timeout),
    };
    if let Some(error) = write_failure {
        let failure = with_tls(Failure::at(Step::Data, error));
        transcript.push(&shown, 0, &failure.detail);
        return Err(failure);
    }
    let response = exchange(&mut client, transcript, Step::Data, &shown, None)
        .await
        .map_err(&with_tls)?;
    let reply = shown_reply(&response);
    positive(Step::Data, response).map_err(&with_tls)?;
    // The message is taken: a failed goodbye changes nothing.
    let _ = exchange(
        &mut client,
        transcript,
        Step::Data,
        "QUIT",
        Some(b"QUIT\r\n"),
    )
    .await;
    drop(with_tls);
    Ok((tls, reply))
}

/// The message as DATA sends it: a dot doubled at the start of each line, a CRLF at the end if
/// it lacks one, then the final `.` line.
pub fn dot_stuffed(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + message.len() / 64 + 5);
    let mut line_start = true;
    for &byte in message {
        if line_start && byte == b'.' {
            out.push(b'.');
        }
        out.push(byte);
        line_start = byte == b'\n';
    }
    if !message.ends_with(b"\r\n") {
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b".\r\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_doubles_leading_dots_and_ends_with_one_dot_line() {
        assert_eq!(
            dot_stuffed(b".hidden\r\nok\r\n..two\r\n"),
            b"..hidden\r\nok\r\n...two\r\n.\r\n"
        );
        assert_eq!(dot_stuffed(b"no end"), b"no end\r\n.\r\n");
    }

    #[test]
    fn replies_keep_their_enhanced_status_code() {
        assert_eq!(reply_text([4, 3, 0], "busy\r\nlater"), "4.3.0 busy  later");
        assert_eq!(reply_text([0, 0, 0], "hello"), "hello");
    }

    #[test]
    fn a_transcript_is_bounded_whatever_the_server_says() {
        let mut transcript = Transcript::default();
        let long = "é".repeat(MAX_EXCHANGE_TEXT_BYTES);
        for _ in 0..MAX_TRANSCRIPT_EXCHANGES + 8 {
            transcript.push(&long, 250, &long);
        }
        assert_eq!(transcript.exchanges.len(), MAX_TRANSCRIPT_EXCHANGES);
        assert_eq!(transcript.left_out, 8);
        for exchange in &transcript.exchanges {
            assert!(exchange.command.len() <= MAX_EXCHANGE_TEXT_BYTES);
            assert!(exchange.text.len() <= MAX_EXCHANGE_TEXT_BYTES);
            assert!(
                exchange.text.chars().all(|c| c == 'é'),
                "cut on a character boundary"
            );
        }
    }

    #[test]
    fn tls_versions_read_as_people_write_them() {
        assert_eq!(tls_version_name("TLSv1_3"), "TLSv1.3");
    }
}
