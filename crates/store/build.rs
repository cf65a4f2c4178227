//! Rebuilds the crate when a migration is added or changed: `sqlx::migrate!` embeds the
//! files from the workspace's `migrations/` folder at compile time. Also turns on the PostgreSQL
//! tests (`cfg(postgres_tests)`) when `AUTHCHECK_TEST_POSTGRES_URL` names a server.

include!("../testkit/build/postgres_tests.rs");

fn main() {
    println!("cargo::rerun-if-changed=../../migrations");
    println!("cargo::rerun-if-changed=../testkit/build/postgres_tests.rs");
    emit_postgres_tests_cfg();
}
