//! The tester mailboxes: `spf@`, `dkim@` and `check@` a tester domain. The SMTP listener
//! recognises them, the verifier gives the verdicts each shows (one for `spf@` and `dkim@`,
//! both for the full check at `check@`), the store files results under them and the site lists
//! them; this is their one definition.

use serde::{Deserialize, Serialize};

/// The tester mailbox a recipient addresses and a result belongs to.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "lowercase")]
pub enum Mailbox {
    Spf,
    Dkim,
    /// The full check: both verdicts, SPF first.
    Check,
}

impl Mailbox {
    /// Every tester mailbox, in the order the site lists them.
    pub const ALL: [Mailbox; 3] = [Mailbox::Spf, Mailbox::Dkim, Mailbox::Check];

    /// The local part that names this mailbox: `spf`, `dkim` or `check`.
    pub fn as_str(self) -> &'static str {
        match self {
            Mailbox::Spf => "spf",
            Mailbox::Dkim => "dkim",
            Mailbox::Check => "check",
        }
    }

    /// Parses `spf`, `dkim` or `check`, in any case.
    pub fn parse(name: &str) -> Option<Mailbox> {
        Mailbox::ALL
            .into_iter()
            .find(|mailbox| name.eq_ignore_ascii_case(mailbox.as_str()))
    }
}
