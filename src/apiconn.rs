//! A tool's one HTTP/2 connection to the apiserver, spoken with `h2` directly.
//!
//! Every tool has a connection of its own (its client certificate is the identity), so what one
//! connection costs is paid a thousand times over. hyper's client adds a request channel, a
//! connection pool and their tasks on top of h2 (about 13 KiB a connection, measured with
//! heaptrack); this module keeps only h2's own state: one sender shared by the tool's requests,
//! the connection driven by one task, made on first use and made again when it went away.
//!
//! * Requests share the connection's sender (h2 queues streams beyond the apiserver's
//!   concurrency limit itself). A request whose connection is gone (closed, or a GOAWAY)
//!   before its stream opened, or that the apiserver never processed (above a GOAWAY's last
//!   stream, or refused), is sent once more on a new connection: nothing of it was acted on,
//!   so that is safe for any method.
//! * While the connection is open the driver pings every [`KEEPALIVE`]; no answer within
//!   [`KEEPALIVE_TIMEOUT`] closes it, so a peer that vanished without a word ends the tool's
//!   watches and requests instead of leaving them hanging.
//! * When the last handle is dropped (the credential store closes a quiet tool's connection)
//!   h2 sends GOAWAY once its streams are done, and the driver ends.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::Frame;
use rustls_pki_types::ServerName;
use tokio::sync::Mutex;

pub type Error = Box<dyn std::error::Error + Send + Sync>;

/// How often an open connection is pinged.
const KEEPALIVE: Duration = Duration::from_secs(30);
/// How long a ping may go unanswered.
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(10);
/// Flow-control windows (as hyper's client sets them): a large list is not held up by
/// window updates; nothing is allocated for them until data arrives.
const STREAM_WINDOW: u32 = 2 << 20;
const CONNECTION_WINDOW: u32 = 5 << 20;

/// Where the apiserver is, parsed once per connection.
struct Target {
    /// `https://host:port` and an optional path prefix, without a trailing slash.
    base: http::Uri,
    host: String,
    port: u16,
    name: ServerName<'static>,
}

impl Target {
    fn of(base: &http::Uri) -> Result<Self, Error> {
        if base.scheme_str() != Some("https") {
            return Err(format!("the apiserver URL {base} is not https").into());
        }
        let host = base
            .host()
            .ok_or_else(|| format!("the apiserver URL {base} has no host"))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let name = ServerName::try_from(host.clone())
            .map_err(|e| format!("the apiserver host {host}: {e}"))?;
        Ok(Self {
            base: base.clone(),
            port: base.port_u16().unwrap_or(443),
            host,
            name,
        })
    }

    /// The absolute URI of a request made with a path (and query) only.
    fn uri(&self, request: &http::Uri) -> Result<http::Uri, Error> {
        let prefix = self.base.path().trim_end_matches('/');
        let rest = request.path_and_query().map_or("/", |pq| pq.as_str());
        let mut parts = self.base.clone().into_parts();
        parts.path_and_query = Some(format!("{prefix}{rest}").parse()?);
        Ok(http::Uri::from_parts(parts)?)
    }
}

/// A tool's connection: made on first use, shared by its requests and watches.
pub struct Connection {
    tls: tokio_rustls::TlsConnector,
    target: Result<Target, String>,
    connect_timeout: Duration,
    /// The open connection's sender and a number telling connections apart.
    sender: Mutex<Option<(u64, h2::client::SendRequest<Bytes>)>>,
}

impl Connection {
    /// A connection to `apiserver` presenting `tls` (its ALPN is set to h2 here); nothing is
    /// dialled before the first request.
    pub fn new(
        mut tls: rustls::ClientConfig,
        apiserver: &http::Uri,
        connect_timeout: Duration,
    ) -> Self {
        tls.alpn_protocols = vec![b"h2".to_vec()];
        Self {
            tls: tokio_rustls::TlsConnector::from(Arc::new(tls)),
            target: Target::of(apiserver).map_err(|e| e.to_string()),
            connect_timeout,
            sender: Mutex::new(None),
        }
    }

    fn target(&self) -> Result<&Target, Error> {
        self.target.as_ref().map_err(|e| e.clone().into())
    }

    /// Sends a request (its URI a path and query) and waits for the response head.
    pub async fn send(&self, request: http::Request<Bytes>) -> Result<http::Response<Body>, Error> {
        let (parts, body) = request.into_parts();
        let uri = self.target()?.uri(&parts.uri)?;
        let mut retried = false;
        loop {
            let (id, sender) = self.current().await?;
            let mut out = http::Request::builder()
                .method(parts.method.clone())
                .uri(uri.clone())
                .body(())?;
            *out.headers_mut() = parts.headers.clone();
            let end = body.is_empty();
            let opened = match sender.ready().await {
                Ok(mut ready) => ready.send_request(out, end),
                Err(e) => Err(e),
            };
            let (response, mut stream) = match opened {
                Ok(opened) => opened,
                // the connection went (closed, or a GOAWAY) before the request was sent:
                // once more on a new one
                Err(e) if !retried && gone(&e) => {
                    retried = true;
                    self.forget(id).await;
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            if !end {
                // h2 queues what the window does not take yet and sends it as it opens
                stream.send_data(body.clone(), true)?;
            }
            match response.await {
                Ok(response) => return Ok(response.map(Body::new)),
                // streams above a GOAWAY's last stream id, and refused ones, were never
                // processed by the apiserver: once more on a new connection
                Err(e) if !retried && unprocessed(&e) => {
                    retried = true;
                    self.forget(id).await;
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// The open connection, or a new one.
    async fn current(&self) -> Result<(u64, h2::client::SendRequest<Bytes>), Error> {
        let mut slot = self.sender.lock().await;
        if let Some((id, sender)) = slot.as_ref() {
            return Ok((*id, sender.clone()));
        }
        // made under the lock: parallel first requests share one handshake
        let sender = self.connect().await?;
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        let id = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        *slot = Some((id, sender.clone()));
        Ok((id, sender))
    }

    /// Forgets connection `id` (gone); a later one is kept.
    async fn forget(&self, id: u64) {
        let mut slot = self.sender.lock().await;
        if slot.as_ref().is_some_and(|(current, _)| *current == id) {
            *slot = None;
        }
    }

    async fn connect(&self) -> Result<h2::client::SendRequest<Bytes>, Error> {
        let target = self.target()?;
        let dial = async {
            let tcp = tokio::net::TcpStream::connect((target.host.as_str(), target.port)).await?;
            tcp.set_nodelay(true)?;
            let tls = self.tls.connect(target.name.clone(), tcp).await?;
            if tls.get_ref().1.alpn_protocol() != Some(b"h2") {
                return Err::<_, Error>("the apiserver did not agree to HTTP/2".into());
            }
            let (sender, connection) = h2::client::Builder::new()
                .enable_push(false)
                .initial_window_size(STREAM_WINDOW)
                .initial_connection_window_size(CONNECTION_WINDOW)
                .handshake(tls)
                .await?;
            Ok((sender, connection))
        };
        let (sender, connection) = tokio::time::timeout(self.connect_timeout, dial)
            .await
            .map_err(|_| {
                format!(
                    "no connection to {}:{} within {} ms",
                    target.host,
                    target.port,
                    self.connect_timeout.as_millis()
                )
            })??;
        tokio::spawn(drive(connection));
        Ok(sender)
    }
}

/// Whether an error opening a stream means its connection is gone (not the request's fault).
fn gone(e: &h2::Error) -> bool {
    e.is_io() || e.is_go_away()
}

/// Whether a stream's error says the apiserver never processed it.
fn unprocessed(e: &h2::Error) -> bool {
    (e.is_go_away() && e.is_remote()) || e.reason() == Some(h2::Reason::REFUSED_STREAM)
}

/// Drives a connection until it ends, pinging it while it is open.
async fn drive<T>(mut connection: h2::client::Connection<T, Bytes>)
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let mut pings = connection.ping_pong();
    let mut tick = tokio::time::interval(KEEPALIVE);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tokio::select! {
            _ = &mut connection => return,
            _ = tick.tick() => {}
        }
        let Some(pinger) = pings.as_mut() else {
            continue;
        };
        let ping = tokio::time::timeout(KEEPALIVE_TIMEOUT, pinger.ping(h2::Ping::opaque()));
        tokio::pin!(ping);
        // the pong arrives through the connection: keep driving it meanwhile
        tokio::select! {
            _ = &mut connection => return,
            answer = &mut ping => {
                if !matches!(answer, Ok(Ok(_))) {
                    tracing::debug!("an apiserver connection did not answer a ping; closing it");
                    return;
                }
            }
        }
    }
}

/// A response body: releases flow-control capacity as its data is read.
pub struct Body {
    stream: h2::RecvStream,
    data_done: bool,
}

impl Body {
    fn new(stream: h2::RecvStream) -> Self {
        Self {
            stream,
            data_done: false,
        }
    }
}

impl http_body::Body for Body {
    type Data = Bytes;
    type Error = h2::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, h2::Error>>> {
        if !self.data_done {
            match ready!(self.stream.poll_data(cx)) {
                Some(Ok(data)) => {
                    // the window reopens as the body is read, not before
                    let _ = self.stream.flow_control().release_capacity(data.len());
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                Some(Err(e)) => return Poll::Ready(Some(Err(e))),
                None => self.data_done = true,
            }
        }
        match ready!(self.stream.poll_trailers(cx)) {
            Ok(Some(trailers)) => Poll::Ready(Some(Ok(Frame::trailers(trailers)))),
            Ok(None) => Poll::Ready(None),
            Err(e) => Poll::Ready(Some(Err(e))),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.stream.is_end_stream()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_uris_are_joined_to_the_apiserver_base() {
        let t = Target::of(
            &"https://k8s.example:6443"
                .parse()
                .unwrap_or_else(|e| panic!("{e}")),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((t.host.as_str(), t.port), ("k8s.example", 6443));
        let uri = t
            .uri(
                &"/api/v1/namespaces/tool-a/pods?labelSelector=x%3Dy"
                    .parse()
                    .unwrap_or_else(|e| panic!("{e}")),
            )
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            uri.to_string(),
            "https://k8s.example:6443/api/v1/namespaces/tool-a/pods?labelSelector=x%3Dy"
        );
        let prefixed = Target::of(
            &"https://10.0.0.1/k8s/"
                .parse()
                .unwrap_or_else(|e| panic!("{e}")),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(prefixed.port, 443);
        let uri = prefixed
            .uri(&"/version".parse().unwrap_or_else(|e| panic!("{e}")))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(uri.to_string(), "https://10.0.0.1/k8s/version");
        let v6 = Target::of(
            &"https://[::1]:8443"
                .parse()
                .unwrap_or_else(|e| panic!("{e}")),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(v6.host, "::1");
    }

    #[test]
    fn only_https_apiservers_are_taken() {
        assert!(Target::of(
            &"http://k8s.example:8080"
                .parse()
                .unwrap_or_else(|e| panic!("{e}"))
        )
        .is_err());
    }
}
