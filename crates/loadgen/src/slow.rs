//! The memory-budget run (`--slow-senders N`): N connections each send one large message
//! slowly, all at once, so that without a total budget the service would hold N messages in
//! memory. Counts the final replies by code (250 stored, 452 over the budget) and leaves the
//! memory figures to the caller, which samples the service while this runs.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::net::tcp::OwnedReadHalf;
use tokio::task::JoinSet;

use crate::client::ClientSettings;

/// Bytes written at a time; the pause between writes spreads the message over the send time.
const PIECE: usize = 64 * 1024;
/// How long the reply to the end of a large message may take: the service verifies it first,
/// while hundreds of others arrive.
const FINAL_REPLY_TIMEOUT: Duration = Duration::from_secs(300);

/// The final replies (or the failing step) of every session, counted.
#[derive(Debug, Default)]
pub struct SlowOutcome {
    /// Reply code of the step that ended each session's transaction, with the step's name:
    /// `end of data 250`, `end of data 452`, `MAIL 452`…
    pub outcomes: BTreeMap<String, u64>,
}

impl SlowOutcome {
    /// Sessions that ended in anything but a 250 to their message or a 4xx (over a limit).
    pub fn failures(&self) -> u64 {
        self.outcomes
            .iter()
            .filter(|(outcome, _)| !outcome.ends_with(" 250") && !outcome.contains(" 4"))
            .map(|(_, count)| count)
            .sum()
    }

    pub fn summary(&self) -> String {
        let parts: Vec<String> = self
            .outcomes
            .iter()
            .map(|(outcome, count)| format!("{outcome}: {count}"))
            .collect();
        parts.join(", ")
    }
}

/// Runs `connections` sessions at once, each sending `settings.data` over `send_time`.
pub async fn run_slow_senders(
    addr: SocketAddr,
    connections: usize,
    settings: Arc<ClientSettings>,
    send_time: Duration,
) -> SlowOutcome {
    let mut sessions = JoinSet::new();
    for _ in 0..connections {
        let settings = settings.clone();
        sessions.spawn(async move { slow_session(addr, &settings, send_time).await });
    }
    let mut outcome = SlowOutcome::default();
    while let Some(result) = sessions.join_next().await {
        let key = match result {
            Ok(Ok(key)) | Ok(Err(key)) => key,
            Err(error) => format!("client task failed: {error}"),
        };
        *outcome.outcomes.entry(key).or_default() += 1;
    }
    outcome
}

/// One session; returns the step and reply code that ended it.
async fn slow_session(
    addr: SocketAddr,
    settings: &ClientSettings,
    send_time: Duration,
) -> Result<String, String> {
    let wait = settings.reply_timeout;
    let stream = tokio::time::timeout(wait, TcpStream::connect(addr))
        .await
        .map_err(|_| "connect timeout".to_string())?
        .map_err(|e| format!("connect: {}", e.kind()))?;
    let _ = stream.set_nodelay(true);
    let (read, mut write) = stream.into_split();
    let mut replies = BufReader::new(read);
    expect(&mut replies, "greeting", 220, wait).await?;
    let commands = [
        (format!("EHLO {}\r\n", settings.helo), "EHLO", 250),
        (
            format!("MAIL FROM:<{}>\r\n", settings.mail_from),
            "MAIL",
            250,
        ),
        (format!("RCPT TO:<{}>\r\n", settings.rcpt_to), "RCPT", 250),
        ("DATA\r\n".to_string(), "DATA", 354),
    ];
    for (line, step, code) in commands {
        send(&mut write, line.as_bytes()).await?;
        expect(&mut replies, step, code, wait).await?;
    }
    let pieces = settings.data.chunks(PIECE);
    let pause = send_time / (pieces.len().max(1) as u32);
    for piece in pieces {
        send(&mut write, piece).await?;
        tokio::time::sleep(pause).await;
    }
    send(&mut write, b".\r\n").await?;
    let code = read_reply(&mut replies, FINAL_REPLY_TIMEOUT)
        .await
        .map_err(|e| format!("end of data: {e}"))?;
    let _ = write.write_all(b"QUIT\r\n").await;
    Ok(format!("end of data {code}"))
}

async fn send(write: &mut tokio::net::tcp::OwnedWriteHalf, bytes: &[u8]) -> Result<(), String> {
    write
        .write_all(bytes)
        .await
        .map_err(|e| format!("write: {}", e.kind()))
}

async fn expect(
    replies: &mut BufReader<OwnedReadHalf>,
    step: &str,
    expected: u16,
    wait: Duration,
) -> Result<(), String> {
    match read_reply(replies, wait).await {
        Ok(code) if code == expected => Ok(()),
        Ok(code) => Err(format!("{step} {code}")),
        Err(error) => Err(format!("{step}: {error}")),
    }
}

/// Reads one whole reply and returns its code.
async fn read_reply(replies: &mut BufReader<OwnedReadHalf>, wait: Duration) -> Result<u16, String> {
    let read = async {
        // Bounded: a reply has at most a few dozen lines.
        for _ in 0..100 {
            let mut line = String::new();
            if replies
                .read_line(&mut line)
                .await
                .map_err(|e| e.kind().to_string())?
                == 0
            {
                return Err("connection closed".to_string());
            }
            let code = line
                .get(..3)
                .and_then(|code| code.parse::<u16>().ok())
                .ok_or_else(|| format!("not a reply: {:?}", line.trim_end()))?;
            if line.as_bytes().get(3) != Some(&b'-') {
                return Ok(code);
            }
        }
        Err("a reply of over 100 lines".to_string())
    };
    tokio::time::timeout(wait, read)
        .await
        .map_err(|_| "reply timeout".to_string())?
}
