//! The tester mailboxes: `spf@`, `dkim@` and `check@` a tester domain. The SMTP listener
//! recognises them, the verifier gives the verdicts each shows (one for `spf@` and `dkim@`,
//! both for the full check at `check@`), the store files results under them and the site lists
//! them; this is their one definition, with the private test addresses `test-<token>@`
//! ([`PrivateToken`]), whose results only their token's page lists.

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

/// The local part prefix of a private test address: `test-<token>@` a tester domain.
pub const PRIVATE_PREFIX: &str = "test-";

/// The letters of a [`PrivateToken`]: RFC 4648 base32, lower case, so that a token survives a
/// sender's client that changes the case of local parts (the address is read in any case).
const TOKEN_ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";

/// The token of a private test address `test-<token>@`: 20 base32 letters holding 100 random
/// bits, the only way to reach the test's results besides each result's own id. It is a
/// value (`Copy`) of fixed size, so a recipient naming it stays a plain value too.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct PrivateToken([u8; PrivateToken::LEN]);

impl PrivateToken {
    /// Letters in a token: 20 × 5 bits = 100 random bits.
    pub const LEN: usize = 20;

    /// The token made from the low 100 bits of `random`, which must come from a
    /// cryptographically secure generator (the store's is the operating system's).
    pub fn from_random_bits(random: u128) -> PrivateToken {
        let mut letters = [0u8; PrivateToken::LEN];
        for (i, letter) in letters.iter_mut().enumerate() {
            *letter = TOKEN_ALPHABET[((random >> (5 * i)) & 31) as usize];
        }
        PrivateToken(letters)
    }

    /// Reads a token in any case; `None` for anything else.
    pub fn parse(text: &str) -> Option<PrivateToken> {
        let bytes = text.as_bytes();
        if bytes.len() != PrivateToken::LEN {
            return None;
        }
        let mut letters = [0u8; PrivateToken::LEN];
        for (letter, &byte) in letters.iter_mut().zip(bytes) {
            let lower = byte.to_ascii_lowercase();
            if !TOKEN_ALPHABET.contains(&lower) {
                return None;
            }
            *letter = lower;
        }
        Some(PrivateToken(letters))
    }

    /// Reads the local part of a private test address (without `+tag`), `test-<token>` in
    /// any case.
    pub fn from_local_part(local_part: &str) -> Option<PrivateToken> {
        let prefix = local_part.get(..PRIVATE_PREFIX.len())?;
        if !prefix.eq_ignore_ascii_case(PRIVATE_PREFIX) {
            return None;
        }
        PrivateToken::parse(&local_part[PRIVATE_PREFIX.len()..])
    }

    pub fn as_str(&self) -> &str {
        // Only alphabet letters are ever stored, all ASCII.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }

    /// The address at `domain`: `test-<token>@<domain>`.
    pub fn address(&self, domain: &str) -> String {
        format!("{PRIVATE_PREFIX}{}@{domain}", self.as_str())
    }
}

impl std::fmt::Display for PrivateToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::fmt::Debug for PrivateToken {
    /// Shows only the first letters: a token in a log line would let its reader in.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PrivateToken({}…)", &self.as_str()[..4])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_20_lowercase_base32_letters_read_back_in_any_case() {
        let token = PrivateToken::from_random_bits(0x0123_4567_89ab_cdef_0123_4567_89ab_cdef);
        assert_eq!(token.as_str().len(), 20);
        assert!(token.as_str().bytes().all(|b| TOKEN_ALPHABET.contains(&b)));
        assert_eq!(PrivateToken::parse(token.as_str()), Some(token));
        assert_eq!(
            PrivateToken::parse(&token.as_str().to_uppercase()),
            Some(token)
        );
        let local = format!("TEST-{}", token.as_str().to_uppercase());
        assert_eq!(PrivateToken::from_local_part(&local), Some(token));
        assert_eq!(
            token.address("t.example"),
            format!("test-{token}@t.example")
        );
        for bad in [
            "",
            "abc",
            "abcdefghijklmnopqrs1",
            "abcdefghijklmnopqrst2",
            "abcdefghijklmnopqrs!",
        ] {
            assert_eq!(PrivateToken::parse(bad), None, "{bad:?}");
        }
        assert_eq!(PrivateToken::from_local_part("spf"), None);
        assert_eq!(PrivateToken::from_local_part("test-"), None);
    }

    #[test]
    fn every_bit_of_the_100_changes_the_token() {
        let zero = PrivateToken::from_random_bits(0);
        let mut seen = std::collections::HashSet::new();
        for bit in 0..100 {
            let token = PrivateToken::from_random_bits(1 << bit);
            assert_ne!(token, zero, "bit {bit}");
            assert!(seen.insert(token), "bit {bit}");
        }
        assert_eq!(
            PrivateToken::from_random_bits(1 << 100),
            zero,
            "bits past 100 are unused"
        );
    }
}
