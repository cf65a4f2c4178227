//! The private tests: one row per private test address `test-<token>@` a tester domain, with
//! when it was made and when it stops taking mail. Their results are ordinary rows of
//! `results` whose `private_test` names the token; every listing but the token's own leaves
//! them out ([`Visibility`](crate::Visibility)). Times are seconds since the epoch.
//!
//! The store makes the token (100 bits from the operating system's generator) and bounds how
//! many tests are open at once; how long one lasts and who may make one is the caller's.

use authcheck_verifier::PrivateToken;
use rand::RngCore;
use rand::rngs::OsRng;
use serde::Serialize;

use crate::{StoreError, StoreResult};

/// One private test address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct PrivateTest {
    #[serde(serialize_with = "token_text")]
    pub token: PrivateToken,
    pub created_at: i64,
    /// Mail is refused from this second on; the row is purged after it.
    pub expires_at: i64,
}

fn token_text<S: serde::Serializer>(token: &PrivateToken, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(token.as_str())
}

impl PrivateTest {
    /// Whether the address takes mail at `now`.
    pub fn is_open(&self, now: i64) -> bool {
        now < self.expires_at
    }
}

/// A new token from the operating system's generator.
pub(crate) fn new_token() -> PrivateToken {
    let random = (u128::from(OsRng.next_u64()) << 64) | u128::from(OsRng.next_u64());
    PrivateToken::from_random_bits(random)
}

/// Inserts the test unless `$4` tests are open at `$2` already; one statement, so two
/// requests racing on one database overshoot the cap by at most one each.
pub(crate) const CREATE_PRIVATE_TEST_SQL: &str = "INSERT INTO private_tests \
    (token, created_at, expires_at) SELECT $1, $2, $3 \
    WHERE (SELECT COUNT(*) FROM private_tests WHERE expires_at > $2) < $4 RETURNING token";

pub(crate) const GET_PRIVATE_TEST_SQL: &str =
    "SELECT token, created_at, expires_at FROM private_tests WHERE token = $1";

/// Returns the tokens deleted, to count them: at most the cap on open tests.
pub(crate) const PURGE_PRIVATE_TESTS_SQL: &str =
    "DELETE FROM private_tests WHERE expires_at <= $1 RETURNING token";

pub(crate) type PrivateTestRow = (String, i64, i64);

pub(crate) fn private_test(row: PrivateTestRow) -> StoreResult<PrivateTest> {
    let (token, created_at, expires_at) = row;
    let token = PrivateToken::parse(&token).ok_or_else(|| {
        StoreError::Config(
            "a private test in the database has a malformed token; the database was changed by \
             something other than authcheck, restore it from a backup"
                .to_owned(),
        )
    })?;
    Ok(PrivateTest {
        token,
        created_at,
        expires_at,
    })
}
