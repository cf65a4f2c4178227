//! One delivery attempt to one SMTP server, step by step, so that the caller can say which
//! step failed and with what reply: connect, greeting, EHLO, STARTTLS when the server offers
//! it, MAIL FROM, RCPT TO, DATA.
//!
//! TLS is opportunistic, as between mail servers (RFC 7435): used whenever offered, the
//! certificate not checked, and reported in [`Delivered::tls`]. A server that does not offer
//! STARTTLS gets the message in clear text, unless the caller authenticates: a password
//! ([`Credentials`], for a smarthost) is only ever sent over TLS, with AUTH PLAIN or LOGIN,
//! whichever the server offers.

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use mail_send::SmtpClient;
use mail_send::smtp::AssertReply;
use mail_send::smtp::tls::build_tls_connector;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

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

/// A message the server took.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivered {
    /// The TLS version used (for example `TLSv1.3`), or `None` in clear text.
    pub tls: Option<String>,
    /// The server's reply to the end of the data.
    pub reply: Reply,
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
}

impl Failure {
    /// A 5xx reply: the same message will never be taken, so trying again is pointless.
    pub fn is_permanent(&self) -> bool {
        self.reply.as_ref().is_some_and(|reply| reply.code >= 500)
    }

    fn at(step: Step, error: mail_send::Error) -> Failure {
        let reply = match &error {
            mail_send::Error::UnexpectedReply(response) => Some(Reply {
                code: response.code,
                text: reply_text(response.esc, &response.message),
            }),
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
        }
    }
}

/// Delivers `outgoing` to `server`, each network wait bounded by `timeout`.
pub async fn deliver(
    server: &Server,
    outgoing: &Outgoing<'_>,
    timeout: Duration,
) -> Result<Delivered, Failure> {
    deliver_authenticated(server, outgoing, timeout, None).await
}

/// As [`deliver`], authenticating with `credentials` when given: then a server that does not
/// offer STARTTLS is a failure at that step, as the password never goes in clear text.
pub async fn deliver_authenticated(
    server: &Server,
    outgoing: &Outgoing<'_>,
    timeout: Duration,
    credentials: Option<&Credentials>,
) -> Result<Delivered, Failure> {
    let mut client = SmtpClient::connect(server.addr, timeout)
        .await
        .map_err(|error| Failure::at(Step::Connect, error))?;
    client
        .read()
        .await
        .and_then(|reply| reply.assert_positive_completion())
        .map_err(|error| Failure::at(Step::Greeting, error))?;
    let capabilities = client
        .ehlo(outgoing.helo)
        .await
        .map_err(|error| Failure::at(Step::Ehlo, error))?;
    if !capabilities.has_capability(smtp_proto::EXT_START_TLS) {
        if credentials.is_some() {
            return Err(Failure {
                step: Step::StartTls,
                reply: None,
                detail: "the server does not offer STARTTLS, and the password is never sent \
                         in clear text"
                    .to_owned(),
                tls: None,
            });
        }
        return transaction(client, outgoing, None).await;
    }
    let connector = build_tls_connector(true).map_err(|error| Failure {
        step: Step::StartTls,
        reply: None,
        detail: error.to_string(),
        tls: None,
    })?;
    let mut client = client
        .start_tls(&connector, &server.name)
        .await
        .map_err(|error| Failure::at(Step::StartTls, error))?;
    let tls = client
        .tls_connection()
        .protocol_version()
        .map(|version| tls_version_name(&format!("{version:?}")));
    let capabilities = client.ehlo(outgoing.helo).await.map_err(|error| Failure {
        tls: tls.clone(),
        ..Failure::at(Step::Ehlo, error)
    })?;
    if let Some(credentials) = credentials {
        let login = mail_send::Credentials::new(
            credentials.username.as_str(),
            credentials.password.as_str(),
        );
        client
            .authenticate(&login, &capabilities)
            .await
            .map_err(|error| Failure {
                tls: tls.clone(),
                ..Failure::at(Step::Auth, error)
            })?;
    }
    transaction(client, outgoing, tls).await
}

/// A reply's text as the server sent it: the enhanced status code (which the parser takes
/// apart from the text) in front, when there is one, the lines joined with a space.
fn reply_text(esc: [u8; 3], message: &str) -> String {
    let message = message.replace(['\r', '\n'], " ");
    match esc {
        [0, 0, 0] => message,
        [class, subject, detail] => format!("{class}.{subject}.{detail} {message}"),
    }
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
) -> Result<Delivered, Failure> {
    let failed = |step: Step| {
        let tls = tls.clone();
        move |error| Failure {
            tls,
            ..Failure::at(step, error)
        }
    };
    let no_parameters = mail_send::smtp::message::Parameters::default();
    client
        .mail_from(outgoing.mail_from, &no_parameters)
        .await
        .map_err(failed(Step::MailFrom))?;
    for recipient in outgoing.recipients {
        client
            .rcpt_to(recipient, &no_parameters)
            .await
            .map_err(failed(Step::RcptTo))?;
    }
    client
        .cmd(b"DATA\r\n")
        .await
        .and_then(|reply| reply.assert_code(354))
        .map_err(failed(Step::Data))?;
    let data = dot_stuffed(outgoing.message);
    let timeout = client.timeout;
    let written = tokio::time::timeout(timeout, async {
        client.stream.write_all(&data).await?;
        client.stream.flush().await
    })
    .await;
    match written {
        Ok(Ok(())) => {}
        Ok(Err(error)) => return Err(failed(Step::Data)(mail_send::Error::Io(error))),
        Err(_) => return Err(failed(Step::Data)(mail_send::Error::Timeout)),
    }
    let reply = tokio::time::timeout(timeout, client.read())
        .await
        .unwrap_or(Err(mail_send::Error::Timeout))
        .and_then(|reply| {
            let shown = Reply {
                code: reply.code,
                text: reply_text(reply.esc, &reply.message),
            };
            reply.assert_positive_completion().map(|()| shown)
        })
        .map_err(failed(Step::Data))?;
    // The message is taken: a failed goodbye changes nothing.
    let _ = client.quit().await;
    Ok(Delivered { tls, reply })
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
    fn tls_versions_read_as_people_write_them() {
        assert_eq!(tls_version_name("TLSv1_3"), "TLSv1.3");
    }
}
