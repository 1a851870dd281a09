//! A tool's one HTTP/2 connection to the apiserver, spoken by a small client of our own.
//!
//! Every tool has a connection of its own (its client certificate is the identity), so what one
//! connection costs is paid a thousand times over. h2 keeps a 16 KiB write buffer, an 8 KiB
//! read buffer, HPACK tables and stream slabs per connection, allocated whether frames need
//! them or not (about 35 KiB, measured with heaptrack). This client ([`conn`], over the frame
//! codec in [`frame`]) holds bytes only while they are in flight: an idle connection costs its
//! TLS session and a few hundred bytes.
//!
//! * Requests share the connection; beyond the apiserver's concurrency limit they wait for a
//!   stream. A request whose connection is closing (a GOAWAY) or gone before its stream
//!   opened, or that the apiserver never processed (above a GOAWAY's last stream, or
//!   refused), is sent once more, on a new connection if this one is closing: nothing of it
//!   was acted on, so that is safe for any method.
//! * While the connection is open it is pinged every 30 s; no answer within 10 s closes it,
//!   so a peer that vanished without a word ends the tool's watches and requests instead of
//!   leaving them hanging.
//! * When the handle is dropped (the credential store closes a quiet tool's connection) the
//!   connection says GOAWAY once its streams are done, and its task ends.
//! * Only what a client of the apiserver needs: no server push (disabled), no priorities, no
//!   request trailers; the apiserver's dynamic HPACK table is set to 0, so decoding keeps no
//!   table either.

mod conn;
mod frame;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use rustls_pki_types::ServerName;
use tokio::sync::Mutex;

pub use conn::{Body, Error};

/// Where the apiserver is: parsed once, shared by every tool's connection.
pub struct Target {
    /// `host:port` as the URL gives it (the requests' `:authority`).
    authority: String,
    /// The URL's path, without a trailing slash: put before every request's path.
    prefix: String,
    host: String,
    port: u16,
    name: ServerName<'static>,
}

impl Target {
    /// From the apiserver's URL (https only).
    pub fn of(base: &http::Uri) -> Result<Self, Error> {
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
            authority: base.authority().map_or_else(String::new, |a| a.to_string()),
            prefix: base.path().trim_end_matches('/').to_string(),
            port: base.port_u16().unwrap_or(443),
            host,
            name,
        })
    }

    /// The path (and query) on the apiserver of a request made with a path only.
    fn path(&self, request: &http::Uri) -> String {
        let rest = request.path_and_query().map_or("/", |pq| pq.as_str());
        format!("{}{rest}", self.prefix)
    }

    /// The absolute URI of a request made with a path (and query) only.
    #[cfg(test)]
    fn uri(&self, request: &http::Uri) -> Result<http::Uri, Error> {
        Ok(format!("https://{}{}", self.authority, self.path(request)).parse()?)
    }
}

/// Makes a TLS config offer HTTP/2 (ALPN `h2`), as a [`Connection`] needs.
pub fn offer_h2(tls: &mut rustls::ClientConfig) {
    tls.alpn_protocols = vec![b"h2".to_vec()];
}

/// A tool's connection: made on first use, shared by its requests and watches.
pub struct Connection {
    tls: Arc<rustls::ClientConfig>,
    target: Arc<Target>,
    connect_timeout: Duration,
    /// The open connection, and the last failure to make one.
    open: Mutex<Slot>,
}

#[derive(Default)]
struct Slot {
    conn: Option<Arc<conn::Conn>>,
    /// When and why the last connect failed: requests that were already waiting for it fail
    /// the same way instead of each dialling again.
    failed: Option<(std::time::Instant, String)>,
}

impl Connection {
    /// A connection to `target` presenting `tls`, which must offer HTTP/2 (ALPN `h2`, see
    /// [`offer_h2`]); nothing is dialled before the first request.
    pub fn new(
        tls: Arc<rustls::ClientConfig>,
        target: Arc<Target>,
        connect_timeout: Duration,
    ) -> Self {
        Self {
            tls,
            target,
            connect_timeout,
            open: Mutex::new(Slot::default()),
        }
    }

    /// Sends a request (its URI a path and query) and waits for the response head.
    pub async fn send(&self, request: http::Request<Bytes>) -> Result<http::Response<Body>, Error> {
        let (parts, body) = request.into_parts();
        let path = self.target.path(&parts.uri);
        let mut retried = false;
        loop {
            let conn = self.current().await?;
            match conn
                .request(
                    &parts.method,
                    &self.target.authority,
                    &path,
                    &parts.headers,
                    body.clone(),
                )
                .await
            {
                Ok(response) => return Ok(response),
                // the connection went before the request was sent, or the apiserver never
                // processed it (above a GOAWAY's last stream, refused): nothing of it was
                // acted on, so once more, on a new connection if this one is closing
                Err(e) if !retried && e.unprocessed() => retried = true,
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// The open connection, or a new one when there is none or it is closing.
    async fn current(&self) -> Result<Arc<conn::Conn>, Error> {
        let arrived = std::time::Instant::now();
        let mut slot = self.open.lock().await;
        if let Some(conn) = slot.conn.as_ref() {
            if conn.usable() {
                return Ok(conn.clone());
            }
        }
        if let Some((at, why)) = &slot.failed {
            if *at >= arrived {
                return Err(why.clone().into());
            }
        }
        if let Some(old) = slot.conn.take() {
            // its streams still running finish on it
            old.release();
        }
        // made under the lock: parallel first requests share one handshake
        match self.connect().await {
            Ok(conn) => {
                slot.conn = Some(conn.clone());
                slot.failed = None;
                Ok(conn)
            }
            Err(e) => {
                slot.failed = Some((std::time::Instant::now(), e.to_string()));
                Err(e)
            }
        }
    }

    async fn connect(&self) -> Result<Arc<conn::Conn>, Error> {
        let target = &self.target;
        let dial = async {
            let tcp = tokio::net::TcpStream::connect((target.host.as_str(), target.port)).await?;
            tcp.set_nodelay(true)?;
            let mut session = rustls::client::UnbufferedClientConnection::new(
                self.tls.clone(),
                target.name.clone(),
            )?;
            let received = conn::handshake(&tcp, &mut session).await?;
            if session.is_handshaking() {
                return Err::<_, Error>("the TLS handshake did not complete".into());
            }
            if session.alpn_protocol() != Some(b"h2") {
                return Err::<_, Error>("the apiserver did not agree to HTTP/2".into());
            }
            Ok(conn::Conn::start(tcp, session, received))
        };
        tokio::time::timeout(self.connect_timeout, dial)
            .await
            .map_err(|_| {
                format!(
                    "no connection to {}:{} within {} ms",
                    target.host,
                    target.port,
                    self.connect_timeout.as_millis()
                )
            })?
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        // the connection says GOAWAY and closes once the streams still running are done
        if let Some(conn) = self.open.get_mut().conn.take() {
            conn.release();
        }
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
