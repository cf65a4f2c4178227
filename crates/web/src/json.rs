//! The JSON form of a stored result, shared by the API and the live feed.
//!
//! Field names are part of the public API: `id`, `received_at`, `mailbox`, `client_ip`, `helo`,
//! `mail_from`, `header_from`, `subject`, `verdict`, `prefixed_subject`, `spf`, `dkim`,
//! `dkim_not_listed`, `dmarc`, `arc`, `authentication_results`, `diagnosis`, `session`, `url`. The verification
//! parts are copied from the stored report as they are, so fields the verifier adds appear here
//! too.

use authcheck_store::StoredResult;
use chrono::SecondsFormat;
use serde_json::{Value, json};

use crate::result_url;

/// The API object for `result`; `public_url` makes its absolute `url`.
pub(crate) fn result_json(result: &StoredResult, public_url: &str) -> Value {
    let report_part = |name: &str| result.report.get(name).cloned().unwrap_or(Value::Null);
    let session = &result.session;
    json!({
        "id": result.id,
        "received_at": result.received_at.to_rfc3339_opts(SecondsFormat::Micros, true),
        "mailbox": result.mailbox.as_str(),
        "client_ip": session.client_ip,
        "helo": session.helo,
        "mail_from": session.mail_from,
        "header_from": result.header_from,
        "subject": result.subject,
        "verdict": result.verdict,
        "prefixed_subject": result.prefixed_subject,
        "spf": report_part("spf"),
        "dkim": report_part("dkim"),
        // Reports stored before signatures were capped list them all.
        "dkim_not_listed": result.report.get("dkim_not_listed").cloned().unwrap_or_else(|| json!(0)),
        "dmarc": report_part("dmarc"),
        "arc": report_part("arc"),
        "authentication_results": report_part("authentication_results"),
        // Reports stored before diagnosis existed have none.
        "diagnosis": result.report.get("diagnosis").cloned().unwrap_or_else(|| json!([])),
        "session": session,
        "url": result_url(public_url, &result.id),
    })
}
