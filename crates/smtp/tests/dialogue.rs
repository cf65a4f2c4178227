//! Raw-TCP dialogues with the listener: each command, each reply, and what reaches the delivery.

mod common;

use authcheck_smtp::{BodyType, DeliveryError, Destination, Mailbox, ReportMailbox};
use common::{DOMAIN, message, start};

#[tokio::test]
async fn ehlo_advertises_the_extensions_and_helo_greets() {
    let server = start(|_| {}).await;
    let mut client = server.client().await;
    let reply = client.command("EHLO client.example").await;
    let lines: Vec<&str> = reply.lines().collect();
    assert_eq!(
        lines,
        [
            "250-mx.tester.example greets client.example",
            "250-PIPELINING",
            "250-ENHANCEDSTATUSCODES",
            "250-SIZE 10485760",
            "250-8BITMIME",
            "250-SMTPUTF8",
            "250 CHUNKING",
        ],
        "no STARTTLS without a TLS configuration"
    );
    assert_eq!(
        client.command("HELO other.example").await,
        "250 mx.tester.example"
    );
    assert_eq!(
        client.command("STARTTLS").await,
        "502 5.5.1 command not implemented"
    );
}

#[tokio::test]
async fn a_message_is_delivered_as_received_after_dot_unstuffing() {
    let server = start(|_| {}).await;
    let mut client = server.greeted_client().await;
    client
        .envelope("sender@example.com", &[&format!("spf@{DOMAIN}")])
        .await;
    assert_eq!(
        client.command("DATA").await,
        "354 end data with <CR><LF>.<CR><LF>"
    );
    client
        .send("Subject: dots\r\n\r\n..leading dot\r\nbare\nline feed\r\n.\r\n")
        .await;
    assert_eq!(
        client.reply().await,
        "250 2.0.0 Stored as spf-1: http://results.test/r/spf-1"
    );

    let delivered = server.delivery.messages();
    assert_eq!(delivered.len(), 1);
    let (envelope, bytes) = &delivered[0];
    assert_eq!(
        bytes,
        b"Subject: dots\r\n\r\n.leading dot\r\nbare\nline feed\r\n"
    );
    assert_eq!(envelope.helo, "client.example");
    assert_eq!(envelope.mail_from, "sender@example.com");
    assert_eq!(envelope.recipients.len(), 1);
    assert_eq!(
        envelope.recipients[0].destination,
        Destination::Test(Mailbox::Spf)
    );
    assert_eq!(envelope.client.ip().to_string(), "127.0.0.1");
    assert!(envelope.tls.is_none());

    // The session goes on: a second transaction on the same connection.
    client
        .envelope("sender@example.com", &[&format!("dkim@{DOMAIN}")])
        .await;
    assert_eq!(
        client.command("DATA").await,
        "354 end data with <CR><LF>.<CR><LF>"
    );
    client.send(format!("{}.\r\n", message("second"))).await;
    assert_eq!(
        client.reply().await,
        "250 2.0.0 Stored as dkim-2: http://results.test/r/dkim-2"
    );
    assert_eq!(
        client.command("QUIT").await,
        "221 2.0.0 mx.tester.example closing connection"
    );
    assert!(client.is_closed().await);
}

#[tokio::test]
async fn both_mailboxes_are_named_in_one_final_reply() {
    let server = start(|_| {}).await;
    let mut client = server.greeted_client().await;
    client
        .envelope(
            "sender@example.com",
            &[&format!("spf@{DOMAIN}"), &format!("dkim@{DOMAIN}")],
        )
        .await;
    client.command("DATA").await;
    client.send(format!("{}.\r\n", message("both"))).await;
    assert_eq!(
        client.reply().await,
        "250 2.0.0 Stored as spf-1: http://results.test/r/spf-1; dkim-1: http://results.test/r/dkim-1"
    );
}

#[tokio::test]
async fn report_mailboxes_take_messages_and_a_test_and_a_report_share_one_final_reply() {
    let server = start(|_| {}).await;
    let mut client = server.greeted_client().await;
    client.command("MAIL FROM:<reports@receiver.example>").await;
    for rcpt in [
        format!("rua@{DOMAIN}"),
        format!("ruf+tag@{DOMAIN}"),
        format!("spf@{DOMAIN}"),
    ] {
        assert_eq!(
            client.command(&format!("RCPT TO:<{rcpt}>")).await,
            format!("250 2.1.5 <{rcpt}> OK")
        );
    }
    client.command("DATA").await;
    client.send(format!("{}.\r\n", message("report"))).await;
    assert_eq!(
        client.reply().await,
        "250 2.0.0 Stored as spf-1: http://results.test/r/spf-1; DMARC report stored as report-1"
    );
    let delivered = server.delivery.messages();
    let destinations: Vec<Destination> = delivered[0]
        .0
        .recipients
        .iter()
        .map(|r| r.destination)
        .collect();
    assert_eq!(
        destinations,
        [
            Destination::Reports(ReportMailbox::Aggregate),
            Destination::Reports(ReportMailbox::Failure),
            Destination::Test(Mailbox::Spf)
        ]
    );
}

#[tokio::test]
async fn recipients_keep_their_tag_and_case_and_duplicates_count_once() {
    let server = start(|_| {}).await;
    let mut client = server.greeted_client().await;
    client.command("MAIL FROM:<sender@example.com>").await;
    assert_eq!(
        client.command("RCPT TO:<SPF+run-7@Tester.Example>").await,
        "250 2.1.5 <SPF+run-7@Tester.Example> OK"
    );
    assert_eq!(
        client.command("RCPT TO:<spf+run-7@tester.example>").await,
        "250 2.1.5 <spf+run-7@tester.example> OK"
    );
    assert_eq!(
        client.command("RCPT TO:<dkim@second.test>").await,
        "250 2.1.5 <dkim@second.test> OK"
    );
    client.command("DATA").await;
    client.send(format!("{}.\r\n", message("tags"))).await;
    assert!(
        client
            .reply()
            .await
            .starts_with("250 2.0.0 Stored as spf-1")
    );

    let (envelope, _) = &server.delivery.messages()[0];
    let addresses: Vec<&str> = envelope
        .recipients
        .iter()
        .map(|r| r.address.as_str())
        .collect();
    assert_eq!(addresses, ["SPF+run-7@Tester.Example", "dkim@second.test"]);
}

#[tokio::test]
async fn every_way_of_naming_another_domain_is_refused_as_relaying() {
    let server = start(|_| {}).await;
    let mut client = server.greeted_client().await;
    client.command("MAIL FROM:<sender@example.com>").await;
    for path in [
        "spf@other.example",
        "spf@tester.example.other.example",
        "@relay.example,@other.example:spf@tester.example",
        "@tester.example:spf@other.example",
        "spf%other.example@tester.example",
        "other.example!spf@tester.example",
        "\"spf@other.example\"@tester.example",
        "\"spf\"@tester.example",
        "spf@[127.0.0.1]",
        "spf@[IPv6:::1]",
        "spf@tester.example.",
    ] {
        let reply = client.command(&format!("RCPT TO:<{path}>")).await;
        assert_eq!(reply, "550 5.7.1 relaying denied", "RCPT TO:<{path}>");
    }
    assert!(client.command("DATA").await.starts_with("503 5.5.1"));
    assert!(server.delivery.messages().is_empty());
}

#[tokio::test]
async fn another_local_part_at_a_tester_domain_is_no_such_mailbox() {
    let server = start(|_| {}).await;
    let mut client = server.greeted_client().await;
    client.command("MAIL FROM:<sender@example.com>").await;
    assert_eq!(
        client.command("RCPT TO:<bob@tester.example>").await,
        "550 5.1.1 <bob@tester.example>: no such mailbox here; write to spf@ or dkim@"
    );
}

#[tokio::test]
async fn a_private_test_address_is_taken_only_while_the_delivery_says_it_is_open() {
    let server = start(|_| {}).await;
    let open = authcheck_smtp::PrivateToken::parse("abcdefghijklmnopqrst").unwrap();
    server.delivery.open_tokens.lock().unwrap().push(open);
    let mut client = server.greeted_client().await;
    client.command("MAIL FROM:<sender@example.com>").await;
    assert_eq!(
        client
            .command("RCPT TO:<test-bbcdefghijklmnopqrst@tester.example>")
            .await,
        "550 5.1.1 <test-bbcdefghijklmnopqrst@tester.example>: no such private test address, \
         or it has expired; make a new one on the site"
    );
    *server.delivery.token_lookup_failure.lock().unwrap() = true;
    assert_eq!(
        client
            .command("RCPT TO:<test-abcdefghijklmnopqrst@tester.example>")
            .await,
        "451 4.3.0 the private test address cannot be looked up now, try again later"
    );
    *server.delivery.token_lookup_failure.lock().unwrap() = false;
    assert_eq!(
        client
            .command("RCPT TO:<TEST-ABCDEFGHIJKLMNOPQRST@tester.example>")
            .await,
        "250 2.1.5 <TEST-ABCDEFGHIJKLMNOPQRST@tester.example> OK"
    );
    assert!(client.command("DATA").await.starts_with("354"));
    client.send(format!("{}.\r\n", message("private"))).await;
    let reply = client.reply().await;
    assert_eq!(
        reply,
        "250 2.0.0 Stored as private-1: http://results.test/r/private-1"
    );
    let messages = server.delivery.messages();
    assert_eq!(
        messages[0].0.recipients[0].destination,
        Destination::Private(open)
    );
}

#[tokio::test]
async fn recipients_beyond_the_limit_are_refused() {
    let server = start(|config| config.max_recipients = 2).await;
    let mut client = server.greeted_client().await;
    client
        .envelope(
            "sender@example.com",
            &["spf+1@tester.example", "spf+2@tester.example"],
        )
        .await;
    assert_eq!(
        client.command("RCPT TO:<spf+3@tester.example>").await,
        "452 4.5.3 too many recipients"
    );
    // Naming an accepted recipient again is not a new one.
    assert!(
        client
            .command("RCPT TO:<spf+1@tester.example>")
            .await
            .starts_with("250 ")
    );
    client.command("DATA").await;
    client.send(format!("{}.\r\n", message("limit"))).await;
    assert!(client.reply().await.starts_with("250 "));
    assert_eq!(server.delivery.messages()[0].0.recipients.len(), 2);
}

#[tokio::test]
async fn the_null_reverse_path_and_mail_parameters_are_accepted() {
    let server = start(|_| {}).await;
    let mut client = server.greeted_client().await;
    assert_eq!(
        client.command("MAIL FROM:<> BODY=8BITMIME SMTPUTF8").await,
        "250 2.1.0 sender OK"
    );
    client.command("RCPT TO:<spf@tester.example>").await;
    client.command("DATA").await;
    client
        .send("Subject: bounce\r\n\r\n\u{e9}t\u{e9}\r\n.\r\n")
        .await;
    assert!(client.reply().await.starts_with("250 2.0.0 Stored as"));
    let (envelope, bytes) = &server.delivery.messages()[0];
    assert_eq!(envelope.mail_from, "");
    assert_eq!(bytes, "Subject: bounce\r\n\r\n\u{e9}t\u{e9}\r\n".as_bytes());

    assert_eq!(
        client
            .command("MAIL FROM:<a@example.com> BODY=BINARYMIME")
            .await,
        "555 5.5.4 unsupported parameter BODY=BINARYMIME"
    );
}

/// Parameters of extensions the EHLO reply does not offer get 555 (RFC 5321 section
/// 4.1.1.11), not a 250 the client would take for a promise: a DSN, a delivery deadline, TLS
/// required onward.
#[tokio::test]
async fn parameters_of_extensions_not_offered_are_refused_with_555() {
    let server = start(|_| {}).await;
    let mut client = server.greeted_client().await;
    for (parameters, name) in [
        ("RET=FULL", "RET"),
        ("ENVID=abc", "ENVID"),
        ("AUTH=<>", "AUTH"),
        ("BY=120;R", "BY"),
        ("REQUIRETLS", "REQUIRETLS"),
        ("HOLDFOR=60", "HOLDFOR"),
    ] {
        assert_eq!(
            client
                .command(&format!("MAIL FROM:<a@example.com> {parameters}"))
                .await,
            format!("555 5.5.4 unsupported parameter {name}"),
            "{parameters}"
        );
    }
    // The offered ones still work, and a refused MAIL started nothing.
    assert_eq!(
        client
            .command("MAIL FROM:<a@example.com> SIZE=100 BODY=8BITMIME SMTPUTF8")
            .await,
        "250 2.1.0 sender OK"
    );
    for (parameters, name) in [
        ("NOTIFY=SUCCESS,FAILURE", "NOTIFY"),
        ("ORCPT=rfc822;spf@tester.example", "ORCPT"),
    ] {
        assert_eq!(
            client
                .command(&format!("RCPT TO:<spf@tester.example> {parameters}"))
                .await,
            format!("555 5.5.4 unsupported parameter {name}"),
            "{parameters}"
        );
    }
    assert_eq!(
        client.command("RCPT TO:<spf@tester.example>").await,
        "250 2.1.5 <spf@tester.example> OK"
    );
}

#[tokio::test]
async fn the_body_parameter_reaches_the_delivery_for_each_transaction() {
    let server = start(|_| {}).await;
    let mut client = server.greeted_client().await;
    for parameters in [
        " BODY=8BITMIME",
        " BODY=7BIT",
        "",
        " body=8bitmime SMTPUTF8",
    ] {
        assert_eq!(
            client
                .command(&format!("MAIL FROM:<a@example.com>{parameters}"))
                .await,
            "250 2.1.0 sender OK"
        );
        client.command("RCPT TO:<spf@tester.example>").await;
        client.command("DATA").await;
        client.send(format!("{}.\r\n", message("body"))).await;
        assert!(client.reply().await.starts_with("250 "));
    }
    let declared: Vec<BodyType> = server
        .delivery
        .messages()
        .iter()
        .map(|(envelope, _)| envelope.body)
        .collect();
    assert_eq!(
        declared,
        [
            BodyType::EightBitMime,
            BodyType::SevenBit,
            BodyType::Undeclared,
            BodyType::EightBitMime
        ]
    );
}

#[tokio::test]
async fn a_declared_size_over_the_limit_is_refused_at_mail() {
    let server = start(|config| config.max_message_size = 1000).await;
    let mut client = server.greeted_client().await;
    assert_eq!(
        client
            .command("MAIL FROM:<sender@example.com> SIZE=1001")
            .await,
        "552 5.3.4 message too big: the limit is 1000 bytes"
    );
    assert_eq!(
        client
            .command("MAIL FROM:<sender@example.com> SIZE=1000")
            .await,
        "250 2.1.0 sender OK"
    );
}

#[tokio::test]
async fn data_over_the_limit_is_read_to_its_end_and_refused() {
    let server = start(|config| config.max_message_size = 1000).await;
    let mut client = server.greeted_client().await;
    client
        .envelope("sender@example.com", &["spf@tester.example"])
        .await;
    client.command("DATA").await;
    let line = format!("{}\r\n", "x".repeat(98));
    client
        .send(format!("Subject: big\r\n\r\n{}.\r\n", line.repeat(50)))
        .await;
    assert_eq!(client.reply().await, "552 5.3.4 message too big");
    assert!(server.delivery.messages().is_empty());
    // The data did not leak into the command stream, and the session is usable.
    assert_eq!(client.command("NOOP").await, "250 2.0.0 OK");
    client
        .envelope("sender@example.com", &["spf@tester.example"])
        .await;
    client.command("DATA").await;
    client.send(format!("{}.\r\n", message("small"))).await;
    assert!(client.reply().await.starts_with("250 2.0.0 Stored as"));
}

#[tokio::test]
async fn pipelined_commands_are_answered_in_order() {
    let server = start(|_| {}).await;
    let mut client = server.greeted_client().await;
    client
        .send(
            "MAIL FROM:<sender@example.com>\r\nRCPT TO:<spf@tester.example>\r\n\
             RCPT TO:<nobody@tester.example>\r\nRCPT TO:<dkim@tester.example>\r\nDATA\r\n",
        )
        .await;
    assert_eq!(client.reply().await, "250 2.1.0 sender OK");
    assert_eq!(client.reply().await, "250 2.1.5 <spf@tester.example> OK");
    assert!(
        client
            .reply()
            .await
            .starts_with("550 5.1.1 <nobody@tester.example>")
    );
    assert_eq!(client.reply().await, "250 2.1.5 <dkim@tester.example> OK");
    assert_eq!(client.reply().await, "354 end data with <CR><LF>.<CR><LF>");
    client
        .send(format!("{}.\r\nQUIT\r\n", message("pipelined")))
        .await;
    assert!(
        client
            .reply()
            .await
            .starts_with("250 2.0.0 Stored as spf-1: ")
    );
    assert!(client.reply().await.starts_with("221 "));
    assert!(client.is_closed().await);
}

#[tokio::test]
async fn bdat_chunks_are_joined_without_unstuffing() {
    let server = start(|_| {}).await;
    let mut client = server.greeted_client().await;
    client
        .envelope("sender@example.com", &["dkim@tester.example"])
        .await;
    let first = "Subject: chunks\r\n\r\n";
    let second = "..not stuffed\r\n.\r\n";
    client
        .send(format!("BDAT {}\r\n{first}", first.len()))
        .await;
    assert_eq!(
        client.reply().await,
        format!("250 2.0.0 {} bytes received", first.len())
    );
    // A chunk and the next command in one write.
    client
        .send(format!("BDAT {} LAST\r\n{second}NOOP\r\n", second.len()))
        .await;
    assert_eq!(
        client.reply().await,
        "250 2.0.0 Stored as dkim-1: http://results.test/r/dkim-1"
    );
    assert_eq!(client.reply().await, "250 2.0.0 OK");
    let (_, bytes) = &server.delivery.messages()[0];
    assert_eq!(bytes, format!("{first}{second}").as_bytes());
}

#[tokio::test]
async fn bdat_zero_last_ends_the_message() {
    let server = start(|_| {}).await;
    let mut client = server.greeted_client().await;
    client
        .envelope("sender@example.com", &["spf@tester.example"])
        .await;
    let body = message("zero last");
    client.send(format!("BDAT {}\r\n{body}", body.len())).await;
    assert!(client.reply().await.starts_with("250 2.0.0"));
    assert!(
        client
            .command("BDAT 0 LAST")
            .await
            .starts_with("250 2.0.0 Stored as spf-1")
    );
    assert_eq!(server.delivery.messages()[0].1, body.as_bytes());
}

#[tokio::test]
async fn bdat_cannot_be_mixed_with_data_and_a_refused_chunk_is_skipped() {
    let server = start(|_| {}).await;
    let mut client = server.greeted_client().await;
    // Without a transaction the chunk is read and dropped: the QUIT inside it is not a command.
    client.send("BDAT 6\r\nQUIT\r\n").await;
    assert_eq!(client.reply().await, "503 5.5.1 send MAIL FROM first");
    assert_eq!(client.command("NOOP").await, "250 2.0.0 OK");

    client
        .envelope("sender@example.com", &["spf@tester.example"])
        .await;
    client.send("BDAT 5\r\nabcde").await;
    assert!(client.reply().await.starts_with("250 2.0.0 5 bytes"));
    let finish_first = "503 5.5.1 finish the message with BDAT ... LAST, or send RSET";
    assert_eq!(client.command("DATA").await, finish_first);
    assert_eq!(
        client.command("RCPT TO:<dkim@tester.example>").await,
        finish_first
    );
    assert!(
        client
            .command("MAIL FROM:<other@example.com>")
            .await
            .starts_with("503 5.5.1")
    );
    assert_eq!(client.command("RSET").await, "250 2.0.0 reset");
    client
        .envelope("sender@example.com", &["spf@tester.example"])
        .await;
    client.command("DATA").await;
    client.send(format!("{}.\r\n", message("after rset"))).await;
    assert!(client.reply().await.starts_with("250 2.0.0 Stored as"));
    assert_eq!(
        server.delivery.messages()[0].1,
        message("after rset").as_bytes()
    );
}

#[tokio::test]
async fn commands_out_of_sequence_are_refused() {
    let server = start(|_| {}).await;
    let mut client = server.client().await;
    assert_eq!(
        client.command("MAIL FROM:<sender@example.com>").await,
        "503 5.5.1 send EHLO or HELO first"
    );
    client.command("EHLO client.example").await;
    assert_eq!(
        client.command("RCPT TO:<spf@tester.example>").await,
        "503 5.5.1 send MAIL FROM first"
    );
    assert_eq!(
        client.command("DATA").await,
        "503 5.5.1 send MAIL FROM first"
    );
    client.command("MAIL FROM:<sender@example.com>").await;
    assert_eq!(
        client.command("MAIL FROM:<sender@example.com>").await,
        "503 5.5.1 a mail transaction is already open; send RSET first"
    );
    assert_eq!(
        client.command("DATA").await,
        "503 5.5.1 no recipient accepted yet; send RCPT TO first"
    );
}

#[tokio::test]
async fn unknown_and_malformed_commands_get_500_and_501() {
    let server = start(|_| {}).await;
    let mut client = server.greeted_client().await;
    assert_eq!(
        client.command("FROBNICATE now").await,
        "500 5.5.1 command not recognized"
    );
    assert!(
        client
            .command("HELO")
            .await
            .starts_with("501 5.5.4 syntax: HELO")
    );
    assert!(
        client
            .command("MAIL FROM:sender@example.com")
            .await
            .starts_with("501 5.5.4")
    );
    assert!(
        client
            .command("MAIL TO:<sender@example.com>")
            .await
            .starts_with("501 5.5.4")
    );
    assert_eq!(
        client.command("AUTH PLAIN AGFiYwBkZWY=").await,
        "502 5.5.1 command not implemented"
    );
}

#[tokio::test]
async fn vrfy_help_noop_and_rset_answer() {
    let server = start(|_| {}).await;
    let mut client = server.greeted_client().await;
    assert!(client.command("VRFY spf").await.starts_with("252 2.1.5"));
    let help = client.command("HELP").await;
    assert!(
        help.starts_with("214-2.0.0") && help.contains("spf@ or dkim@"),
        "{help}"
    );
    assert_eq!(client.command("NOOP").await, "250 2.0.0 OK");
    client.command("MAIL FROM:<sender@example.com>").await;
    assert_eq!(client.command("RSET").await, "250 2.0.0 reset");
    assert_eq!(
        client.command("RCPT TO:<spf@tester.example>").await,
        "503 5.5.1 send MAIL FROM first"
    );
}

#[tokio::test]
async fn a_temporary_delivery_failure_is_451_and_a_permanent_one_554() {
    let server = start(|_| {}).await;
    *server.delivery.failure.lock().unwrap() =
        Some(DeliveryError::Temporary("the store is unavailable".into()));
    let mut client = server.greeted_client().await;
    client
        .envelope("sender@example.com", &["spf@tester.example"])
        .await;
    client.command("DATA").await;
    client.send(format!("{}.\r\n", message("retry"))).await;
    assert_eq!(
        client.reply().await,
        "451 4.3.0 the store is unavailable, try again later"
    );

    *server.delivery.failure.lock().unwrap() =
        Some(DeliveryError::Permanent("unreadable message".into()));
    client
        .envelope("sender@example.com", &["spf@tester.example"])
        .await;
    client.send("BDAT 5 LAST\r\nhello").await;
    assert_eq!(client.reply().await, "554 5.6.0 unreadable message");
    assert!(server.delivery.messages().is_empty());
}
