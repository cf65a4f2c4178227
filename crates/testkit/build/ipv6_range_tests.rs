// Included (`include!`) by the build scripts of the crates whose tests send from many IPv6
// addresses.
//
// Turns on `cfg(ipv6_range_tests)` when the local route `2001:db8:ac::/48` on `lo` exists (added
// by scripts/setup-test-deps), or when the environment variable `CI` is set. With the route and
// IPV6_FREEBIND, a test can connect from any address of the range to a listener on `::1`, as
// clients of one /64 would. Without it, and outside CI, `cargo test` lists those tests as
// ignored with the reason; under CI they run and fail, saying what is missing.

fn emit_ipv6_range_tests_cfg() {
    /// `2001:db8:ac::/48` as `/proc/net/ipv6_route` writes it: the address, then the prefix
    /// length in hex.
    const ROUTE: &str = "20010db800ac00000000000000000000 30 ";
    println!("cargo::rustc-check-cfg=cfg(ipv6_range_tests)");
    println!("cargo::rerun-if-env-changed=CI");
    let routed = std::fs::read_to_string("/proc/net/ipv6_route")
        .is_ok_and(|routes| routes.lines().any(|line| line.starts_with(ROUTE)));
    let ci = std::env::var_os("CI").is_some_and(|value| !value.is_empty());
    if routed || ci {
        println!("cargo::rustc-cfg=ipv6_range_tests");
    }
}
