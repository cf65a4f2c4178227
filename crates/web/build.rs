//! Turns on the browser tests (`cfg(browser_tests)`) when Chromium is installed or under CI.

include!("../testkit/build/browser_tests.rs");

fn main() {
    println!("cargo::rerun-if-changed=../testkit/build/browser_tests.rs");
    emit_browser_tests_cfg();
}
