// Included (`include!`) by the build scripts of the crates with tests that change the
// machine's filesystems.
//
// Turns on `cfg(root_tests)` when the build runs with the capabilities those tests use (to
// mount a small tmpfs, CAP_SYS_ADMIN; to mark files immutable, CAP_LINUX_IMMUTABLE), as root
// has them, or when the environment variable `CI` is set. Without them, and outside CI,
// `cargo test` lists those tests as ignored with the reason instead of passing them; under CI
// they run and fail, saying what is missing.

fn emit_root_tests_cfg() {
    const CAP_LINUX_IMMUTABLE: u32 = 9;
    const CAP_SYS_ADMIN: u32 = 21;
    println!("cargo::rustc-check-cfg=cfg(root_tests)");
    println!("cargo::rerun-if-env-changed=CI");
    let effective = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            let hex = status.lines().find_map(|line| line.strip_prefix("CapEff:"))?;
            u64::from_str_radix(hex.trim(), 16).ok()
        })
        .unwrap_or(0);
    let capable = [CAP_LINUX_IMMUTABLE, CAP_SYS_ADMIN]
        .iter()
        .all(|capability| effective & (1 << capability) != 0);
    let ci = std::env::var_os("CI").is_some_and(|value| !value.is_empty());
    if capable || ci {
        println!("cargo::rustc-cfg=root_tests");
    }
}
