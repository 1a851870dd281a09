//! Where the client finds its gateway, its identity and the CA to trust, like the Python
//! client: kubeconfig (`$KUBECONFIG` or `~/.kube/config`), the toolforge YAML files, env
//! `TOOL_TOOLFORGE_API_URL`, and flags that override all of them.

use std::path::{Path, PathBuf};

use base64::Engine;
use serde_yaml::Value;

use super::error::CliError;

pub const DEFAULT_API_URL: &str = "https://api.svc.tools.eqiad1.wikimedia.cloud:30003";
pub const DEFAULT_JOBS_ENDPOINT: &str = "/jobs/v1";
pub const DEFAULT_TIMEOUT_SECS: u64 = 60;

/// What the command line may override.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub url: Option<String>,
    pub ca: Option<PathBuf>,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    pub tool: Option<String>,
    pub kubeconfig: Option<PathBuf>,
}

/// PEM text of the client certificate chain and its key.
#[derive(Clone)]
pub struct Identity {
    pub cert_pem: Vec<u8>,
    pub key_pem: Vec<u8>,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Identity(..)")
    }
}

/// Where the trusted roots come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trust {
    /// A PEM bundle (`--ca`, `REQUESTS_CA_BUNDLE`, `CURL_CA_BUNDLE`).
    Bundle(PathBuf),
    /// The system's certificate store.
    System,
}

#[derive(Debug, Clone)]
pub struct Settings {
    pub tool: String,
    /// `<api_url><jobs_endpoint>/tool/<tool>`
    pub jobs_base: String,
    /// `<api_url>/logs/v1/tool/<tool>`
    pub logs_base: String,
    pub identity: Identity,
    pub trust: Trust,
    pub timeout_secs: u64,
}

fn home() -> Option<PathBuf> {
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from)
}

fn read_yaml(path: &Path) -> Result<Option<Value>, CliError> {
    match std::fs::read_to_string(path) {
        Ok(text) => serde_yaml::from_str(&text)
            .map(Some)
            .map_err(|e| CliError::User(format!("{} is not valid YAML: {e}", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(CliError::User(format!(
            "cannot read {}: {e}",
            path.display()
        ))),
    }
}

/// The toolforge configuration files, in the order the Python client merges them.
pub fn toolforge_config_files() -> Vec<PathBuf> {
    let mut files = vec![
        PathBuf::from("/etc/toolforge/jobs-cli.yaml"),
        PathBuf::from("/etc/toolforge/common.yaml"),
    ];
    if let Some(h) = home() {
        files.push(h.join(".toolforge.yaml"));
        files.push(h.join(".config/toolforge.yaml"));
    }
    if let Some(x) = std::env::var_os("XDG_CONFIG_HOME").filter(|x| !x.is_empty()) {
        files.push(PathBuf::from(x).join("toolforge.yaml"));
    }
    files
}

/// Shallow merge by top-level key, later files winning (like toolforge-weld).
fn merged_toolforge_config(files: &[PathBuf]) -> Result<serde_yaml::Mapping, CliError> {
    let mut merged = serde_yaml::Mapping::new();
    for f in files {
        match read_yaml(f)? {
            Some(Value::Mapping(m)) => {
                for (k, v) in m {
                    merged.insert(k, v);
                }
            }
            Some(Value::Null) | None => {}
            Some(_) => {
                return Err(CliError::User(format!(
                    "{} must hold a YAML mapping",
                    f.display()
                )))
            }
        }
    }
    Ok(merged)
}

fn get_str<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    let mut cur = v;
    for p in path {
        cur = cur.get(*p)?;
    }
    cur.as_str()
}

/// The gateway URL, jobs endpoint and per-request timeout.
pub fn api_settings(flag_url: Option<&str>) -> Result<(String, String, u64), CliError> {
    let conf = Value::Mapping(merged_toolforge_config(&toolforge_config_files())?);
    let mut url = get_str(&conf, &["api_gateway", "url"])
        .unwrap_or(DEFAULT_API_URL)
        .to_string();
    if let Ok(env_url) = std::env::var("TOOL_TOOLFORGE_API_URL") {
        if !env_url.is_empty() {
            url = env_url;
        }
    }
    if let Some(u) = flag_url {
        url = u.to_string();
    }
    let endpoint = get_str(&conf, &["jobs", "jobs_endpoint"])
        .unwrap_or(DEFAULT_JOBS_ENDPOINT)
        .to_string();
    let timeout = conf
        .get("jobs")
        .and_then(|j| j.get("timeout"))
        .and_then(Value::as_u64)
        .unwrap_or(DEFAULT_TIMEOUT_SECS);
    let url = url.trim_end_matches('/').to_string();
    if !url.starts_with("https://") {
        return Err(CliError::User(format!(
            "the jobs API URL must start with https:// (got {url:?})"
        )));
    }
    Ok((url, endpoint.trim_end_matches('/').to_string(), timeout))
}

/// What the kubeconfig's current context provides.
#[derive(Debug, Default)]
pub struct KubeIdentity {
    pub namespace: Option<String>,
    pub cert_pem: Option<Vec<u8>>,
    pub key_pem: Option<Vec<u8>>,
}

pub fn kubeconfig_path(flag: Option<&Path>) -> Option<PathBuf> {
    if let Some(p) = flag {
        return Some(p.to_path_buf());
    }
    if let Some(k) = std::env::var_os("KUBECONFIG").filter(|k| !k.is_empty()) {
        let first = std::env::split_paths(&k).next()?;
        return Some(first);
    }
    home().map(|h| h.join(".kube/config"))
}

/// Inline `*-data`: base64 of PEM (the Kubernetes way) or PEM itself.
fn inline_pem(text: &str, what: &str) -> Result<Vec<u8>, CliError> {
    let t = text.trim();
    if t.starts_with("-----BEGIN") {
        return Ok(t.as_bytes().to_vec());
    }
    let compact: String = t.split_whitespace().collect();
    base64::engine::general_purpose::STANDARD
        .decode(compact)
        .map_err(|_| CliError::User(format!("the kubeconfig's {what} is neither PEM nor base64")))
}

fn read_file(path: &Path, what: &str) -> Result<Vec<u8>, CliError> {
    std::fs::read(path)
        .map_err(|e| CliError::User(format!("cannot read the {what} {}: {e}", path.display())))
}

/// Reads the current context of a kubeconfig; a missing file gives an empty identity.
pub fn read_kubeconfig(path: &Path) -> Result<KubeIdentity, CliError> {
    let Some(doc) = read_yaml(path)? else {
        return Ok(KubeIdentity::default());
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    let current = doc.get("current-context").and_then(Value::as_str);
    let named = |list: &str, name: Option<&str>| -> Option<Value> {
        let items = doc.get(list)?.as_sequence()?;
        let found = match name {
            Some(n) => items
                .iter()
                .find(|i| i.get("name").and_then(Value::as_str) == Some(n)),
            None if items.len() == 1 => items.first(),
            None => None,
        };
        found.cloned()
    };
    let context = named("contexts", current).and_then(|c| c.get("context").cloned());
    let namespace = context
        .as_ref()
        .and_then(|c| get_str(c, &["namespace"]))
        .map(str::to_string);
    let user_name = context
        .as_ref()
        .and_then(|c| get_str(c, &["user"]))
        .map(str::to_string);
    let user = named("users", user_name.as_deref()).and_then(|u| u.get("user").cloned());
    let mut out = KubeIdentity {
        namespace,
        ..Default::default()
    };
    if let Some(u) = user {
        let resolve = |p: &str| {
            let p = PathBuf::from(p);
            if p.is_absolute() {
                p
            } else {
                dir.join(p)
            }
        };
        out.cert_pem = match (
            get_str(&u, &["client-certificate"]),
            get_str(&u, &["client-certificate-data"]),
        ) {
            (Some(p), _) => Some(read_file(&resolve(p), "client certificate")?),
            (None, Some(d)) => Some(inline_pem(d, "client-certificate-data")?),
            _ => None,
        };
        out.key_pem = match (
            get_str(&u, &["client-key"]),
            get_str(&u, &["client-key-data"]),
        ) {
            (Some(p), _) => Some(read_file(&resolve(p), "client key")?),
            (None, Some(d)) => Some(inline_pem(d, "client-key-data")?),
            _ => None,
        };
    }
    Ok(out)
}

/// The CN of the first certificate in a PEM chain.
pub fn certificate_cn(cert_pem: &[u8]) -> Option<String> {
    let ders = jobs_core::pem::pem_certificates(cert_pem).ok()?;
    let der = ders.first()?;
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let cn = cert
        .subject()
        .iter_common_name()
        .next()?
        .as_str()
        .ok()?
        .to_string();
    Some(cn)
}

/// The trust anchors: `--ca`, else `REQUESTS_CA_BUNDLE` / `CURL_CA_BUNDLE`, else the system.
pub fn trust(flag: Option<&Path>) -> Trust {
    if let Some(p) = flag {
        return Trust::Bundle(p.to_path_buf());
    }
    for var in ["REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"] {
        if let Some(v) = std::env::var_os(var).filter(|v| !v.is_empty()) {
            return Trust::Bundle(PathBuf::from(v));
        }
    }
    Trust::System
}

pub fn load(o: &Overrides) -> Result<Settings, CliError> {
    let (url, endpoint, timeout_secs) = api_settings(o.url.as_deref())?;
    let kc_path = kubeconfig_path(o.kubeconfig.as_deref());
    let kube = match &kc_path {
        Some(p) => read_kubeconfig(p)?,
        None => KubeIdentity::default(),
    };
    let hint = "did you forget to run 'become <tool>'?";
    let cert_pem = match &o.cert {
        Some(p) => read_file(p, "client certificate")?,
        None => kube.cert_pem.clone().ok_or_else(|| {
            CliError::User(format!(
                "no client certificate: none in {} and no --cert; {hint}",
                kc_path
                    .as_deref()
                    .map(|p| p.display().to_string())
                    .unwrap_or_else(|| "the kubeconfig".into())
            ))
        })?,
    };
    let key_pem = match &o.key {
        Some(p) => read_file(p, "client key")?,
        None => kube.key_pem.clone().ok_or_else(|| {
            CliError::User(format!(
                "no client key: none in the kubeconfig and no --key; {hint}"
            ))
        })?,
    };
    let tool = match &o.tool {
        Some(t) => t.clone(),
        None => kube
            .namespace
            .as_deref()
            .and_then(|n| n.strip_prefix("tool-"))
            .map(str::to_string)
            .or_else(|| certificate_cn(&cert_pem))
            .ok_or_else(|| {
                CliError::User(format!(
                    "cannot tell which tool this is: no 'tool-' namespace in the kubeconfig and no CN in the certificate; {hint}"
                ))
            })?,
    };
    if tool.is_empty()
        || !tool
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
    {
        return Err(CliError::User(format!("{tool:?} is not a valid tool name")));
    }
    Ok(Settings {
        jobs_base: format!("{url}{endpoint}/tool/{tool}"),
        logs_base: format!("{url}/logs/v1/tool/{tool}"),
        tool,
        identity: Identity { cert_pem, key_pem },
        trust: trust(o.ca.as_deref()),
        timeout_secs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubeconfig_relative_paths_and_inline_data() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        std::fs::create_dir_all(dir.path().join("certs")).unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(dir.path().join("certs/c.crt"), "CERT").unwrap_or_else(|e| panic!("{e}"));
        let key_b64 = base64::engine::general_purpose::STANDARD.encode("KEY");
        let kc = format!(
            "apiVersion: v1\ncurrent-context: ctx\ncontexts:\n- name: other\n  context: {{user: nobody, namespace: tool-x}}\n- name: ctx\n  context: {{cluster: c, user: me, namespace: tool-alice}}\nusers:\n- name: me\n  user:\n    client-certificate: certs/c.crt\n    client-key-data: {key_b64}\n"
        );
        let path = dir.path().join("config");
        std::fs::write(&path, kc).unwrap_or_else(|e| panic!("{e}"));
        let k = read_kubeconfig(&path).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(k.namespace.as_deref(), Some("tool-alice"));
        assert_eq!(k.cert_pem.as_deref(), Some(&b"CERT"[..]));
        assert_eq!(k.key_pem.as_deref(), Some(&b"KEY"[..]));
    }

    #[test]
    fn later_config_files_win_by_top_level_key() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let a = dir.path().join("a.yaml");
        let b = dir.path().join("b.yaml");
        std::fs::write(
            &a,
            "api_gateway: {url: https://a}\njobs: {jobs_endpoint: /x, timeout: 5}\n",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(&b, "jobs: {timeout: 9}\n").unwrap_or_else(|e| panic!("{e}"));
        let m = Value::Mapping(
            merged_toolforge_config(&[a, b, dir.path().join("missing.yaml")])
                .unwrap_or_else(|e| panic!("{e}")),
        );
        assert_eq!(get_str(&m, &["api_gateway", "url"]), Some("https://a"));
        // shallow: b's `jobs` replaced a's whole
        assert_eq!(get_str(&m, &["jobs", "jobs_endpoint"]), None);
        assert_eq!(
            m.get("jobs")
                .and_then(|j| j.get("timeout"))
                .and_then(Value::as_u64),
            Some(9)
        );
    }
}
