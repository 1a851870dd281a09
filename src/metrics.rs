//! Prometheus metrics, kept in-process and rendered as text on the admin port.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;

/// Latency buckets in seconds.
const BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

#[derive(Default)]
struct Histogram {
    counts: Vec<u64>,
    sum: f64,
    total: u64,
}

impl Histogram {
    fn observe(&mut self, secs: f64) {
        if self.counts.is_empty() {
            self.counts = vec![0; BUCKETS.len()];
        }
        for (i, b) in BUCKETS.iter().enumerate() {
            if secs <= *b {
                self.counts[i] += 1;
            }
        }
        self.sum += secs;
        self.total += 1;
    }
}

type Labels = Vec<(&'static str, String)>;

#[derive(Default)]
pub struct Metrics {
    counters: Mutex<BTreeMap<(&'static str, Labels), u64>>,
    histograms: Mutex<BTreeMap<(&'static str, Labels), Histogram>>,
    gauges: Mutex<BTreeMap<&'static str, (&'static str, i64)>>,
    in_flight: AtomicI64,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The process-wide registry.
pub fn global() -> &'static Metrics {
    static M: OnceLock<Metrics> = OnceLock::new();
    M.get_or_init(Metrics::default)
}

impl Metrics {
    pub fn inc(&self, name: &'static str, labels: Labels) {
        *lock(&self.counters).entry((name, labels)).or_insert(0) += 1;
    }

    /// Makes a counter series exist (at 0) before its first event.
    pub fn touch(&self, name: &'static str, labels: Labels) {
        lock(&self.counters).entry((name, labels)).or_insert(0);
    }

    /// Sets a gauge (no labels) with its help text.
    pub fn set(&self, name: &'static str, help: &'static str, value: i64) {
        lock(&self.gauges).insert(name, (help, value));
    }

    pub fn observe(&self, name: &'static str, labels: Labels, took: Duration) {
        lock(&self.histograms)
            .entry((name, labels))
            .or_default()
            .observe(took.as_secs_f64());
    }

    /// Prometheus text exposition; `extra` holds gauges/counters computed at scrape time.
    pub fn render(&self, extra: &[(&str, &str, &str, u64)]) -> String {
        let mut out = String::new();
        let fmt_labels = |labels: &Labels, more: Option<(&str, String)>| {
            let mut parts: Vec<String> = labels
                .iter()
                .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
                .collect();
            if let Some((k, v)) = more {
                parts.push(format!("{k}=\"{v}\""));
            }
            if parts.is_empty() {
                String::new()
            } else {
                format!("{{{}}}", parts.join(","))
            }
        };
        let mut last = "";
        for ((name, labels), v) in lock(&self.counters).iter() {
            if *name != last {
                let _ = writeln!(out, "# TYPE {name} counter");
                last = name;
            }
            let _ = writeln!(out, "{name}{} {v}", fmt_labels(labels, None));
        }
        last = "";
        for ((name, labels), h) in lock(&self.histograms).iter() {
            if *name != last {
                let _ = writeln!(out, "# TYPE {name} histogram");
                last = name;
            }
            for (i, b) in BUCKETS.iter().enumerate() {
                let c = h.counts.get(i).copied().unwrap_or(0);
                let _ = writeln!(
                    out,
                    "{name}_bucket{} {c}",
                    fmt_labels(labels, Some(("le", format!("{b}"))))
                );
            }
            let _ = writeln!(
                out,
                "{name}_bucket{} {}",
                fmt_labels(labels, Some(("le", "+Inf".into()))),
                h.total
            );
            let _ = writeln!(out, "{name}_sum{} {}", fmt_labels(labels, None), h.sum);
            let _ = writeln!(out, "{name}_count{} {}", fmt_labels(labels, None), h.total);
        }
        let _ = writeln!(out, "# TYPE jobs_gateway_http_requests_in_flight gauge");
        let _ = writeln!(
            out,
            "jobs_gateway_http_requests_in_flight {}",
            self.in_flight.load(Ordering::Relaxed)
        );
        for (name, (help, value)) in lock(&self.gauges).iter() {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} gauge");
            let _ = writeln!(out, "{name} {value}");
        }
        for (name, kind, help, value) in extra {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} {kind}");
            let _ = writeln!(out, "{name} {value}");
        }
        out
    }
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Route layer: request count and latency per route template, method and status.
pub async fn track(req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".into());
    let method = req.method().to_string();
    let m = global();
    m.in_flight.fetch_add(1, Ordering::Relaxed);
    let start = std::time::Instant::now();
    let resp = next.run(req).await;
    m.in_flight.fetch_sub(1, Ordering::Relaxed);
    let status = resp.status().as_u16().to_string();
    m.inc(
        "jobs_gateway_http_requests_total",
        vec![
            ("route", route.clone()),
            ("method", method.clone()),
            ("status", status),
        ],
    );
    m.observe(
        "jobs_gateway_http_request_duration_seconds",
        vec![("route", route), ("method", method)],
        start.elapsed(),
    );
    resp
}

static KUBE_TIMEOUT_MS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(10_000);

/// The limit for one Kubernetes call (from `JOBS_GATEWAY_KUBE_TIMEOUT_MS`).
pub fn set_kube_timeout(limit: Duration) {
    KUBE_TIMEOUT_MS.store(limit.as_millis() as u64, Ordering::Relaxed);
}

/// The limit for one Kubernetes call.
pub fn kube_timeout() -> Duration {
    Duration::from_millis(KUBE_TIMEOUT_MS.load(Ordering::Relaxed))
}

/// Times one Kubernetes call, and bounds it: a call that takes too long fails as unreachable.
pub async fn kube_call<T, F>(verb: &'static str, resource: &str, fut: F) -> Result<T, kube::Error>
where
    F: std::future::Future<Output = Result<T, kube::Error>>,
{
    let start = std::time::Instant::now();
    let limit = kube_timeout();
    let result = match tokio::time::timeout(limit, fut).await {
        Ok(r) => r,
        Err(_) => Err(kube::Error::Service(
            format!(
                "no answer from the apiserver within {} ms",
                limit.as_millis()
            )
            .into(),
        )),
    };
    let outcome = match &result {
        Ok(_) => "ok".to_string(),
        Err(kube::Error::Api(s)) => s.code.to_string(),
        Err(_) => "unreachable".to_string(),
    };
    kube_outcome(verb, resource, start, outcome);
    result
}

/// Counts one Kubernetes call that began at `start`: `outcome` is `ok`, the HTTP status of a
/// refusal, or `unreachable`.
pub fn kube_outcome(verb: &str, resource: &str, start: std::time::Instant, outcome: String) {
    let m = global();
    m.observe(
        "jobs_gateway_kube_request_duration_seconds",
        vec![
            ("verb", verb.to_string()),
            ("resource", resource.to_string()),
        ],
        start.elapsed(),
    );
    m.inc(
        "jobs_gateway_kube_requests_total",
        vec![
            ("verb", verb.to_string()),
            ("resource", resource.to_string()),
            ("result", outcome),
        ],
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_histograms() {
        let m = Metrics::default();
        m.inc("t_total", vec![("route", "/a".into())]);
        m.inc("t_total", vec![("route", "/a".into())]);
        m.observe("t_seconds", vec![], Duration::from_millis(3));
        m.set("g_seconds", "a time", 5);
        m.set("g_seconds", "a time", 1_900_000_000);
        let text = m.render(&[("x_hits", "counter", "hits", 7)]);
        assert!(text.contains("t_total{route=\"/a\"} 2"), "{text}");
        assert!(text.contains("t_seconds_bucket{le=\"0.005\"} 1"), "{text}");
        assert!(text.contains("t_seconds_bucket{le=\"0.0025\"} 0"), "{text}");
        assert!(text.contains("t_seconds_count 1"), "{text}");
        assert!(text.contains("x_hits 7"), "{text}");
        assert!(
            text.contains("# TYPE g_seconds gauge\ng_seconds 1900000000\n"),
            "{text}"
        );
        assert!(!text.contains("g_seconds 5"), "{text}");
    }
}
