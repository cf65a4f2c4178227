//! The tester mailboxes: `spf@` and `dkim@` a tester domain. The SMTP listener recognises
//! them, the verifier gives a verdict for each, the store files results under them and the
//! site lists them; this is their one definition.

use serde::{Deserialize, Serialize};

/// The tester mailbox a recipient addresses and a result belongs to.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "lowercase")]
pub enum Mailbox {
    Spf,
    Dkim,
}

impl Mailbox {
    /// The local part that names this mailbox: `spf` or `dkim`.
    pub fn as_str(self) -> &'static str {
        match self {
            Mailbox::Spf => "spf",
            Mailbox::Dkim => "dkim",
        }
    }

    /// Parses `spf` or `dkim`, in any case.
    pub fn parse(name: &str) -> Option<Mailbox> {
        match name.to_ascii_lowercase().as_str() {
            "spf" => Some(Mailbox::Spf),
            "dkim" => Some(Mailbox::Dkim),
            _ => None,
        }
    }
}
