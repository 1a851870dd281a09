//! LIST and WATCH of one kind in a tool's namespace over the tool's own connection,
//! read without kube's client: the watch's body is split into lines as its frames arrive, and
//! only a line split across frames is copied (no read buffer is kept between events).

use std::time::Duration;

use http_body_util::BodyExt;
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::credentials::ToolConnector;
use crate::watchcache::feed::Kept;

/// The longest line a watch may send: an object is at most about 1.5 MiB in etcd.
const MAX_LINE: usize = 4 << 20;
/// The longest list reply read.
const MAX_LIST: usize = 64 << 20;
/// A watch silent for this long (the apiserver ends one after its `timeoutSeconds`, and sends
/// bookmarks meanwhile) is taken for a dead connection.
const SILENT: Duration = Duration::from_secs(330);

/// How a watch ended without an error.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Ended {
    /// The apiserver's timeout, the connection closed, or silence: watch again from the last
    /// version delivered.
    Closed,
    /// The version watched from is too old (410, as a status or as an event): list again.
    Expired,
}

/// What a watch delivered.
#[derive(Debug)]
pub(crate) enum Event {
    Put(Kept),
    Delete(Kept),
    /// Everything up to this resourceVersion was delivered.
    Bookmark(u64, String),
    /// The version watched from is too old: list again.
    Expired,
    /// The apiserver ended the watch with a passing error (busy, or a server error): watch
    /// again.
    Interrupted,
}

/// Splits a body into lines across frames; only the start of a line whose end is in a later
/// frame is kept, in a buffer given back once the line is complete.
#[derive(Default)]
pub(crate) struct Lines {
    partial: Vec<u8>,
}

impl Lines {
    /// Calls `each` with every complete line of `chunk` (after what earlier chunks left).
    pub fn push(
        &mut self,
        mut chunk: &[u8],
        mut each: impl FnMut(&[u8]) -> Result<(), String>,
    ) -> Result<(), String> {
        while let Some(end) = memchr::memchr(b'\n', chunk) {
            if self.partial.is_empty() {
                each(&chunk[..end])?;
            } else {
                self.partial.extend_from_slice(&chunk[..end]);
                let line = std::mem::take(&mut self.partial);
                each(&line)?;
            }
            chunk = &chunk[end + 1..];
        }
        if self.partial.len() + chunk.len() > MAX_LINE {
            return Err(format!("a watch line longer than {MAX_LINE} bytes"));
        }
        self.partial.extend_from_slice(chunk);
        Ok(())
    }

    /// What is left unterminated so far.
    #[cfg(test)]
    fn rest(&self) -> &[u8] {
        &self.partial
    }
}

/// An event line: `{"type": ..., "object": {...}}`.
#[derive(Deserialize)]
struct RawEvent<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    #[serde(borrow)]
    object: &'a RawValue,
}

#[derive(Deserialize)]
struct StatusLite {
    #[serde(default)]
    code: u16,
    #[serde(default)]
    message: String,
}

#[derive(Deserialize, Default)]
struct ListMeta {
    #[serde(default, rename = "resourceVersion")]
    resource_version: String,
}

#[derive(Deserialize)]
struct MetaOnly {
    #[serde(default)]
    metadata: ListMeta,
}

/// One line of a watch as an event; blank lines are `None`.
pub(crate) fn event(line: &[u8], drop_spec: bool) -> Result<Option<Event>, String> {
    if line.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    let raw: RawEvent = serde_json::from_slice(line).map_err(|e| format!("watch event: {e}"))?;
    let object = raw.object.get().as_bytes();
    Ok(Some(match raw.kind {
        "ADDED" | "MODIFIED" => Event::Put(Kept::from_json(object, drop_spec)?),
        "DELETED" => Event::Delete(Kept::from_json(object, drop_spec)?),
        "BOOKMARK" => {
            let meta: MetaOnly =
                serde_json::from_slice(object).map_err(|e| format!("bookmark: {e}"))?;
            let text = meta.metadata.resource_version;
            Event::Bookmark(text.parse().unwrap_or(0), text)
        }
        "ERROR" => {
            let status: StatusLite =
                serde_json::from_slice(object).map_err(|e| format!("watch error: {e}"))?;
            match status.code {
                410 => Event::Expired,
                // the apiserver busy or failing for a moment: watch again
                429 | 500..=599 => Event::Interrupted,
                _ => return Err(format!("watch error {}: {}", status.code, status.message)),
            }
        }
        other => return Err(format!("watch event of type {other:?}")),
    }))
}

/// A list reply: its version and its objects as kept.
pub(crate) fn list_reply(body: Vec<u8>, drop_spec: bool) -> Result<(String, Vec<Kept>), String> {
    #[derive(Deserialize)]
    struct RawList<'a> {
        #[serde(default)]
        metadata: ListMeta,
        #[serde(borrow, default)]
        items: Option<Vec<&'a RawValue>>,
    }
    let body = jobs_core::slim::without_managed_fields(body);
    let list: RawList = serde_json::from_slice(&body).map_err(|e| format!("list: {e}"))?;
    let items = list
        .items
        .unwrap_or_default()
        .into_iter()
        .map(|raw| Kept::from_json(raw.get().as_bytes(), drop_spec))
        .collect::<Result<Vec<_>, _>>()?;
    Ok((list.metadata.resource_version, items))
}

/// The reason a reply that is not a success failed, from its Status body when it has one.
fn refusal(status: http::StatusCode, body: &[u8]) -> String {
    match serde_json::from_slice::<StatusLite>(body) {
        Ok(s) if !s.message.is_empty() => format!("{}: {}", status.as_u16(), s.message),
        _ => format!("{}", status.as_u16()),
    }
}

/// Reads a whole body, at most `limit` bytes.
async fn read_body(body: crate::apiconn::Body, limit: usize) -> Result<Vec<u8>, String> {
    let limited = http_body_util::Limited::new(body, limit);
    let bytes = limited
        .collect()
        .await
        .map_err(|e| format!("reading the reply: {e}"))?
        .to_bytes();
    Ok(Vec::from(bytes))
}

/// Sends one request, bounded by the gateway's Kubernetes call limit, counted in the
/// Kubernetes call metrics; a reply that is not a success is an error naming its status.
async fn send(
    connector: &ToolConnector,
    request: http::Request<Vec<u8>>,
    verb: &'static str,
    plural: &str,
) -> Result<http::Response<crate::apiconn::Body>, Refused> {
    let started = std::time::Instant::now();
    let limit = crate::metrics::kube_timeout();
    // boxed: the request's future is large and would otherwise stay in the state of a watch
    // (its task) for as long as the watch runs
    let sending = Box::pin(tokio::time::timeout(limit, connector.send(request)));
    let result = match sending.await {
        Ok(Ok(response)) if response.status().is_success() => Ok(response),
        Ok(Ok(response)) => {
            let status = response.status();
            let body = tokio::time::timeout(limit, read_body(response.into_body(), 64 << 10))
                .await
                .unwrap_or_else(|_| Ok(Vec::new()))
                .unwrap_or_default();
            Err((status.as_u16().to_string(), refusal(status, &body)))
        }
        Ok(Err(e)) => Err(("unreachable".to_string(), e.to_string())),
        Err(_) => Err((
            "unreachable".to_string(),
            format!("no answer within {} ms", limit.as_millis()),
        )),
    };
    let outcome = match &result {
        Ok(_) => "ok".to_string(),
        Err((outcome, _)) => outcome.clone(),
    };
    crate::metrics::kube_outcome(verb, plural, started, outcome.clone());
    result.map_err(|(_, reason)| Refused {
        status: outcome.parse().ok(),
        reason: format!("{verb}: {reason}"),
    })
}

/// A request that failed: the HTTP status of a refusal (none when there was no answer).
struct Refused {
    status: Option<u16>,
    reason: String,
}

/// Lists the objects of `request` (a LIST): the list's version and its objects.
pub(crate) async fn list(
    connector: &ToolConnector,
    request: http::Request<Vec<u8>>,
    plural: &str,
    drop_spec: bool,
) -> Result<(String, Vec<Kept>), String> {
    let response = send(connector, request, "list", plural)
        .await
        .map_err(|r| r.reason)?;
    let body = tokio::time::timeout(
        crate::metrics::kube_timeout(),
        read_body(response.into_body(), MAX_LIST),
    )
    .await
    .map_err(|_| "list: the reply did not end in time".to_string())??;
    list_reply(body, drop_spec)
}

/// Watches with `request` (a WATCH): calls `opened` once the apiserver has taken it, then
/// `each` with every object event and bookmark until the watch ends (see [`Ended`]; an
/// unterminated last line is not an event, and an apiserver error event other than 410 ends
/// the watch as closed). An event that cannot be read, or a refused watch other than 410, is
/// an error.
pub(crate) async fn watch<F, Fut>(
    connector: &ToolConnector,
    request: http::Request<Vec<u8>>,
    plural: &str,
    drop_spec: bool,
    opened: impl FnOnce(),
    mut each: F,
) -> Result<Ended, String>
where
    F: FnMut(Event) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    // boxed: the request's state is large and gone once the watch is open, while the rest
    // of this future waits for events for minutes
    let response = match Box::pin(send(connector, request, "watch", plural)).await {
        Ok(response) => response,
        Err(Refused {
            status: Some(410), ..
        }) => return Ok(Ended::Expired),
        Err(refused) => return Err(refused.reason),
    };
    // the apiserver took the watch: from here on every change after the version watched
    // from comes through it
    opened();
    let mut body = response.into_body();
    let mut lines = Lines::default();
    loop {
        let frame = match tokio::time::timeout(SILENT, body.frame()).await {
            Err(_) | Ok(None) => return Ok(Ended::Closed),
            // the connection went: the next watch opens another one, or fails
            Ok(Some(Err(_))) => return Ok(Ended::Closed),
            Ok(Some(Ok(frame))) => frame,
        };
        let Ok(data) = frame.into_data() else {
            continue;
        };
        let mut events = Vec::new();
        lines.push(&data, |line| {
            if let Some(e) = event(line, drop_spec)? {
                events.push(e);
            }
            Ok(())
        })?;
        drop(data);
        for e in events {
            match e {
                Event::Expired => return Ok(Ended::Expired),
                Event::Interrupted => return Ok(Ended::Closed),
                // boxed: applying an event is rare, and its future would otherwise take
                // room in every waiting watch's state
                e => Box::pin(each(e)).await,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(chunks: &[&[u8]]) -> (Vec<String>, usize) {
        let mut lines = Lines::default();
        let mut out = Vec::new();
        for c in chunks {
            lines
                .push(c, |l| {
                    out.push(String::from_utf8_lossy(l).into_owned());
                    Ok(())
                })
                .unwrap_or_else(|e| panic!("{e}"));
        }
        (out, lines.rest().len())
    }

    #[test]
    fn lines_are_found_across_and_within_frames() {
        assert_eq!(split(&[b"a\nb\n"]), (vec!["a".into(), "b".into()], 0));
        assert_eq!(
            split(&[b"ab", b"c\nd", b"", b"e\nf"]),
            (vec!["abc".into(), "de".into()], 1)
        );
        assert_eq!(split(&[b"\n\n"]), (vec!["".into(), "".into()], 0));
    }

    #[test]
    fn a_line_past_the_limit_is_refused() {
        let mut lines = Lines::default();
        let big = vec![b'x'; MAX_LINE];
        assert!(lines.push(&big, |_| Ok(())).is_ok());
        assert!(lines.push(b"y", |_| Ok(())).is_err());
    }

    #[test]
    fn events_of_each_type_are_read() {
        let obj = r#"{"metadata":{"name":"j","uid":"u","resourceVersion":"12","labels":{"a":"b"}},"spec":{}}"#;
        let added = format!(r#"{{"type":"ADDED","object":{obj}}}"#);
        match event(added.as_bytes(), false) {
            Ok(Some(Event::Put(k))) => assert_eq!((&*k.name, k.version), ("j", 12)),
            other => panic!("{other:?}"),
        }
        let deleted = format!(r#"{{"type":"DELETED","object":{obj}}}"#);
        assert!(matches!(
            event(deleted.as_bytes(), false),
            Ok(Some(Event::Delete(_)))
        ));
        let bookmark =
            br#"{"type":"BOOKMARK","object":{"kind":"Job","metadata":{"resourceVersion":"40"}}}"#;
        match event(bookmark, false) {
            Ok(Some(Event::Bookmark(40, text))) => assert_eq!(text, "40"),
            other => panic!("{other:?}"),
        }
        let gone = br#"{"type":"ERROR","object":{"kind":"Status","code":410,"message":"too old"}}"#;
        assert!(matches!(event(gone, false), Ok(Some(Event::Expired))));
        let busy =
            br#"{"type":"ERROR","object":{"kind":"Status","code":500,"message":"internal"}}"#;
        assert!(matches!(event(busy, false), Ok(Some(Event::Interrupted))));
        let refused =
            br#"{"type":"ERROR","object":{"kind":"Status","code":403,"message":"forbidden"}}"#;
        assert_eq!(
            event(refused, false).err().as_deref(),
            Some("watch error 403: forbidden")
        );
        assert!(matches!(event(b"  ", false), Ok(None)));
        assert!(event(b"{\"type\":\"ADDED\"", false).is_err());
        assert!(event(br#"{"type":"WHAT","object":{}}"#, false).is_err());
    }

    #[test]
    fn a_list_reply_gives_its_version_and_objects_without_managed_fields() {
        let body = br#"{"kind":"JobList","metadata":{"resourceVersion":"77"},"items":[{"metadata":{"name":"a","resourceVersion":"70","managedFields":[{"manager":"m"}]}},{"metadata":{"name":"b","resourceVersion":"71"}}]}"#;
        let (version, items) = list_reply(body.to_vec(), false).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(version, "77");
        let names: Vec<&str> = items.iter().map(|k| &*k.name).collect();
        assert_eq!(names, ["a", "b"]);
        let (_, empty) = list_reply(br#"{"metadata":{},"items":null}"#.to_vec(), false)
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(empty.is_empty());
        assert!(list_reply(b"<html>".to_vec(), false).is_err());
    }

    #[test]
    fn a_refusal_names_its_status_and_message() {
        let body = br#"{"kind":"Status","code":403,"message":"jobs is forbidden"}"#;
        assert_eq!(
            refusal(http::StatusCode::FORBIDDEN, body),
            "403: jobs is forbidden"
        );
        assert_eq!(refusal(http::StatusCode::BAD_GATEWAY, b"oops"), "502");
    }
}
