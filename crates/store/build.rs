//! Rebuilds the crate when a migration is added or changed: `sqlx::migrate!` embeds the
//! files from the workspace's `migrations/` folder at compile time. Also turns on the PostgreSQL
//! tests (`cfg(postgres_tests)`) when `AUTHCHECK_TEST_POSTGRES_URL` names a server, so that
//! without one `cargo test` lists them as ignored, with the reason, instead of passing them.

fn main() {
    println!("cargo::rerun-if-changed=../../migrations");
    println!("cargo::rerun-if-env-changed=AUTHCHECK_TEST_POSTGRES_URL");
    println!("cargo::rustc-check-cfg=cfg(postgres_tests)");
    if std::env::var_os("AUTHCHECK_TEST_POSTGRES_URL").is_some_and(|url| !url.is_empty()) {
        println!("cargo::rustc-cfg=postgres_tests");
    }
}
