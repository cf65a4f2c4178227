//! What one benchmark run measured — throughput, end-of-DATA latencies, errors, the service's
//! memory and the held connections — and how it is printed: a table for people, one
//! `key=value` summary line per target for scripts, and the ratio to the smtp-sink ceiling.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

/// Latency samples, sorted once so that any percentile is a lookup.
#[derive(Clone, Debug, Default)]
pub struct Latencies {
    sorted: Vec<Duration>,
}

impl Latencies {
    pub fn new(mut samples: Vec<Duration>) -> Self {
        samples.sort_unstable();
        Latencies { sorted: samples }
    }

    /// The nearest-rank percentile: the smallest sample that at least `percent`% of all samples
    /// do not exceed. `None` when there are no samples.
    pub fn percentile(&self, percent: f64) -> Option<Duration> {
        let count = self.sorted.len();
        if count == 0 {
            return None;
        }
        let rank = (percent.clamp(0.0, 100.0) / 100.0 * count as f64).ceil() as usize;
        Some(self.sorted[rank.clamp(1, count) - 1])
    }

    pub fn max(&self) -> Option<Duration> {
        self.sorted.last().copied()
    }
}

/// One kind of failure (a stage and the reply code, or a connection problem), how often it
/// happened, and the first full reply or message seen for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ErrorTally {
    pub count: u64,
    pub example: String,
}

/// Failures keyed by kind, e.g. `RCPT 550 5.1.1` or `DATA end: timed out`.
pub type Errors = BTreeMap<String, ErrorTally>;

/// Adds one failure of `kind` to `errors`.
pub fn record_error(errors: &mut Errors, kind: String, example: impl FnOnce() -> String) {
    errors
        .entry(kind)
        .or_insert_with(|| ErrorTally {
            count: 0,
            example: example(),
        })
        .count += 1;
}

/// Merges the tallies of `more` into `errors`, keeping the first example of each kind.
pub fn merge_errors(errors: &mut Errors, more: Errors) {
    for (kind, tally) in more {
        let entry = errors.entry(kind).or_insert(ErrorTally {
            count: 0,
            example: tally.example,
        });
        entry.count += tally.count;
    }
}

/// What became of the idle connections held open during the run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HoldReport {
    pub requested: usize,
    /// Greeted with 220 and answered EHLO with 250.
    pub accepted: usize,
    /// Greeted (or answered) with 421: the service refused the connection.
    pub refused: usize,
    /// Could not connect, timed out, or got another reply.
    pub failed: usize,
    /// Accepted, but closed or stopped answering NOOP before the run ended.
    pub dropped: usize,
}

/// The service's memory, from `/proc/<pid>/status`, in kibibytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MemoryReport {
    /// `VmHWM`, the kernel's resident-set high-water mark over the process's whole life.
    pub peak_kib: Option<u64>,
    /// `VmRSS` once the held connections were open, before the load started.
    pub holding_kib: Option<u64>,
    /// The largest `VmRSS` sampled while the load ran.
    pub sampled_max_kib: Option<u64>,
}

/// Everything measured against one target.
#[derive(Clone, Debug)]
pub struct RunReport {
    pub target: String,
    /// Messages whose end of DATA was answered with 250.
    pub delivered: u64,
    pub elapsed: Duration,
    pub latencies: Latencies,
    pub errors: Errors,
    /// The CPU time the server used during the load phase (user and system).
    pub cpu: Option<Duration>,
    pub memory: MemoryReport,
    pub hold: HoldReport,
}

impl RunReport {
    /// Delivered messages per second of the load phase.
    pub fn rate(&self) -> f64 {
        let seconds = self.elapsed.as_secs_f64();
        if seconds > 0.0 {
            self.delivered as f64 / seconds
        } else {
            0.0
        }
    }

    /// The server's CPU time per delivered message.
    pub fn cpu_per_message(&self) -> Option<Duration> {
        let cpu = self.cpu?;
        (self.delivered > 0).then(|| cpu / self.delivered.try_into().unwrap_or(u32::MAX))
    }

    pub fn error_count(&self) -> u64 {
        self.errors.values().map(|tally| tally.count).sum()
    }

    /// One line of `key=value` fields, for scripts and for the README's figures.
    pub fn summary_line(&self) -> String {
        let mut line = format!(
            "target={} messages={} rate={:.1} msg/s p50={} p99={} cpu_per_msg={} peak_rss={} errors={}",
            self.target,
            self.delivered,
            self.rate(),
            millis(self.latencies.percentile(50.0)),
            millis(self.latencies.percentile(99.0)),
            micros(self.cpu_per_message()),
            mebibytes(self.memory.peak_kib),
            self.error_count(),
        );
        if self.hold.requested > 0 {
            let hold = &self.hold;
            let _ = write!(
                line,
                " hold={} accepted={} refused={} failed={} dropped={} rss_holding={}",
                hold.requested,
                hold.accepted,
                hold.refused,
                hold.failed,
                hold.dropped,
                mebibytes(self.memory.holding_kib),
            );
        }
        line
    }
}

/// `ratio=NN% of smtp-sink`: the service's message rate as a share of the ceiling's.
pub fn ratio_line(service: &RunReport, ceiling: &RunReport) -> String {
    let ceiling_rate = ceiling.rate();
    if ceiling_rate > 0.0 {
        format!(
            "ratio={:.0}% of {}",
            service.rate() / ceiling_rate * 100.0,
            ceiling.target
        )
    } else {
        format!("ratio=n/a ({} delivered nothing)", ceiling.target)
    }
}

/// A plain table of every run, then the errors of each run that had any.
pub fn table(reports: &[RunReport]) -> String {
    let mut out = format!(
        "{:<10} {:>9} {:>6} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>9} {:>9} {:>9} {:>9} {:>10}\n",
        "target",
        "delivered",
        "errors",
        "time",
        "msg/s",
        "p50",
        "p90",
        "p99",
        "max",
        "cpu/msg",
        "peak_rss",
        "rss_run",
        "rss_held",
        "held/asked",
    );
    for report in reports {
        let latencies = &report.latencies;
        let _ = writeln!(
            out,
            "{:<10} {:>9} {:>6} {:>7.2}s {:>8.1} {:>8} {:>8} {:>8} {:>8} {:>9} {:>9} {:>9} {:>9} {:>10}",
            report.target,
            report.delivered,
            report.error_count(),
            report.elapsed.as_secs_f64(),
            report.rate(),
            millis(latencies.percentile(50.0)),
            millis(latencies.percentile(90.0)),
            millis(latencies.percentile(99.0)),
            millis(latencies.max()),
            micros(report.cpu_per_message()),
            mebibytes(report.memory.peak_kib),
            mebibytes(report.memory.sampled_max_kib),
            mebibytes(report.memory.holding_kib),
            format!("{}/{}", report.hold.accepted, report.hold.requested),
        );
    }
    for report in reports.iter().filter(|report| !report.errors.is_empty()) {
        let _ = writeln!(out, "errors from {}:", report.target);
        for (kind, tally) in &report.errors {
            let _ = writeln!(
                out,
                "  {:>6} x {kind} (first: {})",
                tally.count, tally.example
            );
        }
    }
    out
}

fn micros(duration: Option<Duration>) -> String {
    match duration {
        Some(duration) => format!("{}us", duration.as_micros()),
        None => "n/a".into(),
    }
}

fn millis(duration: Option<Duration>) -> String {
    match duration {
        Some(duration) => format!("{:.2}ms", duration.as_secs_f64() * 1000.0),
        None => "n/a".into(),
    }
}

/// Mebibytes, printed with the customary `MB`.
fn mebibytes(kib: Option<u64>) -> String {
    match kib {
        Some(kib) => format!("{:.1}MB", kib as f64 / 1024.0),
        None => "n/a".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn percentiles_follow_the_nearest_rank_whatever_the_input_order() {
        // 1..=100 ms, shuffled by a fixed stride so the input is not sorted.
        let samples: Vec<Duration> = (0..100).map(|i| ms((i * 37) % 100 + 1)).collect();
        let latencies = Latencies::new(samples);
        assert_eq!(latencies.percentile(50.0), Some(ms(50)));
        assert_eq!(latencies.percentile(90.0), Some(ms(90)));
        assert_eq!(latencies.percentile(99.0), Some(ms(99)));
        assert_eq!(latencies.percentile(100.0), Some(ms(100)));
        assert_eq!(latencies.percentile(0.0), Some(ms(1)));
        assert_eq!(latencies.max(), Some(ms(100)));
    }

    #[test]
    fn a_rare_slow_reply_shows_in_p99_only_when_it_is_over_one_percent() {
        let mut samples = vec![ms(1); 199];
        samples.push(ms(500));
        let latencies = Latencies::new(samples.clone());
        assert_eq!(latencies.percentile(99.0), Some(ms(1)));
        assert_eq!(latencies.max(), Some(ms(500)));

        samples.extend([ms(500), ms(500)]);
        assert_eq!(Latencies::new(samples).percentile(99.0), Some(ms(500)));
    }

    #[test]
    fn percentiles_of_one_sample_and_of_none() {
        let one = Latencies::new(vec![ms(7)]);
        assert_eq!(one.percentile(1.0), Some(ms(7)));
        assert_eq!(one.percentile(99.0), Some(ms(7)));
        let none = Latencies::new(Vec::new());
        assert_eq!(none.percentile(50.0), None);
        assert_eq!(none.max(), None);
    }

    fn report(target: &str, delivered: u64, elapsed_ms: u64, latencies_ms: &[u64]) -> RunReport {
        RunReport {
            target: target.into(),
            delivered,
            elapsed: ms(elapsed_ms),
            latencies: Latencies::new(latencies_ms.iter().map(|&n| ms(n)).collect()),
            errors: Errors::new(),
            cpu: Some(Duration::from_secs(1)),
            memory: MemoryReport {
                peak_kib: Some(40 * 1024 + 512),
                holding_kib: None,
                sampled_max_kib: None,
            },
            hold: HoldReport::default(),
        }
    }

    #[test]
    fn summary_line_reports_rate_latencies_memory_and_errors() {
        let mut run = report("authcheck", 3000, 2000, &[2, 4, 6, 8]);
        record_error(&mut run.errors, "RCPT 451".into(), || {
            "451 4.3.0 try later".into()
        });
        record_error(&mut run.errors, "RCPT 451".into(), || {
            "451 4.3.0 another text".into()
        });
        assert_eq!(
            run.summary_line(),
            "target=authcheck messages=3000 rate=1500.0 msg/s p50=4.00ms p99=8.00ms cpu_per_msg=333us peak_rss=40.5MB errors=2"
        );
        assert_eq!(run.errors["RCPT 451"].example, "451 4.3.0 try later");
    }

    #[test]
    fn summary_line_tells_what_became_of_held_connections() {
        let mut run = report("authcheck", 10, 1000, &[1]);
        run.hold = HoldReport {
            requested: 500,
            accepted: 450,
            refused: 50,
            failed: 0,
            dropped: 1,
        };
        run.memory.holding_kib = Some(30 * 1024);
        assert!(
            run.summary_line().ends_with(
                " hold=500 accepted=450 refused=50 failed=0 dropped=1 rss_holding=30.0MB"
            ),
            "{}",
            run.summary_line()
        );
    }

    #[test]
    fn ratio_compares_message_rates() {
        let sink = report("smtp-sink", 4000, 1000, &[1]);
        let service = report("authcheck", 1800, 1000, &[1]);
        assert_eq!(ratio_line(&service, &sink), "ratio=45% of smtp-sink");
        let empty_sink = report("smtp-sink", 0, 1000, &[]);
        assert_eq!(
            ratio_line(&service, &empty_sink),
            "ratio=n/a (smtp-sink delivered nothing)"
        );
    }

    #[test]
    fn merged_errors_add_up_per_kind() {
        let mut total = Errors::new();
        let mut first = Errors::new();
        record_error(&mut first, "DATA end 554".into(), || "554 first".into());
        let mut second = Errors::new();
        record_error(&mut second, "DATA end 554".into(), || "554 second".into());
        record_error(&mut second, "connect".into(), || "refused".into());
        merge_errors(&mut total, first);
        merge_errors(&mut total, second);
        assert_eq!(
            total["DATA end 554"],
            ErrorTally {
                count: 2,
                example: "554 first".into()
            }
        );
        assert_eq!(total["connect"].count, 1);
        let mut run = report("authcheck", 1, 1000, &[1]);
        run.errors = total;
        let table = table(&[run]);
        assert!(table.contains("errors from authcheck:"), "{table}");
        assert!(
            table.contains("2 x DATA end 554 (first: 554 first)"),
            "{table}"
        );
    }
}
