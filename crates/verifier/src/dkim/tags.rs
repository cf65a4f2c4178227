//! The tag=value list syntax shared by `DKIM-Signature` header fields and DKIM key records
//! (RFC 6376 §3.2).
//!
//! Parsing keeps where each value sits in the input, because verifying a signature needs its
//! own header field byte-exact with only the `b=` value removed.

use std::ops::Range;

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
}

impl<'a> TagList<'a> {
    /// Parses `input` strictly: every part between semicolons must be `name=value` (only a
    /// trailing semicolon may be followed by nothing), names are ALPHA *(ALPHA / DIGIT / "_"),
    /// and no name repeats.
    pub fn parse(input: &'a str) -> Result<TagList<'a>, TagListError> {
        let mut tags: Vec<Tag<'a>> = Vec::new();
        let mut part_start = 0;
        let parts: Vec<&str> = input.split(';').collect();
        let last = parts.len() - 1;
        for (index, part) in parts.iter().enumerate() {
            let start = part_start;
            part_start += part.len() + 1;
            if part.trim_matches(is_fws).is_empty() {
                if index == last {
                    break;
                }
                return Err(TagListError::Syntax(
                    "empty tag between two semicolons (\";;\")".to_string(),
                ));
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
            if tags.iter().any(|t| t.name == name) {
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
    pub fn parse_lenient(input: &'a str) -> TagList<'a> {
        let mut tags: Vec<Tag<'a>> = Vec::new();
        let mut part_start = 0;
        for part in input.split(';') {
            let start = part_start;
            part_start += part.len() + 1;
            let Some(equals) = part.find('=') else {
                continue;
            };
            let name = part[..equals].trim_matches(is_fws);
            if is_tag_name(name) && !tags.iter().any(|t| t.name == name) {
                tags.push(Tag {
                    name,
                    value: part[equals + 1..].trim_matches(is_fws),
                    value_span: start + equals + 1..start + part.len(),
                });
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
