// Shared by the build scripts of the crates with PostgreSQL tests (`include!`d, since build
// scripts cannot depend on a library without building it first for the host).

/// Turns on `cfg(postgres_tests)` when `AUTHCHECK_TEST_POSTGRES_URL` names a server, so that
/// without one `cargo test` lists the PostgreSQL tests as ignored, with the reason, instead of
/// passing them.
fn emit_postgres_tests_cfg() {
    println!("cargo::rerun-if-env-changed=AUTHCHECK_TEST_POSTGRES_URL");
    println!("cargo::rustc-check-cfg=cfg(postgres_tests)");
    if std::env::var_os("AUTHCHECK_TEST_POSTGRES_URL").is_some_and(|url| !url.is_empty()) {
        println!("cargo::rustc-cfg=postgres_tests");
    }
}
