//! Every reply the listener sends, in one place, so the wording can be read and changed
//! without hunting through the session code. Any text that did not come from this file (a
//! HELO name, an address, a delivery error) goes through [`one_line`] before it is sent.

use std::borrow::Cow;
use std::fmt::Write as _;

use crate::config::MAX_ECHO;
use crate::delivery::{Accepted, ReportReceipt};

/// The longest reply line, code and CRLF included (RFC 5321 section 4.5.3.1.5). Clients may
/// cut or refuse a longer one.
const MAX_REPLY_LINE: usize = 512;

/// One complete SMTP reply (one or more CRLF-terminated lines).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Reply(Cow<'static, str>);

impl Reply {
    const fn fixed(text: &'static str) -> Reply {
        Reply(Cow::Borrowed(text))
    }

    fn line(code: u16, text: impl std::fmt::Display) -> Reply {
        let mut reply = String::new();
        push_line(&mut reply, code, ' ', text);
        Reply(Cow::Owned(reply))
    }

    /// A reply of one line per item of `lines`: `250-` on all but the last, `250 ` on the
    /// last (RFC 5321 section 4.2.1).
    fn lines(code: u16, lines: &[String]) -> Reply {
        let mut reply = String::new();
        let last = lines.len().saturating_sub(1);
        for (i, line) in lines.iter().enumerate() {
            push_line(&mut reply, code, if i == last { ' ' } else { '-' }, line);
        }
        Reply(Cow::Owned(reply))
    }

    pub(crate) fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }

    /// The three-digit reply code.
    pub(crate) fn code(&self) -> u16 {
        self.0.get(..3).and_then(|c| c.parse().ok()).unwrap_or(0)
    }

    /// A 5xx reply: the client did something the server will never accept.
    pub(crate) fn is_refusal(&self) -> bool {
        (500..600).contains(&self.code())
    }

    /// The text without the code and CRLF, for logs.
    pub(crate) fn text(&self) -> &str {
        self.0.get(4..).unwrap_or("").trim_end()
    }
}

/// Appends one reply line, `<code><separator><text>` and CRLF, cut to [`MAX_REPLY_LINE`]
/// octets at a character boundary.
fn push_line(reply: &mut String, code: u16, separator: char, text: impl std::fmt::Display) {
    let start = reply.len();
    let _ = write!(reply, "{code}{separator}{text}");
    let mut end = reply.len().min(start + MAX_REPLY_LINE - "\r\n".len());
    while !reply.is_char_boundary(end) {
        end -= 1;
    }
    reply.truncate(end);
    reply.push_str("\r\n");
}

/// Counts a reply by its code for `/metrics` (`authcheck_smtp_replies_total{code="250"}`).
pub(crate) fn count(reply: &Reply) {
    metrics::counter!("authcheck_smtp_replies_total", "code" => reply.code().to_string())
        .increment(1);
}

/// The one sanitizer for reply text from elsewhere (the client's words, a delivery error): it
/// must stay on one line — a CR or LF would start a reply of the client's choosing — and
/// short, so control characters become spaces and the text is cut at [`MAX_ECHO`] characters.
fn one_line(text: &str) -> String {
    let mut line: String = text
        .chars()
        .take(MAX_ECHO)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if text.chars().nth(MAX_ECHO).is_some() {
        line.push_str("...");
    }
    line
}

pub(crate) fn greeting(hostname: &str) -> Reply {
    Reply::line(220, format_args!("{hostname} ESMTP authcheck ready"))
}

/// The EHLO reply with the extensions offered: RFC 2920 PIPELINING, RFC 2034
/// ENHANCEDSTATUSCODES, RFC 1870 SIZE, RFC 6152 8BITMIME, RFC 6531 SMTPUTF8, RFC 3030
/// CHUNKING and RFC 3207 STARTTLS.
pub(crate) fn ehlo(
    hostname: &str,
    client_name: &str,
    max_message_size: usize,
    offer_starttls: bool,
) -> Reply {
    let mut lines = vec![
        format!("{hostname} greets {}", one_line(client_name)),
        "PIPELINING".to_string(),
        "ENHANCEDSTATUSCODES".to_string(),
        format!("SIZE {max_message_size}"),
        "8BITMIME".to_string(),
        "SMTPUTF8".to_string(),
        "CHUNKING".to_string(),
    ];
    if offer_starttls {
        lines.push("STARTTLS".to_string());
    }
    Reply::lines(250, &lines)
}

pub(crate) fn helo(hostname: &str) -> Reply {
    Reply::line(250, hostname)
}

pub(crate) const OK: Reply = Reply::fixed("250 2.0.0 OK\r\n");
pub(crate) const RESET: Reply = Reply::fixed("250 2.0.0 reset\r\n");
pub(crate) const SENDER_OK: Reply = Reply::fixed("250 2.1.0 sender OK\r\n");

pub(crate) fn recipient_ok(address: &str) -> Reply {
    Reply::line(250, format_args!("2.1.5 <{}> OK", one_line(address)))
}

pub(crate) const START_DATA: Reply = Reply::fixed("354 end data with <CR><LF>.<CR><LF>\r\n");

pub(crate) fn chunk_received(size: usize) -> Reply {
    Reply::line(250, format_args!("2.0.0 {size} bytes received"))
}

/// The final reply once the message is kept: `Stored as <id>: <url>`, one pair per tester
/// mailbox (the reply to test messages, unchanged since before report mailboxes existed), then
/// what became of a DMARC report sent to a report mailbox, all on one line.
///
/// When that line would be longer than an SMTP reply line may be (six results or so, or a
/// long `public_url`), each part gets a line of its own instead, every result line again
/// starting `Stored as`, so that nothing is cut and a client reading any line finds the same
/// form.
///
/// A report that cannot be parsed is answered 250 too, saying it was kept as rejected and
/// why: it is stored with its reason (nothing is dropped), and a 5xx would only make the
/// reporter's server send a bounce to an address nobody reads, since the reporter cannot fix
/// what its software generated.
pub(crate) fn stored(accepted: &[Accepted]) -> Reply {
    let results: Vec<String> = accepted
        .iter()
        .filter_map(|a| match a {
            Accepted::Result { id, url, .. } => {
                Some(format!("{}: {}", one_line(id), one_line(url)))
            }
            Accepted::Report(_) => None,
        })
        .collect();
    let receipts: Vec<String> = accepted
        .iter()
        .filter_map(|a| match a {
            Accepted::Report(receipt) => Some(report_receipt(receipt)),
            Accepted::Result { .. } => None,
        })
        .collect();
    let mut parts = Vec::new();
    if !results.is_empty() {
        parts.push(format!("Stored as {}", results.join("; ")));
    }
    parts.extend(receipts.iter().cloned());
    if parts.is_empty() {
        return Reply::fixed("250 2.0.0 message accepted\r\n");
    }
    let single = format!("2.0.0 {}", parts.join("; "));
    if "250 ".len() + single.len() + "\r\n".len() <= MAX_REPLY_LINE {
        return Reply::lines(250, &[single]);
    }
    let lines: Vec<String> = results
        .iter()
        .map(|result| format!("2.0.0 Stored as {result}"))
        .chain(receipts.iter().map(|receipt| format!("2.0.0 {receipt}")))
        .collect();
    Reply::lines(250, &lines)
}

fn report_receipt(receipt: &ReportReceipt) -> String {
    match receipt {
        ReportReceipt::Stored { id } => format!("DMARC report stored as {}", one_line(id)),
        ReportReceipt::Duplicate { id } => {
            format!("DMARC report already stored as {}", one_line(id))
        }
        ReportReceipt::Rejected { id, reason } => format!(
            "not a DMARC report that can be read, kept as rejected report {} ({})",
            one_line(id),
            one_line(reason)
        ),
    }
}

pub(crate) fn temporary_failure(reason: &str) -> Reply {
    Reply::line(
        451,
        format_args!("4.3.0 {}, try again later", one_line(reason)),
    )
}

/// Verification ran past its deadline. X.4.3 (RFC 3463, "directory server failure") because
/// slow DNS answers are what usually makes a check that long; the text says both causes.
pub(crate) fn verification_timed_out(reason: &str) -> Reply {
    Reply::line(
        451,
        format_args!(
            "4.4.3 the message could not be checked in time ({}), try again later",
            one_line(reason)
        ),
    )
}

/// The disk that keeps results is below its free-space floor.
pub(crate) const INSUFFICIENT_STORAGE: Reply =
    Reply::fixed("452 4.3.1 insufficient system storage to keep the result, try again later\r\n");

pub(crate) fn permanent_failure(reason: &str) -> Reply {
    Reply::line(554, format_args!("5.6.0 {}", one_line(reason)))
}

pub(crate) const MESSAGE_TOO_BIG: Reply = Reply::fixed("552 5.3.4 message too big\r\n");

pub(crate) fn declared_size_too_big(max_message_size: usize) -> Reply {
    Reply::line(
        552,
        format_args!("5.3.4 message too big: the limit is {max_message_size} bytes"),
    )
}

/// A BDAT chunk so large that reading it to stay in step is not worth it (RFC 3030 lets the
/// server close the connection instead); follows the 552.
pub(crate) fn chunk_not_read(hostname: &str) -> Reply {
    Reply::line(
        421,
        format_args!("4.3.0 {hostname} closing: a chunk over the size limit is not read"),
    )
}

/// Past the memory budget (RFC 3463 4.3.1, "mail system full").
pub(crate) const BUSY: Reply = Reply::fixed(
    "452 4.3.1 too many messages in progress on this server, try again in a few minutes\r\n",
);

pub(crate) fn client_rate_limited(limit: u32, window: std::time::Duration) -> Reply {
    Reply::line(
        450,
        format_args!(
            "4.7.1 too many messages from your address: at most {limit} per {}, try again later",
            describe_window(window)
        ),
    )
}

pub(crate) fn sender_domain_rate_limited(
    domain: &str,
    limit: u32,
    window: std::time::Duration,
) -> Reply {
    Reply::line(
        450,
        format_args!(
            "4.7.1 too many messages from senders at {}: at most {limit} per {}, try again later",
            one_line(domain),
            describe_window(window)
        ),
    )
}

fn describe_window(window: std::time::Duration) -> String {
    let seconds = window.as_secs();
    if seconds == 60 {
        "minute".to_string()
    } else if seconds > 60 && seconds.is_multiple_of(60) {
        format!("{} minutes", seconds / 60)
    } else {
        format!("{seconds} seconds")
    }
}

pub(crate) const TOO_MANY_RECIPIENTS: Reply = Reply::fixed("452 4.5.3 too many recipients\r\n");

pub(crate) fn no_such_mailbox(address: &str) -> Reply {
    Reply::line(
        550,
        format_args!(
            "5.1.1 <{}>: no such mailbox here; write to spf@ or dkim@",
            one_line(address)
        ),
    )
}

/// A private test address whose token was never made, or has expired (RFC 3463 X.1.1, "bad
/// destination mailbox address").
pub(crate) fn no_such_private_test(address: &str) -> Reply {
    Reply::line(
        550,
        format_args!(
            "5.1.1 <{}>: no such private test address, or it has expired; make a new one on the site",
            one_line(address)
        ),
    )
}

pub(crate) const RELAYING_DENIED: Reply = Reply::fixed("550 5.7.1 relaying denied\r\n");
pub(crate) const NO_VALID_RECIPIENTS: Reply =
    Reply::fixed("503 5.5.1 no recipient accepted yet; send RCPT TO first\r\n");

pub(crate) const HELLO_FIRST: Reply = Reply::fixed("503 5.5.1 send EHLO or HELO first\r\n");
pub(crate) const MAIL_FIRST: Reply = Reply::fixed("503 5.5.1 send MAIL FROM first\r\n");
pub(crate) const NESTED_MAIL: Reply =
    Reply::fixed("503 5.5.1 a mail transaction is already open; send RSET first\r\n");
pub(crate) const FINISH_CHUNKING: Reply =
    Reply::fixed("503 5.5.1 finish the message with BDAT ... LAST, or send RSET\r\n");
pub(crate) const ALREADY_TLS: Reply = Reply::fixed("503 5.5.1 TLS is already in use\r\n");
pub(crate) const TLS_IN_TRANSACTION: Reply = Reply::fixed(
    "503 5.5.1 STARTTLS is not allowed inside a mail transaction; send RSET first\r\n",
);

pub(crate) const UNKNOWN_COMMAND: Reply = Reply::fixed("500 5.5.1 command not recognized\r\n");
pub(crate) const NOT_IMPLEMENTED: Reply = Reply::fixed("502 5.5.1 command not implemented\r\n");
pub(crate) const LINE_TOO_LONG: Reply = Reply::fixed("500 5.5.2 line too long\r\n");

/// HELO, EHLO, MAIL or RCPT with a control character (other than the final CRLF).
pub(crate) fn control_characters(command: &str) -> Reply {
    Reply::line(
        501,
        format_args!("5.5.2 control characters are not allowed in {command}"),
    )
}

pub(crate) fn syntax_error(usage: &str) -> Reply {
    Reply::line(501, format_args!("5.5.4 syntax: {}", one_line(usage)))
}

pub(crate) fn bad_address_syntax(address: &str) -> Reply {
    Reply::line(
        501,
        format_args!("5.5.4 bad address syntax <{}>", one_line(address)),
    )
}

pub(crate) fn unsupported_parameter(parameter: &str) -> Reply {
    Reply::line(
        555,
        format_args!("5.5.4 unsupported parameter {}", one_line(parameter)),
    )
}

pub(crate) const CANNOT_VERIFY: Reply = Reply::fixed(
    "252 2.1.5 cannot verify the address; send a message to spf@ or dkim@ instead\r\n",
);
pub(crate) const HELP: Reply = Reply::fixed(
    "214-2.0.0 authcheck tests email authentication: send a message to spf@ or dkim@\r\n\
     214-2.0.0 this server; the reply names the page with the result.\r\n\
     214 2.0.0 Commands: EHLO HELO STARTTLS MAIL RCPT DATA BDAT RSET NOOP VRFY HELP QUIT\r\n",
);

pub(crate) const READY_FOR_TLS: Reply = Reply::fixed("220 2.0.0 ready to start TLS\r\n");

pub(crate) fn closing(hostname: &str) -> Reply {
    Reply::line(221, format_args!("2.0.0 {hostname} closing connection"))
}

pub(crate) fn command_timeout(hostname: &str) -> Reply {
    Reply::line(421, format_args!("4.4.2 {hostname} timeout, closing"))
}

pub(crate) fn session_too_long(hostname: &str) -> Reply {
    Reply::line(
        421,
        format_args!("4.4.2 {hostname} session time limit reached, closing"),
    )
}

pub(crate) fn shutting_down(hostname: &str) -> Reply {
    Reply::line(
        421,
        format_args!("4.3.2 {hostname} shutting down, try again later"),
    )
}

pub(crate) const TOO_MANY_CONNECTIONS: Reply =
    Reply::fixed("421 4.7.0 too many connections, try again later\r\n");
pub(crate) const TOO_MANY_FROM_ADDRESS: Reply =
    Reply::fixed("421 4.7.0 too many connections from your address\r\n");
pub(crate) const TOO_MANY_ERRORS: Reply = Reply::fixed("421 4.7.0 too many errors\r\n");

#[cfg(test)]
mod tests {
    use super::*;
    use crate::delivery::Mailbox;

    fn result(n: u32) -> Accepted {
        let id = format!("{n:032x}");
        Accepted::Result {
            mailbox: Mailbox::Check,
            url: format!("https://authcheck.tester.example/r/{id}"),
            id,
        }
    }

    fn lines(reply: &Reply) -> Vec<&str> {
        let text = std::str::from_utf8(reply.as_bytes()).unwrap();
        assert!(text.ends_with("\r\n"), "{text:?}");
        text.split_terminator("\r\n").collect()
    }

    #[test]
    fn a_few_results_share_one_line_as_they_always_did() {
        let reply = stored(&[result(1), result(2)]);
        assert_eq!(
            lines(&reply),
            [format!(
                "250 2.0.0 Stored as {:032x}: https://authcheck.tester.example/r/{:032x}; \
                 {:032x}: https://authcheck.tester.example/r/{:032x}",
                1, 1, 2, 2
            )]
        );
    }

    #[test]
    fn ten_results_and_a_report_get_a_line_each_none_longer_than_smtp_allows() {
        let mut accepted: Vec<Accepted> = (1..=10).map(result).collect();
        accepted.push(Accepted::Report(ReportReceipt::Rejected {
            id: "f".repeat(32),
            reason: "é".repeat(400),
        }));
        let reply = stored(&accepted);
        let lines = lines(&reply);
        assert_eq!(lines.len(), 11, "{lines:#?}");
        for (n, line) in (1..=10).zip(&lines) {
            assert_eq!(
                *line,
                format!(
                    "250-2.0.0 Stored as {n:032x}: https://authcheck.tester.example/r/{n:032x}"
                )
            );
        }
        assert!(lines[10].starts_with(&format!(
            "250 2.0.0 not a DMARC report that can be read, kept as rejected report {}",
            "f".repeat(32)
        )));
        for line in &lines {
            assert!(line.len() + 2 <= MAX_REPLY_LINE, "{} octets", line.len());
        }
    }

    #[test]
    fn no_reply_line_is_longer_than_smtp_allows_whatever_text_it_carries() {
        let reply = permanent_failure(&"ü".repeat(1000));
        let lines = lines(&reply);
        assert_eq!(lines.len(), 1);
        assert!(lines[0].starts_with("554 5.6.0 üü"), "{}", lines[0]);
        assert!(
            lines[0].len() + 2 <= MAX_REPLY_LINE,
            "{} octets",
            lines[0].len()
        );
    }
}
