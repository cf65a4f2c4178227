//! One SMTP session: a state machine fed by one loop that reads bytes from the client,
//! handles every complete command (or message data) in the buffer, and flushes the queued
//! replies when the buffer is drained — which is what RFC 2920 PIPELINING asks of a server —
//! or sooner, once they reach [`MAX_QUEUED_REPLIES`].
//!
//! Each command has its own file, and each command handler has one signature: it takes the
//! session and the command's arguments, queues its reply, and returns the [`Step`] the loop
//! takes next. `finish` hands a complete message to the [`Delivery`].

mod basic;
mod bdat;
mod data;
mod dot;
mod finish;
mod hello;
mod mail;
mod rcpt;
mod starttls;
mod stream;
mod transaction;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::{Buf, BytesMut};
use smtp_proto::{Error as ParseError, Request};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;
use tokio::time::timeout;

use crate::config::{
    CLOSE_TIMEOUT, MAX_QUEUED_REPLIES, MIN_DATA_PER_TIMEOUT, READ_CHUNK, SmtpConfig,
};
use crate::delivery::{Delivery, TlsInfo};
use crate::listener::Shared;
use crate::replies::{self, Reply};
use crate::transcript::{SessionEnding, Transcript};
use dot::DotDecoder;
pub(crate) use stream::Stream;
use transaction::Transaction;

/// Where the session stands, and so what the next bytes from the client mean.
enum State {
    /// Waiting for EHLO or HELO (at the start, and again after STARTTLS).
    Connected,
    /// Greeted, no transaction open.
    Idle,
    /// MAIL FROM accepted: RCPT TO, DATA or BDAT may follow.
    Transaction(Transaction),
    /// After DATA's 354: message bytes up to `CRLF.CRLF`.
    Data(Transaction, DotDecoder),
    /// Inside a BDAT chunk: `remaining` bytes of message still to come.
    Chunk {
        transaction: Transaction,
        size: usize,
        remaining: usize,
        last: bool,
    },
    /// Inside a BDAT chunk that was refused (the refusal is already queued): its bytes are
    /// read and dropped, then the session goes back to `resume`.
    RefusedChunk {
        remaining: usize,
        resume: Box<State>,
    },
}

/// What the loop does once the buffered input has been handled.
enum Next {
    ReadMore,
    /// The queued replies reached [`MAX_QUEUED_REPLIES`]: send them before handling the rest
    /// of the buffer.
    Flush,
    StartTls,
    Close(SessionEnding),
}

/// The result of handling one unit of input; what every command handler returns.
enum Step {
    /// Handle the next unit in the buffer.
    Continue,
    /// The buffer holds no complete unit.
    NeedInput,
    Stop(Next),
}

#[derive(Debug, thiserror::Error)]
enum SessionError {
    #[error("connection error: {0}")]
    Io(#[from] std::io::Error),
    #[error("the client did not read our replies within the command timeout")]
    WriteTimeout,
    #[error("TLS handshake failed: {0}")]
    TlsHandshake(std::io::Error),
    #[error("the TLS handshake did not finish within the command timeout")]
    TlsTimeout,
}

impl SessionError {
    /// The client went away without QUIT (a reset, a closed socket): ordinary traffic, as
    /// from port checks and load balancer probes that connect and close at once.
    fn is_client_gone(&self) -> bool {
        use std::io::ErrorKind;
        matches!(
            self,
            SessionError::Io(error) if matches!(
                error.kind(),
                ErrorKind::BrokenPipe
                    | ErrorKind::ConnectionReset
                    | ErrorKind::ConnectionAborted
                    | ErrorKind::UnexpectedEof
            )
        )
    }
}

pub(crate) struct Session<D> {
    config: Arc<SmtpConfig>,
    delivery: Arc<D>,
    shared: Arc<Shared>,
    stream: Stream,
    client: SocketAddr,
    input: BytesMut,
    output: Vec<u8>,
    state: State,
    /// The name given in EHLO or HELO.
    helo: Option<String>,
    tls: Option<TlsInfo>,
    bad_commands: usize,
    /// The refusal of a BDAT chunk that ended its transaction (552 size, 452 memory budget).
    /// RFC 3030 section 2 has the server discard the chunks the client had already pipelined
    /// behind it: they get the same reply, not counted as bad commands, until another command.
    chunking_refused: Option<Reply>,
    /// Set after a too-long line was answered: the rest of it, up to LF, is dropped.
    skipping_long_line: bool,
    shutdown: watch::Receiver<bool>,
    started: Instant,
    /// When the client last completed a command line, sent message bytes, or got the reply
    /// to its message. The command timeout counts from here rather than from the last read,
    /// so a command trickled in a byte at a time cannot hold a connection slot for ever.
    waiting_since: Instant,
    /// Message bytes received since `waiting_since` last moved for data.
    data_since_wait: usize,
    messages_stored: usize,
    commands: usize,
    transcript: Transcript,
}

impl<D: Delivery> Session<D> {
    pub(crate) fn new(
        stream: Stream,
        client: SocketAddr,
        config: Arc<SmtpConfig>,
        delivery: Arc<D>,
        shared: Arc<Shared>,
        shutdown: watch::Receiver<bool>,
    ) -> Self {
        Session {
            config,
            delivery,
            shared,
            stream,
            client,
            input: BytesMut::with_capacity(READ_CHUNK),
            output: Vec::new(),
            state: State::Connected,
            helo: None,
            tls: None,
            bad_commands: 0,
            chunking_refused: None,
            skipping_long_line: false,
            shutdown,
            started: Instant::now(),
            waiting_since: Instant::now(),
            data_since_wait: 0,
            messages_stored: 0,
            commands: 0,
            transcript: Transcript::new(),
        }
    }

    /// Runs the session to its end and closes the connection.
    pub(crate) async fn run(mut self) {
        let ending = self.serve().await;
        // Client text, escaped so it cannot forge log lines or reach a terminal raw.
        let helo = self
            .helo
            .as_deref()
            .unwrap_or("")
            .escape_debug()
            .to_string();
        let seconds = self.started.elapsed().as_secs_f64();
        match &ending {
            // Each message's outcome has its own info line; a session that stored no message,
            // or ends otherwise than by the client, deserves one too.
            Ok(ending) if ending.by_client() && self.messages_stored > 0 => tracing::debug!(
                client = %self.client,
                %helo,
                messages = self.messages_stored,
                seconds,
                reason = %ending,
                "session ended"
            ),
            Ok(ending) => tracing::info!(
                client = %self.client, %helo, messages = self.messages_stored, seconds, reason = %ending, "session ended"
            ),
            Err(error) if error.is_client_gone() && self.commands == 0 => tracing::debug!(
                client = %self.client, seconds, %error, "the client closed the connection before sending a command"
            ),
            Err(error) if error.is_client_gone() => tracing::info!(
                client = %self.client, %helo, messages = self.messages_stored, seconds, %error, "the client closed the connection"
            ),
            Err(error) => tracing::warn!(
                client = %self.client, %helo, messages = self.messages_stored, seconds, %error, "session ended with an error"
            ),
        }
        let _ = timeout(CLOSE_TIMEOUT, self.stream.shutdown()).await;
        let ending = match &ending {
            Ok(ending) => *ending,
            Err(SessionError::TlsHandshake(_) | SessionError::TlsTimeout) => {
                SessionEnding::TlsFailed
            }
            Err(error) if error.is_client_gone() => SessionEnding::ClientClosed,
            Err(_) => SessionEnding::ConnectionError,
        };
        let transcript = std::mem::replace(&mut self.transcript, Transcript::new());
        let record = transcript.finish(self.client, self.helo.take(), self.tls.take(), ending);
        self.delivery.session_ended(record);
    }

    async fn serve(&mut self) -> Result<SessionEnding, SessionError> {
        self.transcript.prompt("connect");
        self.push(&replies::greeting(&self.config.hostname));
        let deadline = self.started + self.config.session_timeout;
        loop {
            match self.process_input().await {
                Next::ReadMore => self.flush().await?,
                Next::Flush => {
                    self.flush().await?;
                    continue;
                }
                Next::Close(reason) => {
                    self.flush().await?;
                    return Ok(reason);
                }
                Next::StartTls => {
                    self.flush().await?;
                    self.start_tls().await?;
                    self.waiting_since = Instant::now();
                    continue;
                }
            }

            let left = deadline.saturating_duration_since(Instant::now());
            // Checked before reading too, so a client that always has more to send is still cut off.
            if left.is_zero() {
                self.transcript.prompt("session time limit");
                self.push(&replies::session_too_long(&self.config.hostname));
                self.flush().await?;
                return Ok(SessionEnding::SessionTimeLimit);
            }
            let command_deadline = self.waiting_since + self.config.command_timeout;
            let command_left = command_deadline.saturating_duration_since(Instant::now());
            // A read that always has a byte ready would never let the timeout below fire.
            if command_left.is_zero() {
                self.transcript.prompt("timeout");
                self.push(&replies::command_timeout(&self.config.hostname));
                self.flush().await?;
                return Ok(SessionEnding::CommandTimeout);
            }
            let wait = left.min(command_left);
            // At shutdown, a session waiting for a command is closed; one receiving a message
            // is left to finish it (within the listener's grace period). Between BDAT chunks
            // the message is still being received.
            let between_messages = match &self.state {
                State::Connected | State::Idle => true,
                State::Transaction(transaction) => !transaction.chunking,
                State::Data(..) | State::Chunk { .. } | State::RefusedChunk { .. } => false,
            };
            self.input.reserve(READ_CHUNK);
            let shutdown = &mut self.shutdown;
            let read = tokio::select! {
                _ = shutdown.wait_for(|stop| *stop), if between_messages => None,
                read = timeout(wait, self.stream.read_buf(&mut self.input)) => Some(read),
            };
            match read {
                None => {
                    self.transcript.prompt("shutdown");
                    self.push(&replies::shutting_down(&self.config.hostname));
                    self.flush().await?;
                    return Ok(SessionEnding::Shutdown);
                }
                Some(Ok(Ok(0))) => return Ok(SessionEnding::ClientClosed),
                Some(Ok(Ok(_))) => {}
                Some(Ok(Err(error))) => return Err(error.into()),
                Some(Err(_elapsed)) if Instant::now() >= deadline => {
                    self.transcript.prompt("session time limit");
                    self.push(&replies::session_too_long(&self.config.hostname));
                    self.flush().await?;
                    return Ok(SessionEnding::SessionTimeLimit);
                }
                Some(Err(_elapsed)) => {
                    self.transcript.prompt("timeout");
                    self.push(&replies::command_timeout(&self.config.hostname));
                    self.flush().await?;
                    return Ok(SessionEnding::CommandTimeout);
                }
            }
        }
    }

    /// Handles every complete command and all message data in the input buffer.
    async fn process_input(&mut self) -> Next {
        loop {
            let step = match &mut self.state {
                State::Data(transaction, decoder) => {
                    let decoded =
                        decoder.decode(&self.input, |bytes| transaction.body.append(bytes));
                    self.input.advance(decoded.consumed);
                    note_data(
                        &mut self.waiting_since,
                        &mut self.data_since_wait,
                        decoded.consumed,
                    );
                    if decoded.finished {
                        self.end_of_message().await
                    } else {
                        Step::NeedInput
                    }
                }
                State::Chunk {
                    transaction,
                    size,
                    remaining,
                    last,
                } => {
                    let available = (*remaining).min(self.input.len());
                    transaction.body.append(&self.input[..available]);
                    self.input.advance(available);
                    note_data(
                        &mut self.waiting_since,
                        &mut self.data_since_wait,
                        available,
                    );
                    *remaining -= available;
                    match (*remaining, *last, *size) {
                        (0, true, _) => self.end_of_message().await,
                        (0, false, size) => self.end_of_chunk(size),
                        _ => Step::NeedInput,
                    }
                }
                State::RefusedChunk { remaining, .. } => {
                    let available = (*remaining).min(self.input.len());
                    self.input.advance(available);
                    note_data(
                        &mut self.waiting_since,
                        &mut self.data_since_wait,
                        available,
                    );
                    *remaining -= available;
                    if *remaining == 0 {
                        self.end_of_refused_chunk()
                    } else {
                        Step::NeedInput
                    }
                }
                State::Connected | State::Idle | State::Transaction(_) => self.next_command().await,
            };
            match step {
                Step::Continue if self.output.len() >= MAX_QUEUED_REPLIES => return Next::Flush,
                Step::Continue => {}
                Step::NeedInput => return Next::ReadMore,
                Step::Stop(next) => return next,
            }
        }
    }

    /// Takes one command line from the buffer and handles it.
    async fn next_command(&mut self) -> Step {
        let Some(newline) = self.input.iter().position(|&b| b == b'\n') else {
            if self.skipping_long_line {
                self.input.clear();
            } else if self.input.len() >= self.config.max_line_length {
                self.input.clear();
                self.transcript.prompt("line too long");
                self.skipping_long_line = true;
                return self.command_reply(replies::LINE_TOO_LONG);
            }
            return Step::NeedInput;
        };
        let line = self.input.split_to(newline + 1);
        self.waiting_since = Instant::now();
        self.commands += 1;
        if std::mem::take(&mut self.skipping_long_line) {
            return Step::Continue;
        }
        if line.len() > self.config.max_line_length {
            self.transcript.prompt("line too long");
            return self.command_reply(replies::LINE_TOO_LONG);
        }
        self.transcript.command(&line);
        self.handle_command(&line).await
    }

    async fn handle_command(&mut self, line: &[u8]) -> Step {
        let request = Request::parse(&mut line.iter());
        if !matches!(request, Ok(Request::Bdat { .. })) {
            // The client has stopped sending chunks: a later BDAT is its own mistake.
            self.chunking_refused = None;
        }
        if let Some(command) = envelope_command(line)
            && has_control_characters(line)
        {
            return self.command_reply(replies::control_characters(command));
        }
        match request {
            Ok(Request::Ehlo { host }) => self.ehlo(&host),
            Ok(Request::Helo { host }) => self.helo(&host),
            Ok(Request::Mail { from }) => self.mail(&from, line),
            Ok(Request::Rcpt { to }) => self.rcpt(line, Some(&to)).await,
            // smtp-proto refuses address literals here, which must be answered as relaying.
            Err(ParseError::InvalidRecipientAddress) => self.rcpt(line, None).await,
            Ok(Request::Data) => self.data(),
            Ok(Request::Bdat {
                chunk_size,
                is_last,
            }) => self.bdat(chunk_size, is_last),
            Ok(Request::StartTls) => self.starttls(),
            Ok(Request::Rset) => self.rset(),
            Ok(Request::Noop { .. }) => self.command_reply(replies::OK),
            Ok(Request::Vrfy { .. }) => self.command_reply(replies::CANNOT_VERIFY),
            Ok(Request::Help { .. }) => self.command_reply(replies::HELP),
            Ok(Request::Quit) => self.quit(),
            Ok(
                Request::Lhlo { .. }
                | Request::Auth { .. }
                | Request::Expn { .. }
                | Request::Etrn { .. }
                | Request::Atrn { .. }
                | Request::Burl { .. },
            ) => self.command_reply(replies::NOT_IMPLEMENTED),
            Err(error) => {
                let reply = match error {
                    ParseError::SyntaxError { syntax } => replies::syntax_error(syntax),
                    ParseError::InvalidSenderAddress => {
                        replies::syntax_error("MAIL FROM:<reverse-path> [parameters]")
                    }
                    ParseError::InvalidParameter { param } => {
                        replies::syntax_error(&format!("a valid {param} value"))
                    }
                    ParseError::UnsupportedParameter { param } => {
                        replies::unsupported_parameter(&param)
                    }
                    _ => replies::UNKNOWN_COMMAND,
                };
                self.command_reply(reply)
            }
        }
    }

    /// Queues the reply to a command. Refusals are counted, and one too many ends the session.
    fn command_reply(&mut self, reply: Reply) -> Step {
        if reply.is_refusal() {
            self.bad_commands += 1;
            if self.bad_commands > self.config.max_bad_commands {
                tracing::warn!(client = %self.client, last = reply.text(), "too many refused commands; disconnecting");
                self.push(&replies::TOO_MANY_ERRORS);
                return Step::Stop(Next::Close(SessionEnding::TooManyErrors));
            }
        }
        self.push(&reply);
        Step::Continue
    }

    fn push(&mut self, reply: &Reply) {
        replies::count(reply);
        self.transcript.reply(reply);
        self.output.extend_from_slice(reply.as_bytes());
    }

    /// Sends the queued replies.
    async fn flush(&mut self) -> Result<(), SessionError> {
        if self.output.is_empty() {
            return Ok(());
        }
        let (stream, output) = (&mut self.stream, &self.output);
        let write = async {
            stream.write_all(output).await?;
            stream.flush().await
        };
        timeout(self.config.command_timeout, write)
            .await
            .map_err(|_| SessionError::WriteTimeout)??;
        self.output.clear();
        Ok(())
    }

    /// Ends the open transaction, if any, and returns it.
    fn take_transaction(&mut self) -> Option<Transaction> {
        match std::mem::replace(&mut self.state, State::Idle) {
            State::Transaction(transaction)
            | State::Data(transaction, _)
            | State::Chunk { transaction, .. } => Some(transaction),
            other => {
                self.state = other;
                None
            }
        }
    }

    /// The refusal for DATA or BDAT when no transaction with recipients is open.
    fn no_message_expected(&self) -> Reply {
        match &self.state {
            State::Connected => replies::HELLO_FIRST,
            State::Transaction(transaction) if transaction.recipients.is_empty() => {
                replies::NO_VALID_RECIPIENTS
            }
            _ => replies::MAIL_FIRST,
        }
    }
}

/// The commands whose arguments (a host name, an address) are kept and logged, by name.
fn envelope_command(line: &[u8]) -> Option<&'static str> {
    let verb = line.get(..4)?;
    ["HELO", "EHLO", "MAIL", "RCPT"]
        .into_iter()
        .find(|name| verb.eq_ignore_ascii_case(name.as_bytes()))
}

/// Whether a command line holds a control character (C0, DEL or C1) before its line end.
fn has_control_characters(line: &[u8]) -> bool {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    String::from_utf8_lossy(line).chars().any(char::is_control)
}

/// Message data counts as progress (moves `waiting_since`) once a whole
/// [`MIN_DATA_PER_TIMEOUT`] has arrived, so a message trickled in a byte at a time is cut off by
/// the command timeout. (Free-standing so it can borrow two fields while the state is borrowed.)
fn note_data(waiting_since: &mut Instant, data_since_wait: &mut usize, bytes: usize) {
    *data_since_wait += bytes;
    if *data_since_wait >= MIN_DATA_PER_TIMEOUT {
        *data_since_wait = 0;
        *waiting_since = Instant::now();
    }
}
