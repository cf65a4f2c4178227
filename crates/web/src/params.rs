//! Query parameters shared by the pages, the API and the live feed, with the checks that turn
//! a bad value into a 400 naming the parameter.

use authcheck_store::{MAX_LIST_LIMIT, Mailbox};
use serde::Deserialize;

/// Results per page on the site and the API's default `limit`.
pub(crate) const PAGE_SIZE: u32 = 50;

/// Longest `sender` filter accepted: an address is at most 320 octets (RFC 5321 limits).
const MAX_SENDER_LEN: usize = 320;

/// A query parameter with a value the site cannot use.
#[derive(Debug)]
pub(crate) struct ParamError {
    pub(crate) parameter: &'static str,
    pub(crate) message: String,
}

impl ParamError {
    pub(crate) fn new(parameter: &'static str, message: impl Into<String>) -> Self {
        ParamError {
            parameter,
            message: message.into(),
        }
    }

    /// `before` named no stored result: it never existed or the retention purge removed it.
    pub(crate) fn unknown_before(id: &str) -> Self {
        ParamError::new(
            "before",
            format!(
                "before: no result with id {id:?}; it may have expired, start again from the newest results"
            ),
        )
    }
}

/// The raw query parameters any listing accepts; unknown parameters are ignored.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct RawListParams {
    pub(crate) mailbox: Option<String>,
    pub(crate) limit: Option<String>,
    pub(crate) before: Option<String>,
    pub(crate) sender: Option<String>,
}

impl RawListParams {
    /// `mailbox`, if given: `spf`, `dkim` or `check`.
    pub(crate) fn mailbox(&self) -> Result<Option<Mailbox>, ParamError> {
        match self.mailbox.as_deref().map(str::trim) {
            None | Some("") => Ok(None),
            Some(name) => Mailbox::parse(name).map(Some).ok_or_else(|| {
                ParamError::new(
                    "mailbox",
                    format!("mailbox: {name:?} is not a mailbox; use spf, dkim or check"),
                )
            }),
        }
    }

    /// `limit`: 1 to [`MAX_LIST_LIMIT`], [`PAGE_SIZE`] when absent.
    pub(crate) fn limit(&self) -> Result<u32, ParamError> {
        let Some(text) = self.limit.as_deref().map(str::trim) else {
            return Ok(PAGE_SIZE);
        };
        match text.parse::<u32>() {
            Ok(limit) if (1..=MAX_LIST_LIMIT).contains(&limit) => Ok(limit),
            _ => Err(ParamError::new(
                "limit",
                format!(
                    "limit: {text:?} is not allowed; use a whole number from 1 to {MAX_LIST_LIMIT}"
                ),
            )),
        }
    }

    /// `before`: the id of the last result of the previous page, if given.
    pub(crate) fn before(&self) -> Result<Option<String>, ParamError> {
        match self.before.as_deref().map(str::trim) {
            None | Some("") => Ok(None),
            Some(id) if is_result_id(id) => Ok(Some(id.to_owned())),
            Some(id) => Err(ParamError::unknown_before(id)),
        }
    }

    /// `sender`: an address or a domain; blank means no filter.
    pub(crate) fn sender(&self) -> Result<Option<String>, ParamError> {
        sender_filter(self.sender.as_deref())
    }
}

/// Checks a `sender` filter: blank means none, otherwise at most an address's length.
pub(crate) fn sender_filter(raw: Option<&str>) -> Result<Option<String>, ParamError> {
    match raw.map(str::trim) {
        None | Some("") => Ok(None),
        Some(sender) if sender.len() > MAX_SENDER_LEN => Err(ParamError::new(
            "sender",
            format!(
                "sender: longer than {MAX_SENDER_LEN} characters; give one address or one domain"
            ),
        )),
        Some(sender) => Ok(Some(sender.to_owned())),
    }
}

/// Whether `id` has the shape of a result id (hex, as the store makes them); anything else
/// cannot name a result and need not reach the database.
pub(crate) fn is_result_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_hexdigit())
}
