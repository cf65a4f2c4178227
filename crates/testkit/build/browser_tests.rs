// Included (`include!`) by the build scripts of the crates with browser tests.
//
// Turns on `cfg(browser_tests)` when Chromium and chromedriver are installed, or when the
// environment variable `CI` is set. Without them, and outside CI, `cargo test` lists the browser
// tests as ignored with the reason instead of passing them; under CI they run and fail, saying
// what is missing. The paths are those of `authcheck_testkit::browser`.

fn emit_browser_tests_cfg() {
    const BROWSER_PROGRAMS: [&str; 2] = ["/usr/bin/chromium", "/usr/bin/chromedriver"];
    println!("cargo::rustc-check-cfg=cfg(browser_tests)");
    println!("cargo::rerun-if-env-changed=CI");
    let installed = BROWSER_PROGRAMS
        .iter()
        .all(|program| std::path::Path::new(program).exists());
    if installed {
        for program in BROWSER_PROGRAMS {
            println!("cargo::rerun-if-changed={program}");
        }
    } else {
        // A missing file would rerun the script on every build: watch the folder it goes into.
        println!("cargo::rerun-if-changed=/usr/bin");
    }
    let ci = std::env::var_os("CI").is_some_and(|value| !value.is_empty());
    if installed || ci {
        println!("cargo::rustc-cfg=browser_tests");
    }
}
