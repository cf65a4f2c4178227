//! The bound on message-derived text kept for display: anyone can send a message with a
//! megabyte-long Subject, and every list page would carry it for the whole retention period.
//! Display text (the stored Subject, From, HELO, MAIL FROM and recipient, the report's summary,
//! what the site shows from the raw message) is cut to [`MAX_DISPLAY_FIELD_BYTES`] with a note
//! of the length received, and its control characters are shown as U+FFFD, so that its size
//! after JSON or HTML escaping stays a small multiple of its bytes. The raw message keeps the
//! whole text.

use std::borrow::Cow;

/// Longest display text stored per field: RFC 5322's line limit, so that any sensible value
/// is kept whole. Result pages show this much.
pub const MAX_DISPLAY_FIELD_BYTES: usize = 998;

/// Longest display text per field in listings (list pages, the API list, the live feed),
/// where fifty results share one page.
pub const MAX_LISTED_FIELD_BYTES: usize = 256;

/// `text` when it fits in `max_bytes`; otherwise its start, cut at a character boundary,
/// followed by `… (5,242,880 bytes)`, the length received, all within `max_bytes` (for any
/// `max_bytes` longer than that note). Control characters other than tab and line breaks are
/// shown as U+FFFD (JSON would write each as six bytes, `\u001b`, and a terminal obeys them).
/// Bounding a bounded text changes nothing.
pub fn bounded_display_text(text: &str, max_bytes: usize) -> Cow<'_, str> {
    let fits = text.len() <= max_bytes;
    if fits && !text.contains(is_hidden_control) {
        return Cow::Borrowed(text);
    }
    // A text bounded before (a stored column, bounded again for a listing) keeps the length
    // its note gives: the length received.
    let (whole, received) = match length_note(text) {
        Some((at, received)) if !fits => (&text[..at], received),
        _ => (text, text.len()),
    };
    let mut shown: String = whole[..whole.floor_char_boundary(max_bytes)]
        .chars()
        .map(|c| if is_hidden_control(c) { '\u{FFFD}' } else { c })
        .collect();
    if fits && shown.len() <= max_bytes {
        return Cow::Owned(shown);
    }
    let note = format!("… ({} bytes)", with_thousands_separators(received));
    shown.truncate(shown.floor_char_boundary(max_bytes.saturating_sub(note.len())));
    shown.push_str(&note);
    Cow::Owned(shown)
}

/// Where the note `… (5,242,880 bytes)` that ends `text` starts, and the length it gives.
fn length_note(text: &str) -> Option<(usize, usize)> {
    let rest = text.strip_suffix(" bytes)")?;
    let at = rest.rfind("… (")?;
    let digits = &rest[at + "… (".len()..];
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit() || b == b',') {
        return None;
    }
    let received = digits.replace(',', "").parse().ok()?;
    Some((at, received))
}

/// A control character that shows as nothing (or moves the cursor) and that JSON escapes at
/// length; tab and line breaks (a folded header field's) are kept as they are.
fn is_hidden_control(c: char) -> bool {
    c.is_control() && !matches!(c, '\t' | '\n' | '\r')
}

/// `5242880` as `5,242,880`.
fn with_thousands_separators(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_text_is_kept_whole() {
        assert!(matches!(
            bounded_display_text("hello", 5),
            Cow::Borrowed("hello")
        ));
    }

    #[test]
    fn long_text_is_cut_at_a_character_boundary_with_its_length() {
        let text = "é".repeat(3_000_000); // 6,000,000 bytes
        let shown = bounded_display_text(&text, 999);
        let note = "… (6,000,000 bytes)";
        assert_eq!(
            shown,
            format!("{}{note}", "é".repeat((999 - note.len()) / 2))
        );
        assert!(shown.len() <= 999);
        assert_eq!(
            bounded_display_text("abcdefghijklmnopqrstuvwxyz", 20),
            "abcdef… (26 bytes)"
        );
    }

    #[test]
    fn bounding_a_bounded_text_shorter_keeps_the_length_received() {
        let stored = bounded_display_text(&"x".repeat(5 << 20), 998).into_owned();
        let listed = bounded_display_text(&stored, 256);
        assert!(listed.len() <= 256);
        assert!(listed.ends_with("x… (5,242,880 bytes)"), "{listed}");
        assert_eq!(listed.matches('…').count(), 1);
    }

    #[test]
    fn bounding_twice_changes_nothing() {
        for text in ["x".repeat(5000), "\u{1}".repeat(2000), "short".to_owned()] {
            let once = bounded_display_text(&text, 998).into_owned();
            assert_eq!(bounded_display_text(&once, 998), once);
        }
    }

    #[test]
    fn control_characters_are_shown_as_replacement_characters_within_the_bound() {
        assert_eq!(
            bounded_display_text("a\u{1b}[31mb\tc", 20),
            "a\u{FFFD}[31mb\tc"
        );
        let escapes = "\u{1}".repeat(500);
        let shown = bounded_display_text(&escapes, 998);
        let (part, note) = shown.split_once('…').unwrap();
        assert!(shown.len() <= 998);
        assert!(part.chars().all(|c| c == '\u{FFFD}'));
        assert_eq!(note, " (500 bytes)");
    }

    #[test]
    fn thousands_are_separated() {
        assert_eq!(with_thousands_separators(0), "0");
        assert_eq!(with_thousands_separators(999), "999");
        assert_eq!(with_thousands_separators(1000), "1,000");
        assert_eq!(with_thousands_separators(5_242_880), "5,242,880");
    }
}
