//! Hostile clients through real SMTP: the memory budget shared by all sessions (the copies
//! delivery makes included), the rate limits per client and per sender domain (on a clock the test moves), control characters
//! in envelope commands, long echoed text, and BDAT chunks over the size limit.

mod common;

use std::sync::Arc;
use std::time::Duration;

use authcheck_smtp::{Accepted, Clock, Delivery, DeliveryError, Envelope, ManualClock};
use common::{Client, PATIENCE, RecordingDelivery, Server, message, start, start_with};
use tokio::net::TcpStream;
use tokio::sync::{Semaphore, mpsc};

const KIB: usize = 1024;

/// A body of exactly `size` bytes with CRLF line ends and no line starting with a dot.
fn body(size: usize) -> String {
    let line = format!("{}\r\n", "x".repeat(98));
    let mut body = line.repeat(size / line.len() + 1);
    body.truncate(size - 2);
    body.push_str("\r\n");
    body
}

/// What a client is told when the memory budget has no room for its message.
const BUSY: &str =
    "452 4.3.1 too many messages in progress on this server, try again in a few minutes";

/// A server whose sessions share `budget` bytes, without the message rate limit.
async fn start_with_budget(budget: usize) -> Server {
    start(|config| {
        config.max_memory_in_flight = budget;
        config.messages_per_client = 0;
    })
    .await
}

/// A client that has sent a BDAT chunk of `size` bytes, acknowledged, so the server certainly
/// holds it in memory until the client sends `BDAT 0 LAST`.
async fn holding_a_chunk(server: &Server, size: usize) -> Client<TcpStream> {
    let mut holder = server.greeted_client().await;
    holder
        .envelope("holder@example.com", &["spf@tester.example"])
        .await;
    holder.send(format!("BDAT {size}\r\n{}", body(size))).await;
    assert_eq!(
        holder.reply().await,
        format!("250 2.0.0 {size} bytes received")
    );
    holder
}

#[tokio::test]
async fn past_the_memory_budget_new_transactions_get_452_and_the_room_comes_back() {
    let server = start_with_budget(128 * KIB).await;
    // A chunk of exactly the budget, acknowledged, so the memory is certainly held.
    let mut holder = holding_a_chunk(&server, 128 * KIB).await;

    let mut other = server.greeted_client().await;
    assert_eq!(other.command("MAIL FROM:<other@example.com>").await, BUSY);

    // Finished and delivered, the holder's message gives its memory back.
    assert!(
        holder
            .command("BDAT 0 LAST")
            .await
            .starts_with("250 2.0.0 Stored as spf-1")
    );
    assert_eq!(
        other.command("MAIL FROM:<other@example.com>").await,
        "250 2.1.0 sender OK"
    );
    // A declared size the budget has no room for is refused at once.
    assert_eq!(other.command("RSET").await, "250 2.0.0 reset");
    assert_eq!(
        other
            .command(&format!("MAIL FROM:<other@example.com> SIZE={}", 200 * KIB))
            .await,
        BUSY
    );
}

#[tokio::test]
async fn a_message_that_outgrows_the_budget_is_refused_with_452_and_frees_its_memory() {
    let server = start_with_budget(128 * KIB).await;
    let mut holder = holding_a_chunk(&server, 60 * KIB).await;

    let mut other = server.greeted_client().await;
    // DATA: the message is read to its end, then refused; nothing is delivered.
    other
        .envelope("other@example.com", &["dkim@tester.example"])
        .await;
    other.command("DATA").await;
    other.send(format!("{}.\r\n", body(100 * KIB))).await;
    assert_eq!(other.reply().await, BUSY);
    // BDAT: refused before its bytes are read; they are skipped, not taken for commands.
    other
        .envelope("other@example.com", &["dkim@tester.example"])
        .await;
    other.send("BDAT 100000 LAST\r\n").await;
    assert_eq!(other.reply().await, BUSY);
    other.send(body(100_000)).await;
    assert_eq!(other.command("NOOP").await, "250 2.0.0 OK");
    assert_eq!(server.delivery.messages().len(), 0);

    // Once the holder is done, the same message fits.
    assert!(
        holder
            .command("BDAT 0 LAST")
            .await
            .starts_with("250 2.0.0 Stored")
    );
    other
        .envelope("other@example.com", &["dkim@tester.example"])
        .await;
    other.command("DATA").await;
    other.send(format!("{}.\r\n", body(100 * KIB))).await;
    assert!(
        other
            .reply()
            .await
            .starts_with("250 2.0.0 Stored as dkim-2")
    );
}

/// Holds every message in delivery until the test opens the gate, as a slow verifier or store
/// would, and says it makes two copies of each meanwhile.
struct HeldDelivery {
    /// The size of each message as its delivery starts.
    entered: mpsc::UnboundedSender<usize>,
    gate: Semaphore,
    recorded: RecordingDelivery,
}

impl Delivery for HeldDelivery {
    const COPIES_WHILE_DELIVERING: usize = 2;

    async fn deliver(
        &self,
        envelope: Envelope,
        message: Vec<u8>,
    ) -> Result<Vec<Accepted>, DeliveryError> {
        let _ = self.entered.send(message.len());
        self.gate
            .acquire()
            .await
            .expect("the gate is never closed")
            .forget();
        self.recorded.deliver(envelope, message).await
    }
}

#[tokio::test]
async fn the_copies_delivery_makes_count_against_the_budget_until_it_returns() {
    let (entered, mut deliveries) = mpsc::unbounded_channel();
    let delivery = Arc::new(HeldDelivery {
        entered,
        gate: Semaphore::new(0),
        recorded: RecordingDelivery::default(),
    });
    let server = start_with(
        |config| {
            config.max_memory_in_flight = 256 * KIB;
            config.messages_per_client = 0;
        },
        delivery.clone(),
    )
    .await;
    let mut delivery_started = async || {
        tokio::time::timeout(PATIENCE, deliveries.recv())
            .await
            .expect("a delivery starts in time")
            .unwrap()
    };

    // Two 20 KiB messages held in delivery, each holding its 64 KiB receive buffer and 40 KiB
    // for the copies: 48 KiB of the budget is left.
    let mut held = Vec::new();
    for n in 0..2 {
        let mut client = server.greeted_client().await;
        client
            .envelope(&format!("held{n}@example.com"), &["spf@tester.example"])
            .await;
        assert!(client.command("DATA").await.starts_with("354 "));
        client.send(format!("{}.\r\n", body(20 * KIB))).await;
        assert_eq!(delivery_started().await, 20 * KIB);
        held.push(client);
    }

    // 20 KiB more fits as received, but not with the 40 KiB its delivery would copy.
    let mut other = server.greeted_client().await;
    other
        .envelope("big@example.com", &["dkim@tester.example"])
        .await;
    assert!(other.command("DATA").await.starts_with("354 "));
    other.send(format!("{}.\r\n", body(20 * KIB))).await;
    assert_eq!(other.reply().await, BUSY);
    // 4 KiB and its 8 KiB of copies fit: it goes to delivery beside the two held ones.
    other
        .envelope("small@example.com", &["dkim@tester.example"])
        .await;
    assert!(other.command("DATA").await.starts_with("354 "));
    other.send(format!("{}.\r\n", body(4 * KIB))).await;
    assert_eq!(delivery_started().await, 4 * KIB);

    delivery.gate.add_permits(100);
    for client in &mut held {
        let reply = client.reply().await;
        assert!(reply.starts_with("250 2.0.0 Stored as spf-"), "{reply}");
    }
    let reply = other.reply().await;
    assert!(reply.starts_with("250 2.0.0 Stored as dkim-"), "{reply}");
    assert_eq!(delivery.recorded.messages().len(), 3);

    // Delivered, every message gave its room back: the refused one now goes through.
    other
        .envelope("big@example.com", &["dkim@tester.example"])
        .await;
    assert!(other.command("DATA").await.starts_with("354 "));
    other.send(format!("{}.\r\n", body(20 * KIB))).await;
    assert_eq!(delivery_started().await, 20 * KIB);
    let reply = other.reply().await;
    assert!(reply.starts_with("250 2.0.0 Stored as dkim-"), "{reply}");
    // A declared size counts with its copies: 3 × 100 KiB is over the budget, 3 × 80 KiB not.
    assert_eq!(
        other
            .command(&format!("MAIL FROM:<big@example.com> SIZE={}", 100 * KIB))
            .await,
        BUSY
    );
    assert_eq!(
        other
            .command(&format!("MAIL FROM:<big@example.com> SIZE={}", 80 * KIB))
            .await,
        "250 2.1.0 sender OK"
    );
}

#[tokio::test]
async fn past_the_client_rate_limit_mail_gets_450_until_the_window_moves_on() {
    let clock = Arc::new(ManualClock::new());
    let server = start(|config| {
        config.messages_per_client = 3;
        config.rate_window = Duration::from_secs(600);
        config.clock = clock.clone() as Arc<dyn Clock>;
    })
    .await;
    let mut client = server.greeted_client().await;
    for _ in 0..3 {
        assert_eq!(
            client.command("MAIL FROM:<a@example.com>").await,
            "250 2.1.0 sender OK"
        );
        client.command("RSET").await;
    }
    let limited =
        "450 4.7.1 too many messages from your address: at most 3 per 10 minutes, try again later";
    assert_eq!(client.command("MAIL FROM:<a@example.com>").await, limited);
    // Another connection from the same address is the same client.
    let mut again = server.greeted_client().await;
    assert_eq!(again.command("MAIL FROM:<b@other.test>").await, limited);

    // One message's share of the window later, one more message.
    clock.advance(Duration::from_secs(200));
    assert_eq!(
        client.command("MAIL FROM:<a@example.com>").await,
        "250 2.1.0 sender OK"
    );
    client.command("RSET").await;
    assert_eq!(client.command("MAIL FROM:<a@example.com>").await, limited);
    // The refusals were not errors that end the session.
    clock.advance(Duration::from_secs(600));
    client
        .envelope("a@example.com", &["spf@tester.example"])
        .await;
    client.command("DATA").await;
    client.send(format!("{}.\r\n", message("later"))).await;
    assert!(client.reply().await.starts_with("250 2.0.0 Stored"));
}

#[tokio::test]
async fn past_the_sender_domain_rate_limit_mail_gets_450_naming_the_domain() {
    let clock = Arc::new(ManualClock::new());
    let server = start(|config| {
        config.messages_per_client = 0;
        config.messages_per_sender_domain = 2;
        config.rate_window = Duration::from_secs(60);
        config.clock = clock.clone() as Arc<dyn Clock>;
    })
    .await;
    let mut client = server.greeted_client().await;
    for from in ["a@example.com", "b@EXAMPLE.com"] {
        assert_eq!(
            client.command(&format!("MAIL FROM:<{from}>")).await,
            "250 2.1.0 sender OK"
        );
        client.command("RSET").await;
    }
    assert_eq!(
        client.command("MAIL FROM:<c@Example.Com.>").await,
        "450 4.7.1 too many messages from senders at example.com: at most 2 per minute, try again later"
    );
    for other in ["MAIL FROM:<a@other.test>", "MAIL FROM:<>"] {
        assert_eq!(
            client.command(other).await,
            "250 2.1.0 sender OK",
            "{other}"
        );
        client.command("RSET").await;
    }
    clock.advance(Duration::from_secs(30));
    assert_eq!(
        client.command("MAIL FROM:<c@example.com>").await,
        "250 2.1.0 sender OK"
    );
}

#[tokio::test]
async fn envelope_commands_with_control_characters_get_501_5_5_2() {
    let server = start(|config| config.max_bad_commands = 100).await;
    let mut client = server.client().await;
    for (line, command) in [
        ("EHLO evil\x1b[2J.example", "EHLO"),
        ("HELO a\rb.example", "HELO"),
        ("helo a\x00b", "HELO"),
    ] {
        assert_eq!(
            client.command(line).await,
            format!("501 5.5.2 control characters are not allowed in {command}"),
            "{line:?}"
        );
    }
    assert!(
        client
            .command("EHLO client.example")
            .await
            .starts_with("250-")
    );
    for (line, command) in [
        ("MAIL FROM:<a\x07@example.com>", "MAIL"),
        ("MAIL FROM:<a@example.com>\tSIZE=10", "MAIL"),
        ("MAIL FROM:<a@example.com\u{85}>", "MAIL"),
    ] {
        assert_eq!(
            client.command(line).await,
            format!("501 5.5.2 control characters are not allowed in {command}"),
            "{line:?}"
        );
    }
    client
        .envelope("sender@example.com", &["spf@tester.example"])
        .await;
    for line in [
        "RCPT TO:<spf+a\rb@tester.example>",
        "RCPT TO:<dkim+\x1b[31m@tester.example>",
        "RCPT TO:<spf@tester.example\x7f>",
    ] {
        assert_eq!(
            client.command(line).await,
            "501 5.5.2 control characters are not allowed in RCPT",
            "{line:?}"
        );
    }
    // A tag of anything but letters, digits and `._=-` is not an address here.
    for tag in ["caf\u{e9}", "a b", "a/b", "<x>"] {
        let line = format!("RCPT TO:<spf+{tag}@tester.example>");
        let reply = client.command(&line).await;
        assert!(
            reply.starts_with("501 5.5.4 bad address syntax"),
            "{line}: {reply}"
        );
    }
    assert_eq!(
        client
            .command("RCPT TO:<spf+run.1_a=b-c@tester.example>")
            .await,
        "250 2.1.5 <spf+run.1_a=b-c@tester.example> OK"
    );
}

#[tokio::test]
async fn echoed_client_text_is_cut_short() {
    let server = start(|_| {}).await;
    let mut client = server.greeted_client().await;
    client.command("MAIL FROM:<a@example.com>").await;
    let name = "n".repeat(2000);
    let reply = client
        .command(&format!("RCPT TO:<{name}@tester.example>"))
        .await;
    assert!(reply.starts_with("550 5.1.1 <nnnn"), "{reply}");
    assert!(reply.contains("...>: no such mailbox here"), "{reply}");
    assert!(reply.len() < 400, "a {}-byte reply", reply.len());
    let host = "h".repeat(2000);
    let ehlo = client.command(&format!("EHLO {host}")).await;
    let first = ehlo.lines().next().unwrap();
    assert!(first.len() < 400, "a {}-byte greeting line", first.len());
}

/// Sends MAIL, RCPT and then, without waiting, `BDAT` chunks of `sizes` (the last one LAST).
async fn pipelined_chunks(client: &mut Client<TcpStream>, sizes: &[usize]) {
    client
        .envelope("sender@example.com", &["spf@tester.example"])
        .await;
    let mut pipeline = String::new();
    for (n, size) in sizes.iter().enumerate() {
        let last = if n + 1 == sizes.len() { " LAST" } else { "" };
        pipeline.push_str(&format!("BDAT {size}{last}\r\n{}", body(*size)));
    }
    client.send(pipeline).await;
}

/// RFC 3030 section 2: chunks the client had already pipelined behind a refused one are
/// discarded with the same reply. They are not the client's mistakes, so they must not end the
/// session with "421 too many errors" (one bad command is allowed here).
#[tokio::test]
async fn bdat_chunks_pipelined_behind_a_refused_one_get_its_reply_and_are_not_errors() {
    let server = start(|config| {
        config.max_message_size = 1000;
        config.max_bad_commands = 1;
    })
    .await;
    let mut client = server.greeted_client().await;
    pipelined_chunks(&mut client, &[600, 600, 600, 100]).await;
    assert_eq!(client.reply().await, "250 2.0.0 600 bytes received");
    for _ in 0..3 {
        assert_eq!(
            client.reply().await,
            "552 5.3.4 message too big: the limit is 1000 bytes"
        );
    }
    assert_eq!(client.command("NOOP").await, "250 2.0.0 OK");
    assert!(server.delivery.messages().is_empty());
    // A BDAT after another command is the client's own mistake again: with the first 552,
    // one too many.
    assert_eq!(
        client.command("BDAT 0 LAST").await,
        "421 4.7.0 too many errors"
    );
}

/// A refused LAST chunk ends the message: a BDAT after it belongs to no message, and is
/// answered so.
#[tokio::test]
async fn a_bdat_after_a_refused_last_chunk_belongs_to_no_message() {
    let server = start(|config| config.max_message_size = 1000).await;
    let mut client = server.greeted_client().await;
    client
        .envelope("sender@example.com", &["spf@tester.example"])
        .await;
    client.send(format!("BDAT 600\r\n{}", body(600))).await;
    assert!(client.reply().await.starts_with("250 2.0.0 600 bytes"));
    client.send(format!("BDAT 600 LAST\r\n{}", body(600))).await;
    assert_eq!(
        client.reply().await,
        "552 5.3.4 message too big: the limit is 1000 bytes"
    );
    assert_eq!(
        client.command("BDAT 0 LAST").await,
        "503 5.5.1 send MAIL FROM first"
    );
    assert!(server.delivery.messages().is_empty());
}

/// As above, for a chunk the memory budget has no room for: a temporary failure, which must
/// not become a permanent one.
#[tokio::test]
async fn bdat_chunks_pipelined_behind_one_over_the_budget_get_452() {
    let server = start(|config| {
        config.max_memory_in_flight = 128 * KIB;
        config.messages_per_client = 0;
        config.max_bad_commands = 1;
    })
    .await;
    let _holder = holding_a_chunk(&server, 60 * KIB).await;
    let mut client = server.greeted_client().await;
    pipelined_chunks(&mut client, &[100 * KIB, 100 * KIB, 100 * KIB, 10]).await;
    for _ in 0..4 {
        assert_eq!(client.reply().await, BUSY);
    }
    assert_eq!(client.command("NOOP").await, "250 2.0.0 OK");
    assert!(server.delivery.messages().is_empty());
}

#[tokio::test]
async fn a_bdat_chunk_over_the_size_limit_is_refused_before_it_is_read() {
    let server = start(|config| config.max_message_size = 1000).await;
    let mut client = server.greeted_client().await;
    client
        .envelope("sender@example.com", &["spf@tester.example"])
        .await;
    client.send(format!("BDAT 600\r\n{}", body(600))).await;
    assert!(client.reply().await.starts_with("250 2.0.0 600 bytes"));
    // The total would pass the limit: refused before a byte of it is sent, then skipped.
    client.send("BDAT 600 LAST\r\n").await;
    assert_eq!(
        client.reply().await,
        "552 5.3.4 message too big: the limit is 1000 bytes"
    );
    client.send(body(600)).await;
    assert_eq!(client.command("NOOP").await, "250 2.0.0 OK");
    assert!(server.delivery.messages().is_empty());
    // The transaction is over.
    assert_eq!(
        client.command("BDAT 0 LAST").await,
        "503 5.5.1 send MAIL FROM first"
    );

    // A chunk larger than any message is not read at all: 552, then 421 and the end.
    client
        .envelope("sender@example.com", &["spf@tester.example"])
        .await;
    client.send("BDAT 999999999999 LAST\r\n").await;
    assert_eq!(
        client.reply().await,
        "552 5.3.4 message too big: the limit is 1000 bytes"
    );
    assert_eq!(
        client.reply().await,
        "421 4.3.0 mx.tester.example closing: a chunk over the size limit is not read"
    );
    assert!(client.is_closed().await);
}
