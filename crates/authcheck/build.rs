//! Turns on the PostgreSQL end-to-end tests (`cfg(postgres_tests)`) when
//! `AUTHCHECK_TEST_POSTGRES_URL` names a server, the browser tests (`cfg(browser_tests)`) when
//! Chromium is installed or under CI, and the tests that mount a filesystem or mark files
//! immutable (`cfg(root_tests)`) when run as root or under CI.

include!("../testkit/build/postgres_tests.rs");
include!("../testkit/build/browser_tests.rs");
include!("../testkit/build/root_tests.rs");

fn main() {
    println!("cargo::rerun-if-changed=../testkit/build/postgres_tests.rs");
    emit_postgres_tests_cfg();
    println!("cargo::rerun-if-changed=../testkit/build/browser_tests.rs");
    emit_browser_tests_cfg();
    println!("cargo::rerun-if-changed=../testkit/build/root_tests.rs");
    emit_root_tests_cfg();
}
