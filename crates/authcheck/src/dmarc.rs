//! DMARC reports in the binary: [`keep_report`], the one way a report that arrived (at `rua@` or
//! `ruf@` over SMTP, or from a file) is parsed and stored, and `authcheck dmarc import PATH…`,
//! which stores report files, `.eml` messages, mbox files and Maildir folders that operators
//! already have.
//!
//! Parsing is the `dmarc-reports` crate's; storing is the store's. Every input ends up stored
//! (a new report), recognised as a duplicate (the same reporter and report id stored before) or
//! rejected (stored with the reason, and listed): nothing is dropped silently. Of a rejected
//! input only the first [`MAX_REJECTED_BYTES`] are kept, since anyone can mail the report
//! addresses anything for as long as `dmarc_retention` keeps it.

use std::collections::HashSet;
use std::fs::File;
use std::io::{BufReader, IsTerminal, Read};
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use authcheck_dmarc_reports::{Limits, Report};
use authcheck_store::{NewRejectedReport, NewReport, ReportInsert, SharedStore, StoreError};
use authcheck_verifier::Dns;
use chrono::Utc;
use indicatif::{ProgressBar, ProgressStyle};

use crate::failure::Failure;
use crate::sources::{self, Named};

/// The most bytes of a rejected input kept: enough to see what a reporter's software sent
/// (reports are mailed compressed, mostly well under this), too few for junk mailed to the
/// report addresses to fill the disk at a megabyte per message rather than ten.
pub const MAX_REJECTED_BYTES: usize = 1024 * 1024;

/// What became of a report given to [`keep_report`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kept {
    /// A new report, stored under `id`; `sources` are the distinct source addresses of its
    /// records (none for a failure report), whose names are worth looking up.
    Stored { id: String, sources: Vec<IpAddr> },
    /// The same reporter and report id were stored before, under this id; nothing was written.
    Duplicate(String),
    /// Not a report that could be parsed: stored as a rejected report with the reason.
    Rejected { id: String, reason: String },
}

/// Parses `raw` (on a blocking thread: a large report takes a while) and stores it, or stores
/// it as rejected with the reason; `source` says where it came from (`smtp:<recipient>` or a
/// file). Durable when this returns `Ok`; counted in `authcheck_dmarc_reports_total`.
pub async fn keep_report(
    store: &SharedStore,
    raw: Vec<u8>,
    received_at: i64,
    source: &str,
) -> Result<Kept, StoreError> {
    let (parsed, raw) = tokio::task::spawn_blocking(move || {
        // A bug in the parser is no reason to lose the report or to have its sender retry
        // for days: it is kept as rejected, with the panic as its reason.
        let parsed = std::panic::catch_unwind(|| {
            let limits = Limits::default();
            let report = authcheck_dmarc_reports::parse(&raw, &limits)?;
            report.check_received(received_at, &limits)?;
            Ok::<_, NotParsed>(report)
        })
        .unwrap_or_else(|panic| Err(ParserFailure(panic_text(&*panic))));
        (parsed, raw)
    })
    .await
    .map_err(|e| StoreError::Unavailable(format!("the report parser did not run: {e}")))?;
    let kept = match parsed {
        Ok(report) => {
            let sources = distinct_sources(&report);
            // Taken, not copied: a large report's parse is large, and it is not held while
            // the rows are written.
            let row = NewReport::from_parsed(report, raw, received_at);
            match store.insert_report(row).await? {
                ReportInsert::Stored(id) => Kept::Stored { id, sources },
                ReportInsert::Duplicate(id) => Kept::Duplicate(id),
            }
        }
        Err(rejection) => {
            let mut reason = rejection.reason();
            let mut raw = raw;
            if raw.len() > MAX_REJECTED_BYTES {
                reason.push_str(&format!(
                    " (only its first {MAX_REJECTED_BYTES} of {} bytes are kept)",
                    raw.len()
                ));
                raw.truncate(MAX_REJECTED_BYTES);
                raw.shrink_to_fit();
            }
            let id = store
                .insert_rejected_report(NewRejectedReport {
                    received_at,
                    source: source.to_owned(),
                    reason: reason.clone(),
                    raw,
                })
                .await?;
            Kept::Rejected { id, reason }
        }
    };
    let outcome = match &kept {
        Kept::Stored { .. } => "stored",
        Kept::Duplicate(_) => "duplicate",
        Kept::Rejected { .. } => "rejected",
    };
    metrics::counter!("authcheck_dmarc_reports_total", "outcome" => outcome).increment(1);
    Ok(kept)
}

/// Why [`keep_report`] rejected a report: the parser's reason, or a panic in the parser.
enum NotParsed {
    Rejection(authcheck_dmarc_reports::Rejection),
    ParserFailure(String),
}
use NotParsed::ParserFailure;

impl From<authcheck_dmarc_reports::Rejection> for NotParsed {
    fn from(rejection: authcheck_dmarc_reports::Rejection) -> Self {
        NotParsed::Rejection(rejection)
    }
}

impl NotParsed {
    fn reason(&self) -> String {
        match self {
            NotParsed::Rejection(rejection) => rejection.to_string(),
            NotParsed::ParserFailure(panic) => {
                format!(
                    "the report parser failed on this report ({panic}); this is a bug in authcheck"
                )
            }
        }
    }
}

fn panic_text(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|text| (*text).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic".to_owned())
}

/// The distinct source addresses of an aggregate report's records, in the order first seen.
fn distinct_sources(report: &Report) -> Vec<IpAddr> {
    let Report::Aggregate(aggregate) = report else {
        return Vec::new();
    };
    let mut seen = std::collections::HashSet::new();
    aggregate
        .records
        .iter()
        .map(|record| record.source_ip)
        .filter(|ip| seen.insert(*ip))
        .collect()
}

/// What an import did.
#[derive(Debug, Default)]
struct Summary {
    imported: u64,
    duplicates: u64,
    rejected: Vec<(String, String)>,
    /// Inputs that could not be read (a file gone from a Maildir being delivered to, say),
    /// each with the reason; the import goes on with the others.
    unread: Vec<String>,
}

/// One input: a file, a message of an mbox file, or a message of a Maildir.
struct Input {
    source: String,
    bytes: Vec<u8>,
}

/// Most distinct source addresses one import looks up; the rest are named with a later report
/// that names them. At [`sources::CONCURRENT_LOOKUPS`] at a time this is minutes, not hours.
pub const MAX_IMPORT_LOOKUPS: usize = 100_000;

/// Addresses looked up between two progress steps, and the fewest looked up before a resolver
/// that answered none of them is taken as unreachable (two rounds of concurrent lookups).
const LOOKUPS_PER_STEP: usize = 2 * sources::CONCURRENT_LOOKUPS;

/// A progress bar on a terminal, hidden otherwise.
fn progress_bar(length: usize, template: &str) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    ProgressBar::new(length as u64).with_style(
        ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar()),
    )
}

/// `authcheck dmarc import PATH…`: stores every report, then, with `dns`, looks up the names
/// of the stored reports' source addresses the way the service does after its 250 (bounded
/// the same way per report, and in all by [`MAX_IMPORT_LOOKUPS`]).
pub async fn import(
    store: &SharedStore,
    files: &[PathBuf],
    dns: Option<&Dns>,
) -> Result<(), Failure> {
    let progress = progress_bar(files.len(), "{bar:40} {pos}/{len} files  {msg}");
    let mut summary = Summary::default();
    let mut sources = Vec::new();
    let mut seen = HashSet::new();
    for file in files {
        progress.set_message(file.display().to_string());
        let inputs = match read_inputs(file) {
            Ok(inputs) => inputs,
            Err(problem) => {
                summary.unread.push(problem);
                progress.inc(1);
                continue;
            }
        };
        for input in inputs {
            let input = match input {
                Ok(input) => input,
                Err(problem) => {
                    summary.unread.push(problem);
                    break;
                }
            };
            let received_at = Utc::now().timestamp();
            match keep_report(store, input.bytes, received_at, &input.source)
                .await
                .map_err(store_failure)?
            {
                Kept::Stored {
                    sources: report_sources,
                    ..
                } => {
                    summary.imported += 1;
                    let room = MAX_IMPORT_LOOKUPS - sources.len();
                    sources.extend(
                        report_sources
                            .into_iter()
                            .take(sources::LOOKUPS_PER_REPORT)
                            .filter(|ip| seen.insert(*ip))
                            .take(room),
                    );
                }
                Kept::Duplicate(_) => summary.duplicates += 1,
                Kept::Rejected { reason, .. } => summary.rejected.push((input.source, reason)),
            }
        }
        progress.inc(1);
    }
    progress.finish_and_clear();
    println!(
        "authcheck: imported {}, duplicates {}, rejected {}",
        summary.imported,
        summary.duplicates,
        summary.rejected.len()
    );
    for (source, reason) in &summary.rejected {
        println!("  rejected {source}: {reason}");
    }
    for problem in &summary.unread {
        println!("  not read: {problem}");
    }
    match dns {
        None => println!("authcheck: source names not looked up (--no-lookups)"),
        Some(_) if sources.is_empty() => {}
        Some(dns) => name_imported_sources(store, dns, &sources).await?,
    }
    match summary.unread.len() {
        0 => Ok(()),
        unread => Err(Failure::Usage(format!(
            "{unread} input(s) could not be read (listed above as \"not read\"); everything \
             else was imported, so importing them again once they can be read adds only them"
        ))),
    }
}

/// Looks up the names of `sources`, with a progress bar, and says what it found. A resolver
/// that answers none of the first lookups is taken as unreachable (offline): the rest are
/// left for later rather than waited for one by one.
async fn name_imported_sources(
    store: &SharedStore,
    dns: &Dns,
    sources: &[IpAddr],
) -> Result<(), Failure> {
    let progress = progress_bar(sources.len(), "{bar:40} {pos}/{len} source names");
    let mut named = Named::default();
    let mut unreachable = None;
    for (step, chunk) in sources.chunks(LOOKUPS_PER_STEP).enumerate() {
        named.add(
            sources::name_sources(store, dns, chunk.to_vec())
                .await
                .map_err(store_failure)?,
        );
        progress.inc(chunk.len() as u64);
        if named.answered() == 0 && named.failed >= LOOKUPS_PER_STEP as u64 {
            unreachable = Some(sources.len().saturating_sub((step + 1) * LOOKUPS_PER_STEP));
            break;
        }
    }
    progress.finish_and_clear();
    println!(
        "authcheck: source names: {} looked up ({} with a name, {} without a PTR record), \
         {} failed, {} known already",
        named.answered() + named.failed,
        named.named,
        named.without_name,
        named.failed,
        named.known
    );
    if let Some(left) = unreachable {
        println!(
            "authcheck: the DNS resolver answered none of the first {} lookups, so the other {left} \
             addresses were not looked up; they are named when a later report names them \
             (use --no-lookups to skip lookups when offline)",
            named.failed
        );
    }
    Ok(())
}

fn store_failure(error: authcheck_store::StoreError) -> Failure {
    match error {
        authcheck_store::StoreError::Unavailable(problem) => Failure::Temporary(problem),
        other => Failure::Runtime(anyhow::anyhow!("storing a report failed: {other}")),
    }
}

/// The files to read: each file named, the messages of each Maildir (`cur/` and `new/`), and
/// the files of any other folder, in name order; a path that cannot be read is a usage error.
pub fn files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, Failure> {
    let mut files = Vec::new();
    for path in paths {
        let meta = std::fs::metadata(path)
            .map_err(|e| Failure::Usage(format!("cannot read {}: {e}", path.display())))?;
        if !meta.is_dir() {
            files.push(path.clone());
            continue;
        }
        let maildir = ["cur", "new"].map(|sub| path.join(sub));
        let folders: Vec<&Path> = if maildir.iter().any(|f| f.is_dir()) {
            maildir
                .iter()
                .filter(|f| f.is_dir())
                .map(|f| f.as_path())
                .collect()
        } else {
            vec![path.as_path()]
        };
        for folder in folders {
            let mut entries = Vec::new();
            for entry in std::fs::read_dir(folder)
                .map_err(|e| Failure::Usage(format!("cannot read {}: {e}", folder.display())))?
            {
                let entry = entry?;
                if entry.file_type()?.is_file() {
                    entries.push(entry.path());
                }
            }
            entries.sort();
            files.extend(entries);
        }
    }
    Ok(files)
}

/// The inputs of one file, each read when it is taken; see [`read_inputs`].
type Inputs = Box<dyn Iterator<Item = Result<Input, String>> + Send>;

/// The inputs in one file, read one at a time: the messages of an mbox file (it starts with a
/// `From ` line), or the whole file. A problem is given as the line the summary prints; an
/// mbox file that cannot be read on ends there, after the messages read before it.
fn read_inputs(path: &Path) -> Result<Inputs, String> {
    let name = path.display().to_string();
    let unreadable = |e: std::io::Error| format!("{name}: {e}");
    // An mbox file starts with a `From ` line; its messages are read one by one, not the file
    // whole beside them.
    let mut start = Vec::with_capacity(5);
    File::open(path)
        .map_err(unreadable)?
        .take(5)
        .read_to_end(&mut start)
        .map_err(unreadable)?;
    if start != b"From " {
        let bytes = std::fs::read(path).map_err(unreadable)?;
        return Ok(Box::new(std::iter::once(Ok(Input {
            source: name,
            bytes,
        }))));
    }
    let messages = mail_parser::mailbox::mbox::MessageIterator::new(BufReader::new(
        File::open(path).map_err(unreadable)?,
    ));
    Ok(Box::new(messages.enumerate().map(move |(n, message)| {
        let source = format!("{name} (message {})", n + 1);
        match message {
            Ok(message) => Ok(Input {
                source,
                bytes: message.contents().to_vec(),
            }),
            Err(e) => Err(format!("{source}: {e}; the messages before it were read")),
        }
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2023-11-16 00:00 UTC, an hour after the test report's period ends.
    const RECEIVED: i64 = 1_700_092_800;

    fn aggregate(domain: &str, begin: i64, end: i64) -> Vec<u8> {
        format!(
            "<feedback><report_metadata><org_name>R</org_name><report_id>{domain}-{begin}\
             </report_id><date_range><begin>{begin}</begin><end>{end}</end></date_range>\
             </report_metadata><policy_published><domain>{domain}</domain><p>none</p>\
             </policy_published><record><row><source_ip>192.0.2.1</source_ip><count>2</count>\
             </row><identifiers><header_from>example.org</header_from></identifiers></record>\
             </feedback>"
        )
        .into_bytes()
    }

    async fn keep(store: &SharedStore, raw: Vec<u8>) -> Kept {
        keep_report(store, raw, RECEIVED, "smtp:rua@tester.test")
            .await
            .unwrap()
    }

    async fn domains(store: &SharedStore) -> Vec<String> {
        let domains = store.dmarc_domains(10).await.unwrap();
        domains.into_iter().map(|d| d.domain).collect()
    }

    #[tokio::test]
    async fn a_report_is_kept_under_its_domain_as_its_page_looks_it_up() {
        let store = authcheck_store::open("sqlite::memory:").await.unwrap();
        let kept = keep(
            &store,
            aggregate("Example.ORG.", 1_700_006_400, 1_700_092_799),
        )
        .await;
        assert!(matches!(kept, Kept::Stored { .. }), "{kept:?}");
        assert_eq!(domains(&store).await, ["example.org"]);
    }

    /// A report dated in 9999 would top the dashboard for good: it is rejected, with the reason,
    /// and no domain is listed.
    #[tokio::test]
    async fn a_report_dated_in_the_future_is_rejected_with_the_reason() {
        let store = authcheck_store::open("sqlite::memory:").await.unwrap();
        let kept = keep(
            &store,
            aggregate("example.org", 253_370_764_800, 253_370_851_199),
        )
        .await;
        let Kept::Rejected { reason, .. } = kept else {
            panic!("{kept:?}");
        };
        assert!(reason.contains("ends 9999-01-01 23:59 UTC"), "{reason}");
        assert!(domains(&store).await.is_empty());
        let rejected = store.list_rejected_reports(10).await.unwrap();
        assert_eq!(rejected.len(), 1);
        assert_eq!(rejected[0].reason, reason);
    }

    #[tokio::test]
    async fn a_report_naming_no_domain_is_rejected_with_the_reason() {
        let store = authcheck_store::open("sqlite::memory:").await.unwrap();
        let failure = b"From: reporter@receiver.example\r\nSubject: DMARC failure\r\n\
            Content-Type: multipart/report; report-type=feedback-report; boundary=b\r\n\r\n\
            --b\r\nContent-Type: text/plain\r\n\r\nA message failed DMARC.\r\n\
            --b\r\nContent-Type: message/feedback-report\r\n\r\nFeedback-Type: auth-failure\r\n\
            Auth-Failure: dmarc\r\n\r\n--b--\r\n"
            .to_vec();
        let bad_name = aggregate("not a domain!", 1_700_006_400, 1_700_092_799);
        let mut reasons = Vec::new();
        for raw in [failure, bad_name] {
            match keep(&store, raw).await {
                Kept::Rejected { reason, .. } => reasons.push(reason),
                other => panic!("{other:?}"),
            }
        }
        assert!(reasons[0].contains("names no domain"), "{}", reasons[0]);
        assert!(
            reasons[1].contains("not a valid domain name"),
            "{}",
            reasons[1]
        );
        assert!(domains(&store).await.is_empty());
        assert_eq!(store.list_rejected_reports(10).await.unwrap().len(), 2);
    }

    /// Junk mailed to the report addresses costs the disk at most a megabyte a message, and
    /// the list says what was kept.
    #[tokio::test]
    async fn a_large_rejected_input_keeps_only_its_first_megabyte() {
        let folder = tempfile::tempdir().unwrap();
        let path = folder.path().join("reports.db");
        let store = authcheck_store::open(&format!("sqlite://{}", path.display()))
            .await
            .unwrap();
        let junk = vec![b'x'; 3 * MAX_REJECTED_BYTES];
        for _ in 0..5 {
            let Kept::Rejected { reason, .. } = keep(&store, junk.clone()).await else {
                panic!("junk is rejected");
            };
            assert!(
                reason.ends_with(&format!(
                    "(only its first {MAX_REJECTED_BYTES} of {} bytes are kept)",
                    junk.len()
                )),
                "{reason}"
            );
        }
        let listed = store.list_rejected_reports(10).await.unwrap();
        assert_eq!(listed.len(), 5);
        assert!(
            listed[0].reason.contains("are kept"),
            "{}",
            listed[0].reason
        );
        // Five 3 MiB inputs: 5 MiB kept, which the database and its write-ahead log may both
        // hold for a while, against 15 MiB in the database alone if they were kept whole.
        let on_disk: u64 = std::fs::read_dir(folder.path())
            .unwrap()
            .map(|entry| entry.unwrap().metadata().unwrap().len())
            .sum();
        assert!(on_disk < 12 * MAX_REJECTED_BYTES as u64, "{on_disk} bytes");

        // A small rejected input is kept whole, its reason unchanged.
        let Kept::Rejected { reason, .. } = keep(&store, b"not a report".to_vec()).await else {
            panic!("rejected");
        };
        assert!(!reason.contains("are kept"), "{reason}");
    }
}
