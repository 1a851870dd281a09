//! The gateway's own HTTP/2 client (`jobs_gateway::apiconn`) against the genuine
//! kube-apiserver: replies and request bodies larger than the flow-control windows, more
//! parallel requests than the apiserver's stream limit on one connection, a watch dropped
//! midway, and the connection closing when its handle goes.
mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::BodyExt as _;
use std::sync::Arc;

use jobs_gateway::apiconn::{Connection, Target};

/// A connection presenting the cluster admin's certificate.
fn admin_connection(cluster: &common::Cluster) -> Connection {
    common::install_crypto();
    let mut roots = rustls::RootCertStore::empty();
    let ca = std::fs::read(&cluster.ca).unwrap_or_else(|e| panic!("{e}"));
    for cert in rustls_pemfile::certs(&mut &ca[..]) {
        roots
            .add(cert.unwrap_or_else(|e| panic!("{e}")))
            .unwrap_or_else(|e| panic!("{e}"));
    }
    let cert = std::fs::read(&cluster.admin_cert).unwrap_or_else(|e| panic!("{e}"));
    let key = std::fs::read(&cluster.admin_key).unwrap_or_else(|e| panic!("{e}"));
    let chain = rustls_pemfile::certs(&mut &cert[..])
        .collect::<Result<Vec<_>, _>>()
        .unwrap_or_else(|e| panic!("{e}"));
    let key = rustls_pemfile::private_key(&mut &key[..])
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|| panic!("no key"));
    let mut tls = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .unwrap_or_else(|e| panic!("{e}"));
    jobs_gateway::apiconn::offer_h2(&mut tls);
    let target = Target::of(&cluster.url.parse().unwrap_or_else(|e| panic!("{e}")))
        .unwrap_or_else(|e| panic!("{e}"));
    Connection::new(Arc::new(tls), Arc::new(target), Duration::from_secs(2))
}

fn request(
    method: http::Method,
    path: &str,
    body: Option<serde_json::Value>,
) -> http::Request<Bytes> {
    let b = http::Request::builder()
        .method(method)
        .uri(path)
        .header("accept", "application/json");
    match body {
        Some(body) => b
            .header("content-type", "application/json")
            .body(Bytes::from(body.to_string())),
        None => b.body(Bytes::new()),
    }
    .unwrap_or_else(|e| panic!("{e}"))
}

/// Sends a request; its status and whole body (within 30 s: a stalled stream fails).
async fn call(conn: &Connection, req: http::Request<Bytes>) -> (u16, Vec<u8>) {
    let exchange = async {
        let response = conn.send(req).await.unwrap_or_else(|e| panic!("{e}"));
        let status = response.status().as_u16();
        let body = response
            .into_body()
            .collect()
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .to_bytes();
        (status, body.to_vec())
    };
    tokio::time::timeout(Duration::from_secs(30), exchange)
        .await
        .unwrap_or_else(|_| panic!("no whole reply within 30 s"))
}

/// This process's established TCP connections to the apiserver.
fn connections_to_apiserver(cluster: &common::Cluster) -> usize {
    let port: u16 = cluster
        .url
        .rsplit(':')
        .next()
        .and_then(|p| p.trim_end_matches('/').parse().ok())
        .unwrap_or_else(|| panic!("no port in {}", cluster.url));
    common::established_connections("/proc/self", port)
}

/// A namespace of the test's own, deleted at the end.
async fn namespace(conn: &Connection, name: &str) {
    let (status, body) = call(
        conn,
        request(
            http::Method::POST,
            "/api/v1/namespaces",
            Some(serde_json::json!({"metadata": {"name": name}})),
        ),
    )
    .await;
    assert_eq!(status, 201, "{}", String::from_utf8_lossy(&body));
}

async fn delete_namespace(conn: &Connection, name: &str) {
    let (status, _) = call(
        conn,
        request(
            http::Method::DELETE,
            &format!("/api/v1/namespaces/{name}"),
            None,
        ),
    )
    .await;
    assert_eq!(status, 200);
}

// one test: the connection count is of the whole test process
#[tokio::test]
async fn one_connection_carries_large_bodies_many_streams_a_dropped_watch_and_closes_when_dropped()
{
    let cluster = common::cluster();
    let conn = admin_connection(&cluster);
    let ns = format!("apiconn-{}", std::process::id());
    namespace(&conn, &ns).await;

    // request bodies of 700 KiB (beyond the 64 KiB a stream may send before the apiserver
    // opens its window) and a list reply of 2.8 MiB (beyond the 2 MiB window this side opens a
    // stream with): flow control in both directions
    let mut sent = Vec::new();
    for i in 0..4 {
        let data: String = (0..700 * 1024)
            .map(|j| char::from(b'a' + ((i * 7 + j) % 26) as u8))
            .collect();
        let (status, body) = call(
            &conn,
            request(
                http::Method::POST,
                &format!("/api/v1/namespaces/{ns}/configmaps"),
                Some(serde_json::json!({
                    "metadata": {"name": format!("big-{i}")},
                    "data": {"blob": data},
                })),
            ),
        )
        .await;
        assert_eq!(status, 201, "{}", String::from_utf8_lossy(&body));
        sent.push(data);
    }
    let (status, body) = call(
        &conn,
        request(
            http::Method::GET,
            &format!("/api/v1/namespaces/{ns}/configmaps?labelSelector="),
            None,
        ),
    )
    .await;
    assert_eq!(status, 200);
    assert!(body.len() > 2_800_000, "a list of {} bytes", body.len());
    let list: serde_json::Value = serde_json::from_slice(&body).unwrap_or_else(|e| panic!("{e}"));
    let mut got: Vec<(String, String)> = list["items"]
        .as_array()
        .unwrap_or_else(|| panic!("no items"))
        .iter()
        .filter(|cm| cm["data"]["blob"].is_string())
        .map(|cm| {
            (
                cm["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                cm["data"]["blob"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    got.sort();
    let want: Vec<(String, String)> = sent
        .iter()
        .enumerate()
        .map(|(i, d)| (format!("big-{i}"), d.clone()))
        .collect();
    assert!(
        got == want,
        "the listed ConfigMaps differ from the ones created"
    );

    // more parallel requests than the apiserver takes streams on one connection (250)
    let started = Instant::now();
    let reads = (0..400).map(|_| {
        call(
            &conn,
            request(
                http::Method::GET,
                &format!("/api/v1/namespaces/{ns}/configmaps/big-0"),
                None,
            ),
        )
    });
    let results = futures::future::join_all(reads).await;
    assert!(
        results
            .iter()
            .all(|(status, body)| *status == 200 && body.len() > 700 * 1024),
        "not every parallel read succeeded"
    );
    assert!(started.elapsed() < Duration::from_secs(60));
    assert_eq!(
        connections_to_apiserver(&cluster),
        1,
        "one connection for everything"
    );

    // a watch read once and dropped: its stream is reset, the connection goes on
    let watch = conn
        .send(request(
            http::Method::GET,
            &format!("/api/v1/namespaces/{ns}/configmaps?watch=1"),
            None,
        ))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(watch.status(), 200);
    let mut body = watch.into_body();
    let first = tokio::time::timeout(Duration::from_secs(10), body.frame())
        .await
        .unwrap_or_else(|_| panic!("no event within 10 s"))
        .unwrap_or_else(|| panic!("the watch ended"))
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(first.data_ref().is_some_and(|d| !d.is_empty()));
    drop(body);
    let (status, _) = call(&conn, request(http::Method::GET, "/version", None)).await;
    assert_eq!(status, 200);
    // a 404 is a reply like any other
    let (status, body) = call(
        &conn,
        request(
            http::Method::GET,
            &format!("/api/v1/namespaces/{ns}/configmaps/none"),
            None,
        ),
    )
    .await;
    assert_eq!(status, 404);
    assert!(String::from_utf8_lossy(&body).contains("not found"));
    assert_eq!(connections_to_apiserver(&cluster), 1);

    delete_namespace(&conn, &ns).await;
    drop(conn);
    let deadline = Instant::now() + Duration::from_secs(5);
    while connections_to_apiserver(&cluster) > 0 {
        assert!(
            Instant::now() < deadline,
            "the connection stayed open after its handle was dropped"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
