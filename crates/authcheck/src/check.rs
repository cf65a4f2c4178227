//! `authcheck check FILE`: run the verifier on one message file and print the report, for a
//! person (verdicts first, then what happened, then each check with its reason and the SPF
//! trace), as JSON, or (`--rewrite`) as the message the tester would deliver.

use std::io::{IsTerminal, Read, Write};

use authcheck_verifier::diagnosis::{Finding, Severity};
use authcheck_verifier::{
    BodyParameter, DkimResult, DmarcReport, DnsConfig, Grade, MessageInput, Report, SpfCheck,
    SpfResult, SpfTermOutcome, SpfTraceStep, Verdict, Verifier, VerifierConfig,
};

use crate::cli::{BodyArg, CheckArgs, ColorChoice, RewriteFor};
use crate::failure::Failure;

/// An unreadable or empty message is the user's to fix: [`Failure::Usage`], status 2.
fn read_message(file: &str) -> Result<Vec<u8>, Failure> {
    if file == "-" {
        let mut bytes = Vec::new();
        std::io::stdin().read_to_end(&mut bytes).map_err(|e| {
            Failure::Usage(format!("cannot read the message from standard input: {e}"))
        })?;
        return Ok(bytes);
    }
    std::fs::read(file).map_err(|e| {
        Failure::Usage(format!(
            "cannot read {file}: {e}; give a message file, or - for standard input"
        ))
    })
}

/// Exit status 0 whatever the verdicts: `check` reports them, it does not judge them.
pub async fn run(args: CheckArgs) -> Result<(), Failure> {
    let message = read_message(&args.file)?;
    if message.is_empty() {
        let source = if args.file == "-" {
            "standard input"
        } else {
            &args.file
        };
        return Err(Failure::Usage(format!(
            "{source} is empty; give a whole message (header fields and body)"
        )));
    }
    let mail_from = match args.mail_from.trim() {
        "<>" => "",
        other => other.trim_start_matches('<').trim_end_matches('>'),
    };
    let hostname = args
        .hostname
        .clone()
        .unwrap_or_else(crate::config::machine_hostname);
    let dns = DnsConfig {
        servers: args.dns_servers.clone(),
        ..DnsConfig::default()
    };
    let verifier = Verifier::new(VerifierConfig::new(hostname, dns)).map_err(|e| {
        Failure::Usage(format!(
            "cannot set up DNS from the system's resolver settings ({e}); name a resolver with --dns-server ADDR:PORT"
        ))
    })?;
    let input = MessageInput {
        client_ip: args.ip,
        helo: args.helo.trim(),
        mail_from,
        message: &message,
        body: match args.body {
            None => BodyParameter::Unknown,
            Some(BodyArg::None) => BodyParameter::Absent,
            Some(BodyArg::SevenBit) => BodyParameter::SevenBit,
            Some(BodyArg::EightBitMime) => BodyParameter::EightBitMime,
        },
    };
    let report = verifier.verify(&input).await;

    let mut out = std::io::stdout().lock();
    let written = if let Some(mailbox) = args.rewrite {
        let verdict = match mailbox {
            RewriteFor::Spf => &report.verdicts.spf,
            RewriteFor::Dkim => &report.verdicts.dkim,
        };
        out.write_all(&authcheck_verifier::message_as_delivered(
            &message,
            &verdict.to_string(),
            &report.authentication_results,
        ))
    } else if args.json {
        serde_json::to_writer_pretty(&mut out, &report)
            .map_err(std::io::Error::other)
            .and_then(|_| writeln!(out))
    } else {
        let color = match args.color {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => {
                std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none()
            }
        };
        out.write_all(render(&report, color).as_bytes())
    };
    // A closed pipe (`| head`) is not an error worth reporting.
    match written {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(Failure::Runtime(
            anyhow::anyhow!("cannot write the report: {e}"),
        )),
        _ => Ok(()),
    }
}

/// Colours a verdict or result the way the web site does: green pass, amber partial, red problem.
struct Paint {
    enabled: bool,
}

impl Paint {
    fn wrap(&self, code: &str, text: &str) -> String {
        if self.enabled {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }
    fn verdict(&self, verdict: Verdict) -> String {
        let code = match verdict.grade() {
            Grade::Ok => "1;32",
            Grade::PartialOk => "1;33",
            Grade::Problem => "1;31",
        };
        self.wrap(code, &verdict.to_string())
    }
    fn good(&self, ok: bool, text: &str) -> String {
        self.wrap(if ok { "32" } else { "31" }, text)
    }
    fn heading(&self, text: &str) -> String {
        self.wrap("1", text)
    }
    fn dim(&self, text: &str) -> String {
        self.wrap("2", text)
    }
}

/// The report as a person reads it at a glance.
pub fn render(report: &Report, color: bool) -> String {
    let p = Paint { enabled: color };
    let mut s = String::new();
    s.push_str(&format!(
        "{}  {}",
        p.verdict(report.verdicts.spf),
        p.verdict(report.verdicts.dkim)
    ));
    if !report.spf.check.checked {
        // `spf-none` would otherwise read as "the domain publishes no SPF record".
        s.push_str(&p.dim("  (SPF not checked: no client IP)"));
    }
    s.push('\n');
    render_diagnosis(&mut s, &p, &report.diagnosis);

    s.push_str(&format!("\n{}\n", p.heading("SPF")));
    render_spf(&mut s, &p, &report.spf.check, "  ");
    s.push_str(&format!(
        "  aligned with From: {}\n",
        yes_no(report.spf.aligned)
    ));
    if let Some(helo) = &report.spf.helo {
        s.push_str(&format!("  {}\n", p.heading("HELO identity")));
        render_spf(&mut s, &p, helo, "    ");
    }

    s.push_str(&format!("\n{}\n", p.heading("DKIM")));
    if report.dkim.is_empty() {
        s.push_str("  no DKIM-Signature header field\n");
    }
    for (i, sig) in report.dkim.iter().enumerate() {
        let ok = sig.result == DkimResult::Pass;
        s.push_str(&format!(
            "  #{} d={} s={} a={} c={}: {}\n",
            i + 1,
            or_dash(&sig.domain),
            or_dash(&sig.selector),
            or_dash(&sig.algorithm),
            sig.canonicalization,
            p.good(ok, sig.result.as_str())
        ));
        s.push_str(&format!("     {}\n", sig.reason));
        if let (Some(kind), Some(bits)) = (&sig.key_type, sig.key_bits) {
            s.push_str(&format!("     key: {kind} {bits} bits\n"));
        }
        s.push_str(&format!(
            "     aligned with From: {}\n",
            yes_no(sig.aligned)
        ));
        for warning in &sig.warnings {
            s.push_str(&format!("     warning: {warning}\n"));
        }
    }
    if report.dkim_not_listed > 0 {
        s.push_str(&format!(
            "  ... and {} more DKIM-Signature fields, not verified and not listed\n",
            report.dkim_not_listed
        ));
    }

    let d = &report.dmarc;
    s.push_str(&format!("\n{}\n", p.heading("DMARC")));
    s.push_str(&format!(
        "  From domain: {} (organizational domain {})\n",
        d.from_domain.as_deref().unwrap_or("-"),
        d.organizational_domain.as_deref().unwrap_or("-")
    ));
    if let Some(problem) = &d.problem {
        s.push_str(&format!("  problem: {problem}\n"));
    }
    match &d.record {
        Some(r) => s.push_str(&format!("  record at {}: {}\n", r.name, r.text)),
        None => s.push_str("  no DMARC record\n"),
    }
    s.push_str(&format!(
        "  result: {}, policy a receiver would apply: {}\n  {}\n",
        p.good(
            d.result == authcheck_verifier::DmarcResult::Pass,
            d.result.as_str()
        ),
        d.policy,
        d.reason
    ));
    render_dmarc_walk(&mut s, &p, d);

    s.push_str(&format!("\n{}\n", p.heading("ARC")));
    s.push_str(&format!(
        "  {} ({} sets): {}\n",
        report.arc.result.as_str(),
        report.arc.sets,
        report.arc.reason
    ));

    s.push_str(&format!(
        "\n{}\n{}\n",
        p.heading("Authentication-Results"),
        p.dim(&report.authentication_results)
    ));
    s
}

/// RFC 9989's DNS tree walk: each `_dmarc` name asked, the organizational domain of each
/// identifier, notes on the record, and where a receiver following RFC 7489 decides otherwise.
fn render_dmarc_walk(s: &mut String, p: &Paint, d: &DmarcReport) {
    if !d.queries.is_empty() {
        s.push_str(&format!(
            "  DNS tree walk ({} of at most {} queries from the From domain):\n",
            d.walk_queries, d.walk_query_limit
        ));
        for query in &d.queries {
            s.push_str(&format!(
                "    {} ({}): {}{}\n",
                query.name,
                query.purpose,
                query.answer.as_str(),
                if query.detail.is_empty() {
                    String::new()
                } else {
                    format!(" {}", p.dim(&format!("— {}", query.detail)))
                }
            ));
        }
    }
    for org in &d.organizational_domains {
        s.push_str(&format!(
            "  organizational domain of {} {}: {} ({}; by the Public Suffix List: {})\n",
            org.role.as_str(),
            org.domain,
            org.organizational_domain.as_deref().unwrap_or("-"),
            org.how,
            org.rfc7489_organizational_domain
        ));
    }
    for note in &d.notes {
        s.push_str(&format!("  note: {note}\n"));
    }
    for difference in &d.rfc7489_differences {
        s.push_str(&format!("  RFC 7489 receivers differ: {difference}\n"));
    }
}

/// The findings, most serious first: what happened, the evidence, what to do.
fn render_diagnosis(s: &mut String, p: &Paint, findings: &[Finding]) {
    if findings.is_empty() {
        return;
    }
    s.push_str(&format!("\n{}\n", p.heading("What happened")));
    for finding in findings {
        let severity = finding.severity.as_str();
        let label = match finding.severity {
            Severity::Problem => p.wrap("1;31", severity),
            Severity::Warning => p.wrap("1;33", severity),
            Severity::Info => p.dim(severity),
        };
        s.push_str(&format!(
            "  {label} {} {}\n",
            finding.title,
            p.dim(&format!("[{}]", finding.code.as_str()))
        ));
        s.push_str(&format!("     {}\n", finding.detail));
        for line in &finding.evidence {
            s.push_str(&format!("     {} {}\n", p.dim("evidence:"), line));
        }
        if let Some(fix) = &finding.fix {
            s.push_str(&format!("     fix: {fix}\n"));
        }
    }
}

fn render_spf(s: &mut String, p: &Paint, check: &SpfCheck, indent: &str) {
    if !check.checked {
        s.push_str(&format!("{indent}not checked: {}\n", check.reason));
        return;
    }
    s.push_str(&format!(
        "{indent}{} for {} (domain {})\n",
        p.good(check.result == SpfResult::Pass, check.result.as_str()),
        or_dash(&check.identity),
        or_dash(&check.domain)
    ));
    s.push_str(&format!("{indent}{}\n", check.reason));
    if let Some(exp) = &check.explanation {
        s.push_str(&format!("{indent}explanation: {exp}\n"));
    }
    for record in &check.records {
        s.push_str(&format!("{indent}record: {record}\n"));
    }
    s.push_str(&format!(
        "{indent}DNS lookups {}/{}, void lookups {}/{}\n",
        check.dns_lookups, check.dns_lookup_limit, check.void_lookups, check.void_lookup_limit
    ));
    render_trace(s, p, &check.trace, &format!("{indent}  "));
    if check.trace_not_listed > 0 {
        s.push_str(&format!(
            "{indent}  ... and {} more steps, not listed\n",
            check.trace_not_listed
        ));
    }
}

fn render_trace(s: &mut String, p: &Paint, steps: &[SpfTraceStep], indent: &str) {
    for step in steps {
        let mark = match step.outcome {
            SpfTermOutcome::Match => p.wrap("1", "match   "),
            SpfTermOutcome::NoMatch => "no match".to_string(),
            SpfTermOutcome::Error => p.wrap("31", "error   "),
            SpfTermOutcome::Applied => "applied ".to_string(),
            SpfTermOutcome::Ignored => p.dim("ignored "),
        };
        s.push_str(&format!(
            "{indent}{mark} {}  {}\n",
            step.term,
            p.dim(&step.detail)
        ));
        render_trace(s, p, &step.nested, &format!("{indent}    "));
    }
}

fn yes_no(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}

fn or_dash(s: &str) -> &str {
    if s.is_empty() { "-" } else { s }
}
