//! HTTPS to the jobs API: mTLS with the tool's certificate, the server always verified.

use std::sync::Arc;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::Value;

use super::config::{Settings, Trust};
use super::error::CliError;

pub struct Api {
    http: reqwest::Client,
    pub settings: Settings,
    pub debug: bool,
}

fn root_store(trust: &Trust) -> Result<rustls::RootCertStore, CliError> {
    let mut roots = rustls::RootCertStore::empty();
    match trust {
        Trust::Bundle(path) => {
            let pem = std::fs::read(path).map_err(|e| {
                CliError::User(format!("cannot read the CA bundle {}: {e}", path.display()))
            })?;
            let ders = jobs_core::pem::pem_certificates(&pem)
                .map_err(|e| CliError::User(format!("CA bundle {}: {e}", path.display())))?;
            for der in ders {
                // bundles like /etc/ssl/certs hold a few certificates rustls can't use
                let _ = roots.add(rustls_pki_types::CertificateDer::from(der));
            }
            if roots.is_empty() {
                return Err(CliError::User(format!(
                    "the CA bundle {} holds no usable certificate",
                    path.display()
                )));
            }
        }
        Trust::System => {
            let found = rustls_native_certs::load_native_certs();
            for cert in found.certs {
                let _ = roots.add(cert);
            }
            if roots.is_empty() {
                return Err(CliError::User(
                    "no trusted CA certificates found on this system; give one with --ca".into(),
                ));
            }
        }
    }
    Ok(roots)
}

fn tls_config(settings: &Settings) -> Result<rustls::ClientConfig, CliError> {
    let roots = root_store(&settings.trust)?;
    let chain: Vec<rustls_pki_types::CertificateDer<'static>> =
        jobs_core::pem::pem_certificates(&settings.identity.cert_pem)
            .map_err(|e| CliError::User(format!("client certificate: {e}")))?
            .into_iter()
            .map(rustls_pki_types::CertificateDer::from)
            .collect();
    if chain.is_empty() {
        return Err(CliError::User(
            "the client certificate file holds no PEM certificate".into(),
        ));
    }
    let key = rustls_pemfile::private_key(&mut settings.identity.key_pem.as_slice())
        .map_err(|e| CliError::User(format!("client key: {e}")))?
        .ok_or_else(|| CliError::User("the client key file holds no PEM private key".into()))?;
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| CliError::Server(format!("TLS setup: {e}")))?
    .with_root_certificates(roots)
    .with_client_auth_cert(chain, key)
    .map_err(|e| CliError::User(format!("client certificate and key do not fit: {e}")))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// The text of an error reply: `error` (list or string), `messages.error`, `message`, a JSON
/// string, or the raw body.
pub fn error_message(body: &str) -> String {
    let join = |v: &Value| -> Option<String> {
        match v {
            Value::String(s) if !s.is_empty() => Some(s.clone()),
            Value::Array(a) if !a.is_empty() => Some(
                a.iter()
                    .map(|x| {
                        x.as_str()
                            .map(str::to_string)
                            .unwrap_or_else(|| x.to_string())
                    })
                    .collect::<Vec<_>>()
                    .join("; "),
            ),
            _ => None,
        }
    };
    match serde_json::from_str::<Value>(body) {
        Ok(v) => v
            .get("error")
            .and_then(join)
            .or_else(|| {
                v.get("messages")
                    .and_then(|m| m.get("error"))
                    .and_then(join)
            })
            .or_else(|| v.get("message").and_then(join))
            .or_else(|| v.get("detail").and_then(join))
            .or_else(|| v.as_str().map(str::to_string))
            .unwrap_or_else(|| body.trim().to_string()),
        Err(_) => {
            let t = body.trim();
            if t.is_empty() {
                "(empty reply)".into()
            } else {
                t.chars().take(500).collect()
            }
        }
    }
}

/// A failed request as the user should see it.
pub fn status_error(status: StatusCode, body: &str) -> CliError {
    let msg = error_message(body);
    if status.is_client_error() {
        CliError::Api {
            status: status.as_u16(),
            message: msg,
        }
    } else if status == StatusCode::BAD_GATEWAY || status == StatusCode::SERVICE_UNAVAILABLE {
        CliError::Server(format!(
            "{msg} (the jobs service seems to be down or busy; please retry in a few minutes)"
        ))
    } else {
        CliError::Server(format!("the jobs service failed ({status}): {msg}"))
    }
}

/// Walks a reqwest error's sources into one line.
pub fn describe(e: &reqwest::Error) -> String {
    let mut parts = vec![e.to_string()];
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        let t = s.to_string();
        if !parts.iter().any(|p| p.contains(&t)) {
            parts.push(t);
        }
        src = s.source();
    }
    parts.join(": ")
}

impl Api {
    pub fn new(settings: Settings, debug: bool) -> Result<Self, CliError> {
        let tls = tls_config(&settings)?;
        let http = reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            .connect_timeout(Duration::from_secs(10))
            .user_agent(format!(
                "toolforge-jobs-rs/{} (tool {})",
                env!("CARGO_PKG_VERSION"),
                settings.tool
            ))
            .no_proxy()
            .build()
            .map_err(|e| CliError::Server(format!("HTTP client setup: {}", describe(&e))))?;
        Ok(Self {
            http,
            settings,
            debug,
        })
    }

    pub fn jobs_url(&self, route: &str) -> String {
        format!(
            "{}/{}",
            self.settings.jobs_base,
            route.trim_start_matches('/')
        )
    }

    pub fn logs_url(&self, route: &str) -> String {
        format!(
            "{}/{}",
            self.settings.logs_base,
            route.trim_start_matches('/')
        )
    }

    /// Sends a request; connection failures become exit-2 errors.
    pub async fn send(
        &self,
        method: Method,
        url: &str,
        body: Option<&Value>,
        timeout: Option<Duration>,
    ) -> Result<reqwest::Response, CliError> {
        if self.debug {
            eprintln!("debug: {method} {url}");
            if let Some(b) = body {
                eprintln!("debug: body {b}");
            }
        }
        let mut req = self.http.request(method, url);
        if let Some(t) = timeout.or(Some(Duration::from_secs(self.settings.timeout_secs))) {
            req = req.timeout(t);
        }
        req = match body {
            Some(b) => req.json(b),
            None => req.header(reqwest::header::CONTENT_LENGTH, "0"),
        };
        let resp = req.send().await.map_err(|e| {
            CliError::Server(format!(
                "cannot reach the jobs service at {url}: {}",
                describe(&e)
            ))
        })?;
        if self.debug {
            eprintln!("debug: -> {}", resp.status());
        }
        Ok(resp)
    }

    /// A JSON request whose reply must be a JSON object.
    pub async fn call(
        &self,
        method: Method,
        url: &str,
        body: Option<&Value>,
    ) -> Result<Value, CliError> {
        let resp = self.send(method, url, body, None).await?;
        let status = resp.status();
        let text = resp.text().await.map_err(|e| {
            CliError::Server(format!("reading the reply from {url}: {}", describe(&e)))
        })?;
        if !status.is_success() {
            return Err(status_error(status, &text));
        }
        match serde_json::from_str::<Value>(&text) {
            Ok(v @ Value::Object(_)) => Ok(v),
            _ => Err(CliError::Server(format!(
                "unexpected reply from {url} (not a JSON object): {}",
                text.chars().take(200).collect::<String>()
            ))),
        }
    }

    pub async fn get(&self, route: &str) -> Result<Value, CliError> {
        self.call(Method::GET, &self.jobs_url(route), None).await
    }
}
