//! Property-based fuzzing of the SMTP session over real TCP: whatever a client sends, the
//! listener never panics, answers only with well-formed replies and then closes (or keeps
//! waiting for input it is entitled to wait for, until its command timeout), and never hands
//! over a message larger than `max_message_size` or with more than `max_recipients`.
//!
//! Two input shapes are tried: arbitrary bytes, and sequences drawn from a grammar of
//! plausible commands (EHLO, MAIL, RCPT, DATA and its body, BDAT with its chunk, RSET…) with
//! garbage, NUL bytes, over-long lines and odd line endings mixed in.
//!
//! The case count comes from `PROPTEST_CASES` (default 64 per target, a few seconds). To fuzz
//! for longer:
//!
//! ```sh
//! PROPTEST_CASES=100000 cargo test -p authcheck-smtp --test fuzz_session -- --nocapture
//! ```

mod common;

use std::sync::Once;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::{DOMAIN, Server, start};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The cases run per target when `PROPTEST_CASES` is not set.
const DEFAULT_CASES: u32 = 64;
/// Small limits, so that random input reaches them often.
const MAX_MESSAGE_SIZE: usize = 2048;
const MAX_LINE_LENGTH: usize = 512;
const MAX_RECIPIENTS: usize = 3;
/// Short, so a session left waiting for chunk bytes ends quickly with its 421.
const COMMAND_TIMEOUT: Duration = Duration::from_millis(500);
/// How long one case may take before it counts as a hang: well past the command timeout.
const CASE_PATIENCE: Duration = Duration::from_secs(10);

/// Panics anywhere in the process (session tasks included) since the hook was installed.
static PANICS: AtomicUsize = AtomicUsize::new(0);

fn count_panics() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let default_hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            PANICS.fetch_add(1, Ordering::SeqCst);
            default_hook(info);
        }));
    });
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(DEFAULT_CASES)
}

/// Starts a listener with small limits on a runtime of its own.
fn fuzz_server() -> (tokio::runtime::Runtime, Server) {
    count_panics();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let server = runtime.block_on(start(|config| {
        config.max_message_size = MAX_MESSAGE_SIZE;
        config.max_line_length = MAX_LINE_LENGTH;
        config.max_recipients = MAX_RECIPIENTS;
        config.command_timeout = COMMAND_TIMEOUT;
    }));
    (runtime, server)
}

/// What the server sent, and whether the connection ended with a reset rather than a close.
struct Received {
    bytes: Vec<u8>,
    reset: bool,
}

/// Sends `input` in `pieces` writes, half-closes, and returns everything the server sent
/// until it closed the connection.
async fn converse(server: &Server, input: &[u8], pieces: usize) -> Result<Received, String> {
    let stream = TcpStream::connect(server.addr)
        .await
        .map_err(|e| e.to_string())?;
    let (mut read, mut write) = stream.into_split();
    let reader = tokio::spawn(async move {
        let mut bytes = Vec::new();
        // The server closing with our bytes unread (after QUIT, say) resets the connection,
        // and the kernel may then drop replies not yet read.
        let reset = read.read_to_end(&mut bytes).await.is_err();
        Received { bytes, reset }
    });
    let piece = input.len().div_ceil(pieces.max(1)).max(1);
    for chunk in input.chunks(piece) {
        // The server may close first (QUIT, too many errors): the rest is then unsent.
        if write.write_all(chunk).await.is_err() {
            break;
        }
    }
    let _ = write.shutdown().await;
    match tokio::time::timeout(CASE_PATIENCE, reader).await {
        Ok(received) => Ok(received.map_err(|e| e.to_string())?),
        Err(_) => Err(format!(
            "the server neither replied nor closed within {CASE_PATIENCE:?}"
        )),
    }
}

/// Every line is `ddd SP text` or `ddd - text` ending in CRLF with no other CR or LF in it,
/// the first is the greeting and the last one is final. After a reset only the lines that
/// arrived whole are checked.
fn check_replies(received: &Received) -> Result<(), TestCaseError> {
    let Received { bytes, reset } = received;
    let complete = match bytes.windows(2).rposition(|w| w == b"\r\n") {
        Some(end) if *reset => &bytes[..end + 2],
        None if *reset => return Ok(()),
        _ => &bytes[..],
    };
    check_lines(complete, !reset)
}

fn check_lines(received: &[u8], closed_cleanly: bool) -> Result<(), TestCaseError> {
    if received.is_empty() {
        return Err(TestCaseError::fail("no greeting: the server sent nothing"));
    }
    prop_assert!(
        received.ends_with(b"\r\n"),
        "the output ends mid-line: {:?}",
        String::from_utf8_lossy(&received[received.len().saturating_sub(200)..])
    );
    let text = String::from_utf8_lossy(received);
    let lines: Vec<&str> = text.split_terminator("\r\n").collect();
    for line in &lines {
        let bytes = line.as_bytes();
        prop_assert!(
            bytes.len() >= 4
                && bytes[..3].iter().all(u8::is_ascii_digit)
                && matches!(bytes[3], b' ' | b'-')
                && (b'2'..=b'5').contains(&bytes[0])
                && !line.contains(['\r', '\n']),
            "malformed reply line {line:?}"
        );
    }
    prop_assert!(lines[0].starts_with("220"), "greeting {:?}", lines[0]);
    if closed_cleanly {
        let last = lines.last().expect("at least the greeting");
        prop_assert_eq!(last.as_bytes()[3], b' ', "unfinished reply {:?}", last);
    }
    Ok(())
}

/// Runs one case and checks every property.
fn run_case(
    runtime: &tokio::runtime::Runtime,
    server: &Server,
    input: &[u8],
    pieces: usize,
    delivered_so_far: &AtomicUsize,
) -> Result<(), TestCaseError> {
    let panics_before = PANICS.load(Ordering::SeqCst);
    let received = runtime
        .block_on(converse(server, input, pieces))
        .map_err(TestCaseError::fail)?;
    check_replies(&received)?;
    prop_assert_eq!(
        PANICS.load(Ordering::SeqCst),
        panics_before,
        "a session panicked"
    );
    // Taken out as checked, so that each case looks only at its own messages.
    let delivered = std::mem::take(&mut *server.delivery.delivered.lock().unwrap());
    delivered_so_far.fetch_add(delivered.len(), Ordering::SeqCst);
    for (envelope, message) in delivered {
        prop_assert!(
            message.len() <= MAX_MESSAGE_SIZE,
            "a {}-byte message was delivered past the {MAX_MESSAGE_SIZE}-byte limit",
            message.len()
        );
        prop_assert!(!envelope.recipients.is_empty());
        prop_assert!(envelope.recipients.len() <= MAX_RECIPIENTS);
    }
    Ok(())
}

/// Runs `strategy` for `cases()` cases against one listener and reports how many ran.
fn fuzz<S>(name: &str, strategy: S)
where
    S: Strategy<Value = (Vec<u8>, usize)>,
{
    let (runtime, server) = fuzz_server();
    let runs = AtomicUsize::new(0);
    let delivered = AtomicUsize::new(0);
    let mut runner = TestRunner::new(Config {
        cases: cases(),
        failure_persistence: None,
        ..Config::default()
    });
    let started = std::time::Instant::now();
    let outcome = runner.run(&strategy, |(input, pieces)| {
        runs.fetch_add(1, Ordering::SeqCst);
        run_case(&runtime, &server, &input, pieces, &delivered)
    });
    let delivered = delivered.load(Ordering::SeqCst);
    println!(
        "{name}: {} executions ({} cases) in {:.1?}; {delivered} messages delivered",
        runs.load(Ordering::SeqCst),
        cases(),
        started.elapsed()
    );
    if let Err(failure) = outcome {
        panic!("{name}: {failure}");
    }
    runtime.block_on(server.stop());
}

#[test]
fn arbitrary_bytes_never_break_the_session() {
    let input = proptest::collection::vec(any::<u8>(), 0..4096);
    fuzz("arbitrary bytes", (input, 1usize..8));
}

/// One element of a plausible SMTP conversation, as bytes.
fn element() -> impl Strategy<Value = Vec<u8>> {
    let recipient = prop_oneof![
        Just(format!("spf@{DOMAIN}")),
        Just(format!("dkim+tag@{DOMAIN}")),
        Just(format!("SPF@{}", DOMAIN.to_uppercase())),
        Just("dkim@second.test".to_string()),
        Just("spf@other.example".to_string()),
        Just(format!("@relay.example:spf@{DOMAIN}")),
        Just(format!("\"spf@other\"@{DOMAIN}")),
        Just("spf@[127.0.0.1]".to_string()),
        Just(format!("nobody@{DOMAIN}")),
        "[ -~]{0,40}",
    ];
    let command = prop_oneof![
        Just("EHLO client.example".to_string()),
        Just("HELO client.example".to_string()),
        Just("EHLO".to_string()),
        Just("MAIL FROM:<sender@example.com>".to_string()),
        Just("MAIL FROM:<>".to_string()),
        (0usize..5000).prop_map(|size| format!("MAIL FROM:<a@example.com> SIZE={size}")),
        Just("MAIL FROM:<a@example.com> BODY=8BITMIME SMTPUTF8".to_string()),
        recipient.prop_map(|to| format!("RCPT TO:<{to}>")),
        Just("DATA".to_string()),
        Just("RSET".to_string()),
        Just("NOOP".to_string()),
        Just("HELP".to_string()),
        Just("VRFY spf".to_string()),
        Just("STARTTLS".to_string()),
        Just("AUTH PLAIN AGFiYwBkZWY=".to_string()),
        Just("QUIT".to_string()),
        Just(".".to_string()),
        Just("..".to_string()),
        "[ -~]{0,80}",
    ];
    let line_end = prop_oneof![
        6 => Just(&b"\r\n"[..]),
        1 => Just(&b"\n"[..]),
        1 => Just(&b"\r"[..]),
        1 => Just(&b""[..]),
    ];
    prop_oneof![
        8 => (command, line_end).prop_map(|(command, end)| [command.as_bytes(), end].concat()),
        // A BDAT chunk with a payload that may be shorter or longer than announced.
        2 => (0usize..300, any::<bool>(), proptest::collection::vec(any::<u8>(), 0..300)).prop_map(
            |(size, last, payload)| {
                let last = if last { " LAST" } else { "" };
                [format!("BDAT {size}{last}\r\n").as_bytes(), &payload].concat()
            }
        ),
        2 => proptest::collection::vec(any::<u8>(), 0..200),
        1 => (MAX_LINE_LENGTH - 4..MAX_LINE_LENGTH * 3, any::<u8>())
            .prop_map(|(length, byte)| [vec![byte; length], b"\r\n".to_vec()].concat()),
        1 => Just(b"\0\0\0\r\n".to_vec()),
        1 => Just(b"\r\n.\r\n".to_vec()),
        1 => (1usize..4).prop_map(|lines| b"Subject: x\r\n\r\nbody line\r\n".repeat(lines)),
        1 => Just(b"x".repeat(MAX_MESSAGE_SIZE + 10)),
    ]
}

/// A whole transaction, so that messages (some over the size limit, some with garbage in the
/// body) are actually delivered or refused.
fn transaction() -> impl Strategy<Value = Vec<u8>> {
    let body = proptest::collection::vec(any::<u8>(), 0..MAX_MESSAGE_SIZE + 512);
    (1usize..=MAX_RECIPIENTS + 2, body, any::<bool>()).prop_map(|(recipients, body, chunked)| {
        let mut out = b"EHLO client.example\r\nMAIL FROM:<sender@example.com>\r\n".to_vec();
        for n in 0..recipients {
            out.extend_from_slice(format!("RCPT TO:<spf+{n}@{DOMAIN}>\r\n").as_bytes());
        }
        if chunked {
            out.extend_from_slice(format!("BDAT {} LAST\r\n", body.len()).as_bytes());
            out.extend_from_slice(&body);
        } else {
            out.extend_from_slice(b"DATA\r\n");
            out.extend_from_slice(&body);
            out.extend_from_slice(b"\r\n.\r\n");
        }
        out
    })
}

#[test]
fn plausible_commands_with_garbage_never_break_the_session() {
    let part = prop_oneof![4 => element(), 1 => transaction()];
    let conversation = proptest::collection::vec(part, 0..40).prop_map(|parts| parts.concat());
    fuzz("command grammar", (conversation, 1usize..8));
}
