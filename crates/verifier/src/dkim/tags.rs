//! The tag=value list syntax shared by `DKIM-Signature` header fields and DKIM key records
//! (RFC 6376 §3.2).
//!
//! Parsing keeps where each value sits in the input, because verifying a signature needs its
//! own header field byte-exact with only the `b=` value removed.

use std::collections::HashSet;
use std::ops::Range;

/// The most tags one list may hold. A DKIM signature defines 14 tags and a key record 7 (ARC
/// and DMARC records fewer); a few hundred leaves room for tags a future RFC adds, which
/// verifiers must ignore, while bounding the work a hostile list can cause.
pub const MAX_TAGS: usize = 256;

/// The longest tag list read, in bytes: a legitimate signature with an 8,192-bit key and a long
/// `h=` stays under 4 KiB, so 64 KiB is generous.
pub const MAX_TAG_LIST_BYTES: usize = 64 * 1024;

/// One `name=value` pair.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tag<'a> {
    pub name: &'a str,
    /// The value with surrounding folding whitespace removed (inner whitespace kept).
    pub value: &'a str,
    /// Where the value sits in the parsed input: from just after `=` up to the `;` that ends
    /// the tag (or the end), surrounding whitespace included.
    pub value_span: Range<usize>,
}

/// A parsed tag list, in the order written.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TagList<'a> {
    tags: Vec<Tag<'a>>,
}

/// Why a tag list could not be parsed; the message names the offending part.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TagListError {
    #[error("{0}")]
    Syntax(String),
    #[error("tag {0}= appears more than once")]
    Duplicate(String),
    /// The list is longer than [`MAX_TAG_LIST_BYTES`] (its length in bytes).
    #[error("it is {0} bytes long; tag lists over {MAX_TAG_LIST_BYTES} bytes are not read")]
    TooLong(usize),
    /// The list holds more than [`MAX_TAGS`] tags.
    #[error("it has more than {MAX_TAGS} tags; tag lists with more are not read")]
    TooManyTags,
}

impl<'a> TagList<'a> {
    /// Parses `input` strictly: every part between semicolons must be `name=value` (only a
    /// trailing semicolon may be followed by nothing), names are ALPHA *(ALPHA / DIGIT / "_"),
    /// and no name repeats. Lists over [`MAX_TAG_LIST_BYTES`] or [`MAX_TAGS`] are refused.
    ///
    /// The work is linear in the length of `input`: each part is looked at once and repeated
    /// names are found with a hash set.
    pub fn parse(input: &'a str) -> Result<TagList<'a>, TagListError> {
        Self::parse_within(input, MAX_TAG_LIST_BYTES, MAX_TAGS)
    }

    fn parse_within(
        input: &'a str,
        max_bytes: usize,
        max_tags: usize,
    ) -> Result<TagList<'a>, TagListError> {
        if input.len() > max_bytes {
            return Err(TagListError::TooLong(input.len()));
        }
        let mut tags: Vec<Tag<'a>> = Vec::new();
        let mut seen = SeenNames::default();
        let mut part_start = 0;
        let mut parts = input.split(';').peekable();
        while let Some(part) = parts.next() {
            let start = part_start;
            part_start += part.len() + 1;
            if part.trim_matches(is_fws).is_empty() {
                if parts.peek().is_none() {
                    break;
                }
                return Err(TagListError::Syntax(
                    "empty tag between two semicolons (\";;\")".to_string(),
                ));
            }
            if tags.len() == max_tags {
                return Err(TagListError::TooManyTags);
            }
            let Some(equals) = part.find('=') else {
                return Err(TagListError::Syntax(format!(
                    "\"{}\" is not a tag=value pair",
                    part.trim_matches(is_fws)
                )));
            };
            let name = part[..equals].trim_matches(is_fws);
            if !is_tag_name(name) {
                return Err(TagListError::Syntax(format!(
                    "\"{name}\" is not a valid tag name"
                )));
            }
            let raw_value = &part[equals + 1..];
            if let Some(bad) = raw_value
                .chars()
                .find(|c| c.is_ascii_control() && !is_fws(*c))
            {
                return Err(TagListError::Syntax(format!(
                    "tag {name}= contains the control character {:?}",
                    bad
                )));
            }
            if !seen.insert(name) {
                return Err(TagListError::Duplicate(name.to_string()));
            }
            tags.push(Tag {
                name,
                value: raw_value.trim_matches(is_fws),
                value_span: start + equals + 1..start + part.len(),
            });
        }
        Ok(TagList { tags })
    }

    /// Parses as much as can be read, for describing a tag list [`TagList::parse`] rejected:
    /// parts that are not `name=value` are skipped and the first of repeated names is kept.
    /// Only the first [`MAX_TAG_LIST_BYTES`] bytes and [`MAX_TAGS`] tags are read.
    pub fn parse_lenient(input: &'a str) -> TagList<'a> {
        let mut tags: Vec<Tag<'a>> = Vec::new();
        let mut seen = SeenNames::default();
        let mut part_start = 0;
        for part in input[..input.floor_char_boundary(MAX_TAG_LIST_BYTES)].split(';') {
            let start = part_start;
            part_start += part.len() + 1;
            let Some(equals) = part.find('=') else {
                continue;
            };
            let name = part[..equals].trim_matches(is_fws);
            if is_tag_name(name) && seen.insert(name) {
                tags.push(Tag {
                    name,
                    value: part[equals + 1..].trim_matches(is_fws),
                    value_span: start + equals + 1..start + part.len(),
                });
                if tags.len() == MAX_TAGS {
                    break;
                }
            }
        }
        TagList { tags }
    }

    /// The tag named exactly `name` (tag names are case-sensitive).
    pub fn get(&self, name: &str) -> Option<&Tag<'a>> {
        self.tags.iter().find(|t| t.name == name)
    }

    /// The value of tag `name`, if present.
    pub fn value(&self, name: &str) -> Option<&'a str> {
        self.get(name).map(|t| t.value)
    }
}

/// The tag names read so far. Names are compared through [`TagName`], so that tests can count
/// the comparisons and prove the parse linear.
#[derive(Default)]
struct SeenNames<'a>(HashSet<TagName<'a>>);

impl<'a> SeenNames<'a> {
    /// False when `name` was seen before.
    fn insert(&mut self, name: &'a str) -> bool {
        self.0.insert(TagName(name))
    }
}

#[derive(Hash)]
struct TagName<'a>(&'a str);

impl PartialEq for TagName<'_> {
    fn eq(&self, other: &Self) -> bool {
        #[cfg(test)]
        tests::NAME_COMPARISONS.with(|count| count.set(count.get() + 1));
        self.0 == other.0
    }
}

impl Eq for TagName<'_> {}

/// Folding whitespace: SP, HTAB and the CR LF of a folded line.
pub fn is_fws(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

/// `value` with all folding whitespace removed, as base64 values and colon lists are compared.
pub fn without_fws(value: &str) -> String {
    value.split(is_fws).collect()
}

fn is_tag_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    thread_local! {
        /// How many times two tag names were compared on this thread.
        pub(super) static NAME_COMPARISONS: Cell<usize> = const { Cell::new(0) };
    }

    fn distinct_empty_tags(count: usize) -> String {
        let letters = |mut n: usize| {
            let mut name = String::new();
            for _ in 0..4 {
                name.push(char::from(b'a' + (n % 26) as u8));
                n /= 26;
            }
            name
        };
        (0..count).map(|i| format!("{}=; ", letters(i))).collect()
    }

    #[test]
    fn finding_repeated_names_takes_work_linear_in_the_number_of_tags() {
        // 80,000 distinct names (the hostile message of issue 9) with the limits lifted: a scan
        // of the earlier names for each new one would compare names 3.2 billion times.
        for count in [20_000, 80_000] {
            let input = distinct_empty_tags(count);
            NAME_COMPARISONS.with(|c| c.set(0));
            let tags = TagList::parse_within(&input, usize::MAX, usize::MAX).unwrap();
            assert_eq!(tags.tags.len(), count);
            let comparisons = NAME_COMPARISONS.with(Cell::get);
            assert!(
                comparisons <= count,
                "{comparisons} name comparisons for {count} tags"
            );
        }
        let repeated = format!("{}aaaa=x", distinct_empty_tags(1000));
        assert_eq!(
            TagList::parse_within(&repeated, usize::MAX, usize::MAX),
            Err(TagListError::Duplicate("aaaa".into()))
        );
    }

    #[test]
    fn lists_over_the_limits_are_refused_before_being_read() {
        let many = distinct_empty_tags(MAX_TAGS + 1);
        assert!(many.len() < MAX_TAG_LIST_BYTES);
        assert_eq!(TagList::parse(&many), Err(TagListError::TooManyTags));
        assert!(TagList::parse(&distinct_empty_tags(MAX_TAGS)).is_ok());
        let long = format!("v=1; z={}", "A".repeat(MAX_TAG_LIST_BYTES));
        assert_eq!(
            TagList::parse(&long),
            Err(TagListError::TooLong(long.len()))
        );
        assert_eq!(
            TagList::parse(&many).unwrap_err().to_string(),
            format!("it has more than {MAX_TAGS} tags; tag lists with more are not read")
        );
    }

    #[test]
    fn lenient_parsing_reads_a_bounded_prefix() {
        let hostile = format!("d=example.com; {}", distinct_empty_tags(80_000));
        let tags = TagList::parse_lenient(&hostile);
        assert_eq!(tags.value("d"), Some("example.com"));
        assert_eq!(tags.tags.len(), MAX_TAGS);
        let multibyte = "é".repeat(MAX_TAG_LIST_BYTES);
        assert_eq!(TagList::parse_lenient(&multibyte), TagList::default());
    }

    #[test]
    fn values_are_trimmed_and_spans_cover_the_raw_value() {
        let input = " v=1; b= ab\r\n cd ;bh=x=";
        let tags = TagList::parse(input).unwrap();
        assert_eq!(tags.value("v"), Some("1"));
        assert_eq!(tags.value("b"), Some("ab\r\n cd"));
        assert_eq!(tags.value("bh"), Some("x="));
        let b = tags.get("b").unwrap();
        assert_eq!(&input[b.value_span.clone()], " ab\r\n cd ");
    }

    #[test]
    fn a_trailing_semicolon_is_allowed_but_an_empty_middle_tag_is_not() {
        assert!(TagList::parse("v=1; a=x;").is_ok());
        assert!(matches!(
            TagList::parse("v=1;; a=x"),
            Err(TagListError::Syntax(_))
        ));
    }

    #[test]
    fn duplicates_and_bad_names_are_rejected() {
        assert_eq!(
            TagList::parse("d=a; d=b"),
            Err(TagListError::Duplicate("d".into()))
        );
        assert!(matches!(
            TagList::parse("1x=a"),
            Err(TagListError::Syntax(_))
        ));
        assert!(matches!(
            TagList::parse("v=1; novalue"),
            Err(TagListError::Syntax(_))
        ));
    }

    #[test]
    fn tag_names_are_case_sensitive() {
        let tags = TagList::parse("D=example.com").unwrap();
        assert_eq!(tags.value("d"), None);
        assert_eq!(tags.value("D"), Some("example.com"));
    }
}
