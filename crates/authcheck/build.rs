//! Turns on the PostgreSQL end-to-end tests (`cfg(postgres_tests)`) when
//! `AUTHCHECK_TEST_POSTGRES_URL` names a server, so that without one `cargo test` lists them as
//! ignored, with the reason, instead of passing them; and the browser tests
//! (`cfg(browser_tests)`) when Chromium is installed or under CI.

include!("../testkit/build/browser_tests.rs");

fn main() {
    println!("cargo::rerun-if-env-changed=AUTHCHECK_TEST_POSTGRES_URL");
    println!("cargo::rustc-check-cfg=cfg(postgres_tests)");
    if std::env::var_os("AUTHCHECK_TEST_POSTGRES_URL").is_some_and(|url| !url.is_empty()) {
        println!("cargo::rustc-cfg=postgres_tests");
    }
    println!("cargo::rerun-if-changed=../testkit/build/browser_tests.rs");
    emit_browser_tests_cfg();
}
