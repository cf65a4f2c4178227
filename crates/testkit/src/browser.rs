//! A headless Chromium driven through chromedriver, for tests that need a real browser
//! (script behaviour, what the DOM shows, that hostile text never runs).
//!
//! Usage: `let browser = Browser::launch().await;`, then `browser.goto(url)`, `browser.eval(js)`,
//! `browser.wait_until(js_condition, timeout)`, and finally `browser.quit().await`. A test that
//! uses it carries `#[cfg_attr(not(browser_tests), ignore = "...")]` and its crate's build script
//! includes `build/browser_tests.rs`: without Chromium the test is reported ignored, and under
//! `CI` it runs and fails, saying what to install.
//! chromedriver runs as a child process on a free loopback port with a fresh profile folder;
//! it is killed by `quit` or, should a test panic first, when the `Browser` is dropped.
//!
//! `AUTHCHECK_SCREENSHOT_DIR=folder` keeps the screenshots tests take for a person to look at
//! ([`keep_screenshot`], [`Browser::keep_screenshot`]); without it none are kept.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use fantoccini::{Client, ClientBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{Value, json};
use tokio::process::{Child, Command};

/// Where Debian's `chromium-driver` and `chromium` packages put them (`build/browser_tests.rs`
/// looks there too).
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";

/// How long chromedriver may take to listen, and Chromium to start a session.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);

/// The folder `AUTHCHECK_SCREENSHOT_DIR` names, when screenshots are to be kept.
pub fn screenshot_dir() -> Option<PathBuf> {
    std::env::var_os("AUTHCHECK_SCREENSHOT_DIR").map(PathBuf::from)
}

/// Keeps `png` as `<name>.png` in [`screenshot_dir`], making the folder if need be; does
/// nothing when no folder is named.
pub fn keep_screenshot(name: &str, png: &[u8]) {
    let Some(dir) = screenshot_dir() else {
        return;
    };
    let path = dir.join(format!("{name}.png"));
    std::fs::create_dir_all(&dir)
        .and_then(|()| std::fs::write(&path, png))
        .unwrap_or_else(|error| {
            panic!(
                "cannot keep a screenshot as {} ({error}): check AUTHCHECK_SCREENSHOT_DIR",
                path.display()
            )
        });
}

pub struct Browser {
    client: Client,
    chromedriver: Child,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Starts chromedriver and a headless Chromium session.
    ///
    /// # Panics
    /// When they are not installed (the test was built under `CI` without them) or do not start.
    pub async fn launch() -> Browser {
        let missing: Vec<&str> = [CHROMIUM, CHROMEDRIVER]
            .into_iter()
            .filter(|program| !Path::new(program).exists())
            .collect();
        assert!(
            missing.is_empty(),
            "this browser test needs {} (on Debian: apt-get install chromium chromium-driver, \
             or scripts/setup-test-deps)",
            missing.join(" and ")
        );
        let port = free_loopback_port();
        let mut chromedriver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("start chromedriver");
        if let Err(message) = wait_until_listening(port).await {
            let _ = chromedriver.kill().await;
            panic!("{message}");
        }

        let profile = tempfile::tempdir().expect("make a browser profile folder");
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": CHROMIUM,
                "args": [
                    "--headless",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-dev-shm-usage",
                    "--disable-quic",
                    "--no-first-run",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    format!("--user-data-dir={}", profile.path().display()),
                ],
            }),
        );
        let mut builder = ClientBuilder::new(HttpConnector::new());
        builder.capabilities(capabilities);
        let webdriver_url = format!("http://127.0.0.1:{port}");
        let connecting = builder.connect(&webdriver_url);
        let client = match tokio::time::timeout(STARTUP_TIMEOUT, connecting).await {
            Ok(Ok(client)) => client,
            failure => {
                let _ = chromedriver.kill().await;
                panic!("cannot start a Chromium session through chromedriver: {failure:?}");
            }
        };
        Browser {
            client,
            chromedriver,
            _profile: profile,
        }
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    pub async fn goto(&self, url: &str) {
        self.client
            .goto(url)
            .await
            .unwrap_or_else(|error| panic!("open {url}: {error}"));
    }

    /// Runs `script` (a function body; use `return`) in the page and gives its result.
    pub async fn eval(&self, script: &str) -> Value {
        self.client
            .execute(script, vec![])
            .await
            .unwrap_or_else(|error| panic!("run {script:?}: {error}"))
    }

    /// The words of at most `longest` characters that the current page breaks across lines
    /// in the elements matching `css` (each holding one text node), and how many elements
    /// matched. A word is a run without whitespace, an `<address>` counting as a word of its
    /// own since a browser may break before its `<`. A column squeezed by its neighbours shows
    /// as a short word broken in two.
    pub async fn words_broken_across_lines(
        &self,
        css: &str,
        longest: usize,
    ) -> (usize, Vec<String>) {
        let script = format!(
            "const broken = [];
             const cells = document.querySelectorAll({css});
             for (const cell of cells) {{
               const text = cell.firstChild;
               if (text === null || text.nodeType !== Node.TEXT_NODE) continue;
               for (const word of text.textContent.matchAll(/<[^>]*>|[^\\s<]+/g)) {{
                 if (word[0].length > {longest}) continue;
                 const range = document.createRange();
                 range.setStart(text, word.index);
                 range.setEnd(text, word.index + word[0].length);
                 if (range.getClientRects().length > 1) broken.push(word[0]);
               }}
             }}
             return {{ cells: cells.length, broken }};",
            css = Value::from(css),
        );
        let found = self.eval(&script).await;
        let cells = found["cells"].as_u64().expect("a count") as usize;
        let broken = found["broken"]
            .as_array()
            .expect("a list")
            .iter()
            .map(|word| word.as_str().expect("a word").to_owned())
            .collect();
        (cells, broken)
    }

    /// The elements matching `css` whose content is wider than they are, so that they scroll
    /// sideways; each named by the `id` of itself or its nearest ancestor that has one.
    pub async fn scrolling_sideways(&self, css: &str) -> Vec<String> {
        let script = format!(
            "return Array.from(document.querySelectorAll({css}))
               .filter(element => element.scrollWidth > element.clientWidth)
               .map(element => element.closest('[id]')?.id ?? element.tagName);",
            css = Value::from(css),
        );
        let found = self.eval(&script).await;
        found
            .as_array()
            .expect("a list")
            .iter()
            .map(|name| name.as_str().unwrap_or_default().to_owned())
            .collect()
    }

    /// Keeps a screenshot of the window as `<name>.png` when screenshots are wanted (see
    /// [`keep_screenshot`]).
    pub async fn keep_screenshot(&self, name: &str) {
        if screenshot_dir().is_none() {
            return;
        }
        let png = self
            .client
            .screenshot()
            .await
            .unwrap_or_else(|error| panic!("screenshot for {name}: {error}"));
        keep_screenshot(name, &png);
    }

    /// A PNG screenshot of the first element matching `css` (read it with [`crate::png`]).
    pub async fn screenshot_of(&self, css: &str) -> Vec<u8> {
        let element = self
            .client
            .find(fantoccini::Locator::Css(css))
            .await
            .unwrap_or_else(|error| panic!("find {css}: {error}"));
        element
            .screenshot()
            .await
            .unwrap_or_else(|error| panic!("screenshot {css}: {error}"))
    }

    /// Checks that hostile text on the current page stayed text: no script from it ran (the
    /// payloads set `window.__pwned`), no image and no element matching `injected` (CSS for
    /// what the payloads' markup would make, such as `#injected`) exists, and long text did
    /// not widen the page past the window. `page` names the page in the failure messages.
    pub async fn assert_hostile_text_inert(&self, injected: &str, page: &str) {
        let script = format!(
            "return {{
                pwned: typeof window.__pwned,
                images: document.images.length,
                injected: document.querySelector({injected:?}) !== null,
                overflow: document.documentElement.scrollWidth > window.innerWidth + 1,
            }};"
        );
        let state = self.eval(&script).await;
        assert_eq!(
            state["pwned"], "undefined",
            "{page}: a script from hostile text ran"
        );
        assert_eq!(
            state["images"], 0,
            "{page}: an img element came from hostile text"
        );
        assert_eq!(
            state["injected"], false,
            "{page}: markup from hostile text became elements ({injected})"
        );
        assert_eq!(
            state["overflow"], false,
            "{page}: long hostile text widened the page past the window"
        );
    }

    /// Polls `condition` (a JavaScript expression) until it is true or `timeout` passes;
    /// returns whether it became true.
    pub async fn wait_until(&self, condition: &str, timeout: Duration) -> bool {
        let script = format!("return Boolean({condition});");
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if self.eval(&script).await == Value::Bool(true) {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Ends the browser session and stops chromedriver.
    pub async fn quit(mut self) {
        let _ = self.client.clone().close().await;
        let _ = self.chromedriver.kill().await;
    }
}

fn free_loopback_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("find a free loopback port");
    listener.local_addr().expect("local address").port()
}

async fn wait_until_listening(port: u16) -> Result<(), String> {
    let deadline = tokio::time::Instant::now() + STARTUP_TIMEOUT;
    while tokio::time::Instant::now() < deadline {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err(format!(
        "chromedriver did not listen on port {port} within {STARTUP_TIMEOUT:?}"
    ))
}
