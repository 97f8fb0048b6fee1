//! A reader of `text/event-stream` responses (what `/photos/{id}/events` sends), event by
//! event, for tests that follow a stream while they act.

use std::time::Duration;

use futures_util::StreamExt;
use futures_util::stream::BoxStream;

/// One server-sent event.
#[derive(Debug, Clone)]
pub struct Event {
    /// `event:` (`message` when absent).
    pub name: String,
    /// `id:`, when sent.
    pub id: Option<String>,
    /// `data:`, parsed as JSON (`Null` when it is not JSON).
    pub data: serde_json::Value,
}

/// An open event stream.
pub struct EventStream {
    body: BoxStream<'static, reqwest::Result<bytes::Bytes>>,
    buffer: String,
    /// Comment lines seen so far (`: keep-alive`).
    pub comments: Vec<String>,
}

impl EventStream {
    /// Reads `response` (panics unless it is a 200 `text/event-stream`).
    pub fn new(response: reqwest::Response) -> EventStream {
        assert_eq!(response.status(), 200, "the event stream did not open");
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        assert_eq!(content_type, "text/event-stream");
        EventStream {
            body: response.bytes_stream().boxed(),
            buffer: String::new(),
            comments: Vec::new(),
        }
    }

    /// The next event within `within`; `None` when the stream ended or nothing came in time.
    pub async fn next(&mut self, within: Duration) -> Option<Event> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                if let Some(event) = self.parse(&block) {
                    return Some(event);
                }
                continue;
            }
            let chunk = tokio::time::timeout_at(deadline, self.body.next())
                .await
                .ok()??;
            let chunk = chunk.unwrap_or_else(|error| panic!("reading the event stream: {error}"));
            self.buffer.push_str(&String::from_utf8_lossy(&chunk));
        }
    }

    /// Events until one satisfies `last` (returned too), within `within` in all; panics when
    /// the stream ends or the time runs out first.
    pub async fn until(&mut self, within: Duration, last: impl Fn(&Event) -> bool) -> Vec<Event> {
        let deadline = tokio::time::Instant::now() + within;
        let mut events = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let Some(event) = self.next(left).await else {
                panic!("the awaited event did not come within {within:?}; got {events:?}");
            };
            let done = last(&event);
            events.push(event);
            if done {
                return events;
            }
        }
    }

    fn parse(&mut self, block: &str) -> Option<Event> {
        let mut name = None;
        let mut id = None;
        let mut data = Vec::new();
        for line in block.lines() {
            if let Some(comment) = line.strip_prefix(':') {
                self.comments.push(comment.trim().to_owned());
                continue;
            }
            let (field, value) = line.split_once(':').unwrap_or((line, ""));
            let value = value.strip_prefix(' ').unwrap_or(value);
            match field {
                "event" => name = Some(value.to_owned()),
                "id" => id = Some(value.to_owned()),
                "data" => data.push(value.to_owned()),
                _ => {}
            }
        }
        if data.is_empty() {
            return None;
        }
        let data = serde_json::from_str(&data.join("\n")).unwrap_or(serde_json::Value::Null);
        Some(Event {
            name: name.unwrap_or_else(|| "message".to_owned()),
            id,
            data,
        })
    }
}
