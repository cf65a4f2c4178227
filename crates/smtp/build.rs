//! Turns on the tests that connect from many IPv6 addresses (`cfg(ipv6_range_tests)`) when the
//! local route they need exists, or under CI.

include!("../testkit/build/ipv6_range_tests.rs");

fn main() {
    println!("cargo::rerun-if-changed=../testkit/build/ipv6_range_tests.rs");
    emit_ipv6_range_tests_cfg();
}
