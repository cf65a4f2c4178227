//! The world the benchmark's messages come from: a loopback DNS zone in which the sender's SPF,
//! DMARC and DKIM records pass, and one DKIM-signed message of about the requested size.

use authcheck_testdns::TestDns;
use authcheck_testkit::{SignOptions, TestKey};
use std::net::{IpAddr, Ipv4Addr};

/// The domain in the From field, the MAIL FROM address and the DKIM `d=` tag.
pub const SENDER_DOMAIN: &str = "sender.test";
/// The host name the client gives in EHLO; it resolves to, and is named by, the client's address.
pub const CLIENT_HOSTNAME: &str = "mail.sender.test";
/// The tester domain the service is started with.
pub const TESTER_DOMAIN: &str = "tester.test";
pub const MAIL_FROM: &str = "loadgen@sender.test";
pub const RCPT_TO: &str = "spf@tester.test";

const CLIENT_IP: Ipv4Addr = Ipv4Addr::LOCALHOST;

/// Fills `dns` with every record a message from the benchmark client needs to pass SPF, DKIM and
/// DMARC, so the service does the full verification work on each message.
pub fn publish_sender_records(dns: &TestDns) {
    // Like any production nameserver, so that the service's resolver caches the answers that
    // say "no such record" (the HELO name's SPF, say) as it caches the others.
    dns.cache_negative_answers(300);
    dns.add_txt(SENDER_DOMAIN, &format!("v=spf1 ip4:{CLIENT_IP} -all"));
    dns.add_txt(&format!("_dmarc.{SENDER_DOMAIN}"), "v=DMARC1; p=reject");
    dns.add_a(CLIENT_HOSTNAME, CLIENT_IP);
    dns.add_ptr(IpAddr::V4(CLIENT_IP), CLIENT_HOSTNAME);
    authcheck_testkit::publish_keys(dns, SENDER_DOMAIN);
}

/// A message of about `size` bytes (DKIM-Signature field included) signed with `key`, with CRLF
/// line endings. Messages shorter than their header fields come out at header size.
pub fn signed_message(key: TestKey, size: usize) -> Vec<u8> {
    let options = SignOptions::new(SENDER_DOMAIN, key);
    let sign_with_body = |body: &str| {
        let unsigned = authcheck_testkit::message(MAIL_FROM, "authcheck load test", body);
        authcheck_testkit::sign(&unsigned, &options)
    };
    // The signature's length does not depend on the body, so one empty signing measures the
    // overhead exactly.
    let overhead = sign_with_body("").len();
    sign_with_body(&filler_body(size.saturating_sub(overhead)))
}

/// Readable text of exactly `len` bytes in CRLF-terminated lines of at most 78 characters (a
/// body of one byte cannot hold a line break and is a single space).
fn filler_body(len: usize) -> String {
    const LINE: &str = "The quick brown fox jumps over the lazy dog while authcheck counts.";
    let mut body = String::with_capacity(len);
    let mut number = 0;
    loop {
        number += 1;
        let line = format!("{number:04} {LINE}");
        let room = len - body.len();
        if room >= line.len() + 2 {
            body.push_str(&line);
            body.push_str("\r\n");
        } else if room >= 2 {
            body.push_str(&line[..room - 2]);
            body.push_str("\r\n");
            return body;
        } else if room == 1 && body.is_empty() {
            return " ".into();
        } else if room == 1 {
            // Widen the last line by one character instead of leaving a bare byte.
            body.insert(body.len() - 2, ' ');
            return body;
        } else {
            return body;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filler_body_has_the_exact_length_and_whole_lines() {
        for len in [0, 1, 2, 3, 50, 71, 72, 73, 74, 75, 76, 147, 148, 149, 4000] {
            let body = filler_body(len);
            assert_eq!(body.len(), len, "length {len}");
            if len >= 2 {
                assert!(body.ends_with("\r\n"), "length {len} ends mid-line");
            }
            assert!(
                body.split("\r\n")
                    .all(|line| line.len() <= 78 && !line.contains('\r'))
            );
        }
    }

    #[test]
    fn signed_message_is_about_the_requested_size_and_carries_a_dkim_signature() {
        for key in [TestKey::Rsa2048, TestKey::Ed25519] {
            let message = signed_message(key, 4096);
            assert_eq!(message.len(), 4096, "{key:?}");
            let text = String::from_utf8(message).expect("ASCII message");
            assert!(text.starts_with("DKIM-Signature:"), "{key:?}");
            assert!(text.contains(&format!("s={}", key.selector())), "{key:?}");
            assert!(text.contains(&format!("d={SENDER_DOMAIN}")), "{key:?}");
        }
    }
}
