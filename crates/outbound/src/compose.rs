//! The messages the tester writes (a reply with results, a weekly summary): a plain text part
//! and, when given, an HTML alternative, with the fields RFC 3834 asks of automatic mail
//! (`Auto-Submitted`, `In-Reply-To`, `References`). mail-builder does the MIME and the header
//! encoding, so a Subject or a name from a stranger's message is encoded, never raw.

use mail_send::mail_builder::MessageBuilder;
use mail_send::mail_builder::headers::address::Address;
use mail_send::mail_builder::headers::message_id::MessageId;
use mail_send::mail_builder::headers::raw::Raw;

/// The largest message the tester writes; the outgoing queue refuses larger ones.
pub const MAX_LETTER_BYTES: usize = 256 * 1024;
/// The longest Message-ID of another message that is put in `In-Reply-To`.
const MAX_MESSAGE_ID_CHARS: usize = 250;

/// One message from the tester to one recipient.
#[derive(Clone, Debug)]
pub struct Letter<'a> {
    pub from_name: &'a str,
    pub from_address: &'a str,
    pub to: &'a str,
    pub subject: &'a str,
    /// The Message-ID field of the message this answers, as it was (`<id@host>`); used in
    /// `In-Reply-To` and `References` when it is a plausible one.
    pub in_reply_to: Option<&'a str>,
    /// `auto-replied` for a reply, `auto-generated` for a summary (RFC 3834 section 5).
    pub auto_submitted: &'a str,
    /// Seconds since the epoch.
    pub date: i64,
    /// The new message's id, without angle brackets (`local@domain`).
    pub message_id: &'a str,
    pub text: &'a str,
    pub html: Option<&'a str>,
}

impl Letter<'_> {
    /// The message with CRLF line ends.
    pub fn compose(&self) -> Vec<u8> {
        let mut builder = MessageBuilder::new()
            .from(Address::new_address(
                Some(self.from_name),
                self.from_address,
            ))
            .to(Address::new_address(None::<&str>, self.to))
            .subject(self.subject)
            .date(self.date)
            .message_id(MessageId::new(self.message_id))
            .header("Auto-Submitted", Raw::new(self.auto_submitted))
            .text_body(self.text);
        if let Some(id) = self.in_reply_to.and_then(plausible_message_id) {
            builder = builder
                .in_reply_to(MessageId::new(id))
                .references(MessageId::new(id));
        }
        if let Some(html) = self.html {
            builder = builder.html_body(html);
        }
        builder
            .write_to_vec()
            .expect("writing to memory cannot fail")
    }
}

/// The id inside `<...>` of a Message-ID field, when it is one printable-ASCII token of
/// reasonable length; anything else from a stranger is left out rather than passed on.
fn plausible_message_id(field: &str) -> Option<&str> {
    let id = field.trim().strip_prefix('<')?.strip_suffix('>')?;
    let plausible = !id.is_empty()
        && id.len() <= MAX_MESSAGE_ID_CHARS
        && id.contains('@')
        && id
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b'<' && b != b'>');
    plausible.then_some(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn letter<'a>(in_reply_to: Option<&'a str>, subject: &'a str) -> Letter<'a> {
        Letter {
            from_name: "authcheck",
            from_address: "check@tester.example",
            to: "alice@example.net",
            subject,
            in_reply_to,
            auto_submitted: "auto-replied",
            date: 1_800_000_000,
            message_id: "reply.1@tester.example",
            text: "Your results.\n",
            html: None,
        }
    }

    #[test]
    fn a_reply_carries_the_rfc_3834_fields() {
        let text =
            String::from_utf8(letter(Some("<abc.1@example.net>"), "Results").compose()).unwrap();
        for field in [
            "Auto-Submitted: auto-replied\r\n",
            "In-Reply-To: <abc.1@example.net>\r\n",
            "References: <abc.1@example.net>\r\n",
            "Message-ID: <reply.1@tester.example>\r\n",
            "To: <alice@example.net>\r\n",
        ] {
            assert!(text.contains(field), "{field:?} missing:\n{text}");
        }
        assert!(text.contains("Your results."));
    }

    #[test]
    fn a_hostile_message_id_or_subject_is_not_passed_on_raw() {
        let text = String::from_utf8(
            letter(
                Some("<a@b>\r\nBcc: victim@example.org"),
                "caf\u{e9}\r\nBcc: x@y",
            )
            .compose(),
        )
        .unwrap();
        assert!(!text.contains("In-Reply-To"), "{text}");
        assert!(!text.contains("\r\nBcc:"), "{text}");
        assert_eq!(plausible_message_id("<a b@c>"), None);
        assert_eq!(plausible_message_id("<x@y>"), Some("x@y"));
    }
}
