//! The live feed at `/events`: results stored while a client is connected arrive as
//! server-sent events, filtered by mailbox and sender, and a client can catch up from a
//! result it already shows.

mod common;

use std::time::Duration;

use authcheck_store::Mailbox;
use common::{Sample, TestSite};
use futures::StreamExt;
use serde_json::Value;

/// Far longer than the feed needs (it polls every 250 ms), so a slow machine does not fail.
const EVENT_TIMEOUT: Duration = Duration::from_secs(10);

/// One parsed server-sent event.
#[derive(Debug)]
struct SseEvent {
    event: String,
    id: String,
    data: Value,
}

/// An open `/events` stream.
struct EventStream {
    body: futures::stream::BoxStream<'static, reqwest::Result<Vec<u8>>>,
    buffer: String,
}

impl EventStream {
    async fn open(site: &TestSite, query: &str) -> EventStream {
        EventStream::open_resuming(site, query, None).await
    }

    /// Opens the stream as a reconnecting browser does, sending the last event id it saw.
    async fn open_resuming(
        site: &TestSite,
        query: &str,
        last_event_id: Option<&str>,
    ) -> EventStream {
        let mut request = reqwest::Client::new().get(site.url(&format!("/events?{query}")));
        if let Some(id) = last_event_id {
            request = request.header("Last-Event-ID", id);
        }
        let response = request.send().await.expect("open the event stream");
        assert_eq!(response.status(), reqwest::StatusCode::OK);
        assert_eq!(response.headers()["content-type"], "text/event-stream");
        let body = response
            .bytes_stream()
            .map(|chunk| chunk.map(|bytes| bytes.to_vec()))
            .boxed();
        EventStream {
            body,
            buffer: String::new(),
        }
    }

    /// The next `result` event, skipping keep-alive comments; `None` after `EVENT_TIMEOUT`.
    async fn next_result(&mut self) -> Option<SseEvent> {
        let deadline = tokio::time::Instant::now() + EVENT_TIMEOUT;
        loop {
            while let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                if let Some(event) = parse_event(&block) {
                    return Some(event);
                }
            }
            let chunk = tokio::time::timeout_at(deadline, self.body.next())
                .await
                .ok()??;
            self.buffer.push_str(&String::from_utf8_lossy(
                &chunk.expect("read the event stream"),
            ));
        }
    }
}

fn parse_event(block: &str) -> Option<SseEvent> {
    let (mut event, mut id, mut data) = (String::new(), String::new(), String::new());
    for line in block.lines() {
        if let Some(value) = line.strip_prefix("event:") {
            event = value.trim_start().to_owned();
        } else if let Some(value) = line.strip_prefix("id:") {
            id = value.trim_start().to_owned();
        } else if let Some(value) = line.strip_prefix("data:") {
            data.push_str(value.trim_start());
        }
    }
    if data.is_empty() {
        return None;
    }
    Some(SseEvent {
        event,
        id,
        data: serde_json::from_str(&data).expect("event data is JSON"),
    })
}

#[tokio::test]
async fn a_result_stored_after_connecting_arrives_and_other_mailboxes_do_not() {
    let site = TestSite::start().await;
    site.insert(
        Sample {
            subject: Some("before connecting".into()),
            ..Sample::default()
        }
        .new_result(),
    )
    .await;
    let mut stream = EventStream::open(&site, "mailbox=spf").await;

    site.insert(
        Sample {
            mailbox: Mailbox::Dkim,
            ..Sample::default()
        }
        .new_result(),
    )
    .await;
    let hostile_subject = "<script>window.__pwned=1</script>";
    let id = site
        .insert(
            Sample {
                subject: Some(hostile_subject.into()),
                verdict: "!! spf-fail !!".into(),
                ..Sample::default()
            }
            .new_result(),
        )
        .await;

    let event = stream
        .next_result()
        .await
        .expect("the new spf@ result arrives");
    assert_eq!(event.event, "result");
    assert_eq!(event.id, id);
    assert_eq!(event.data["id"], id.as_str());
    assert_eq!(event.data["mailbox"], "spf");
    assert_eq!(event.data["subject"], hostile_subject);
    assert_eq!(
        event.data["url"],
        format!("{}/r/{id}", common::PUBLIC_URL).as_str()
    );
    let row = &event.data["row"];
    assert_eq!(row["id"], id.as_str());
    assert_eq!(row["verdict_class"], "problem");
    assert_eq!(
        row["prefixed_subject"],
        format!("!! spf-fail !! {hostile_subject}").as_str()
    );
    assert_eq!(row["time"], "2026-11-23 12:34:56 UTC");
}

#[tokio::test]
async fn the_sender_filter_applies_to_live_results() {
    let site = TestSite::start().await;
    let mut stream = EventStream::open(&site, "mailbox=dkim&sender=wanted.example").await;

    let unwanted = Sample {
        mailbox: Mailbox::Dkim,
        ..Sample::default()
    };
    site.insert(unwanted.new_result()).await;
    let wanted = Sample {
        mailbox: Mailbox::Dkim,
        mail_from: "bounce@elsewhere.example".into(),
        header_from: Some("Someone@Wanted.Example".into()),
        ..Sample::default()
    };
    let id = site.insert(wanted.new_result()).await;

    let event = stream
        .next_result()
        .await
        .expect("the matching result arrives");
    assert_eq!(
        event.id, id,
        "the result from another sender was filtered out"
    );
}

#[tokio::test]
async fn a_client_catches_up_from_the_newest_result_it_shows() {
    let site = TestSite::start().await;
    let shown = site.insert(Sample::default().new_result()).await;
    let missed = site
        .insert(
            Sample {
                subject: Some("arrived while loading".into()),
                ..Sample::default()
            }
            .new_result(),
        )
        .await;

    let mut stream = EventStream::open(&site, &format!("mailbox=spf&after={shown}")).await;
    let event = stream
        .next_result()
        .await
        .expect("the missed result is sent first");
    assert_eq!(event.id, missed);

    let live = site
        .insert(
            Sample {
                subject: Some("live".into()),
                ..Sample::default()
            }
            .new_result(),
        )
        .await;
    let event = stream
        .next_result()
        .await
        .expect("then live results follow");
    assert_eq!(event.id, live, "the missed result is not sent twice");
}

#[tokio::test]
async fn a_reconnecting_client_resumes_after_its_last_event_id() {
    let site = TestSite::start().await;
    let page_newest = site.insert(Sample::default().new_result()).await;
    let received_before_reconnect = site.insert(Sample::default().new_result()).await;
    let missed_while_reconnecting = site.insert(Sample::default().new_result()).await;

    let query = format!("mailbox=spf&after={page_newest}");
    let mut stream =
        EventStream::open_resuming(&site, &query, Some(&received_before_reconnect)).await;
    let event = stream
        .next_result()
        .await
        .expect("the result missed while reconnecting arrives");
    assert_eq!(
        event.id, missed_while_reconnecting,
        "Last-Event-ID wins over the page's after="
    );
}

#[tokio::test]
async fn bad_event_parameters_are_rejected() {
    let site = TestSite::start().await;
    let response = reqwest::get(site.url("/events?mailbox=pop3"))
        .await
        .unwrap();
    assert_eq!(response.status(), reqwest::StatusCode::BAD_REQUEST);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["parameter"], "mailbox");
}
