//! Who is calling: the tool name, derived from a verified certificate subject.
//!
//! Two sources exist. On the direct listener the subject comes from the client certificate that
//! rustls verified against the cluster CA. On the ingress listener it comes from the
//! `ssl-client-subject-dn` header, which is believed only because the connection itself
//! authenticated as the jobs ingress. Both go through [`identity_from_attributes`], so the
//! rules (exactly one CN, the organisation list equal to the configured one, a valid tool name)
//! are the same.

pub mod dn;

use std::fmt;

pub use dn::{Attribute, DistinguishedName, DnError};

/// OIDs of the two attributes that matter.
const CN_NAMES: &[&str] = &["CN", "2.5.4.3", "commonName"];
const O_NAMES: &[&str] = &["O", "2.5.4.10", "organizationName"];

/// Longest tool name: `tool-<name>` must still be a 63-character namespace name.
pub const MAX_TOOL_NAME_LEN: usize = 58;

/// A validated tool name: lower-case ASCII letters, digits and inner dashes, 1–58 characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ToolName(String);

impl ToolName {
    pub fn parse(raw: &str) -> Result<Self, String> {
        if raw.is_empty() {
            return Err("empty tool name".into());
        }
        if raw.len() > MAX_TOOL_NAME_LEN {
            return Err(format!(
                "tool name is longer than {MAX_TOOL_NAME_LEN} characters"
            ));
        }
        let ok_chars = raw
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !ok_chars {
            return Err(format!(
                "invalid tool name {raw:?}: only lower-case letters, digits and '-' are allowed"
            ));
        }
        if raw.starts_with('-') || raw.ends_with('-') {
            return Err(format!(
                "invalid tool name {raw:?}: must not start or end with '-'"
            ));
        }
        Ok(Self(raw.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The tool's Kubernetes namespace.
    pub fn namespace(&self) -> String {
        format!("tool-{}", self.0)
    }
}

impl fmt::Display for ToolName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Why a subject was refused. The text is safe to show to the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityError(pub String);

impl fmt::Display for IdentityError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Applies the identity rules to a subject's attributes.
pub fn identity_from_attributes(
    rdns: &[Vec<Attribute>],
    organisation: &str,
) -> Result<ToolName, IdentityError> {
    let in_multi = rdns
        .iter()
        .filter(|r| r.len() > 1)
        .flatten()
        .any(|a| CN_NAMES.contains(&a.kind.as_str()) || O_NAMES.contains(&a.kind.as_str()));
    if in_multi {
        return Err(IdentityError(
            "certificate subject has CN or O inside a multi-valued RDN".into(),
        ));
    }
    let cns: Vec<&str> = rdns
        .iter()
        .flatten()
        .filter(|a| CN_NAMES.contains(&a.kind.as_str()))
        .map(|a| a.value.as_str())
        .collect();
    let orgs: Vec<&str> = rdns
        .iter()
        .flatten()
        .filter(|a| O_NAMES.contains(&a.kind.as_str()))
        .map(|a| a.value.as_str())
        .collect();
    if cns.len() != 1 {
        return Err(IdentityError(format!(
            "certificate subject must have exactly one CN, found {}",
            cns.len()
        )));
    }
    if orgs != [organisation] {
        return Err(IdentityError(format!(
            "This certificate can't access the Jobs API. Double check you're logged in to the correct account? (got {orgs:?})"
        )));
    }
    ToolName::parse(cns[0]).map_err(|e| IdentityError(format!("certificate subject: {e}")))
}

/// Identity from an RFC 4514 subject string (the ingress header).
pub fn identity_from_dn(raw: &str, organisation: &str) -> Result<ToolName, IdentityError> {
    let dn = DistinguishedName::parse(raw).map_err(|e| {
        IdentityError(format!(
            "Failed to parse certificate name {:?} ({e})",
            truncate_for_message(raw)
        ))
    })?;
    identity_from_attributes(&dn.rdns, organisation)
}

/// Subject attributes of a DER certificate, in RDN order.
pub fn certificate_subject(der: &[u8]) -> Result<Vec<Vec<Attribute>>, IdentityError> {
    use x509_parser::prelude::*;
    let (_, cert) = X509Certificate::from_der(der)
        .map_err(|_| IdentityError("client certificate could not be parsed".into()))?;
    let mut rdns = Vec::new();
    for rdn in cert.subject().iter() {
        let mut attrs = Vec::new();
        for atv in rdn.iter() {
            let oid = atv.attr_type().to_id_string();
            let kind = match oid.as_str() {
                "2.5.4.3" => "CN".to_string(),
                "2.5.4.10" => "O".to_string(),
                _ => oid,
            };
            let value = atv.as_str().map_err(|_| {
                IdentityError(format!(
                    "certificate subject attribute {kind} is not a string"
                ))
            })?;
            if value.chars().any(char::is_control) {
                return Err(IdentityError(format!(
                    "control character in certificate subject attribute {kind}"
                )));
            }
            attrs.push(Attribute {
                kind,
                value: value.to_string(),
            });
        }
        rdns.push(attrs);
    }
    Ok(rdns)
}

/// Keeps error messages short when a client sends a huge header.
pub fn truncate_for_message(raw: &str) -> String {
    const LIMIT: usize = 200;
    if raw.len() <= LIMIT {
        return raw.to_string();
    }
    let mut end = LIMIT;
    while !raw.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &raw[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    const ORG: &str = "toolforge";

    #[test]
    fn accepts_a_tool_subject() {
        assert_eq!(
            identity_from_dn("CN=alice,O=toolforge", ORG).map(|t| t.namespace()),
            Ok("tool-alice".to_string())
        );
        assert_eq!(
            identity_from_dn("O=toolforge,CN=my-tool2", ORG).map(|t| t.to_string()),
            Ok("my-tool2".to_string())
        );
    }

    #[test]
    fn refuses_bad_subjects() {
        let long = format!("CN={},O=toolforge", "a".repeat(59));
        let cases = [
            "",
            "garbage",
            "cn=alice,o=toolforge",
            "/O=toolforge/CN=alice",
            "CN=alice",
            "CN=alice,O=admins",
            "CN=alice,O=toolforge,O=toolforge",
            "CN=alice,CN=bob,O=toolforge",
            "CN=alice+O=toolforge",
            r"CN=alice\,O=toolforge",
            "CN=Alice,O=toolforge",
            "CN=../bob,O=toolforge",
            "CN=a/b,O=toolforge",
            "CN=a\\00,O=toolforge",
            "CN=аlice,O=toolforge", // Cyrillic a
            "CN=-alice,O=toolforge",
            "CN=alice_x,O=toolforge",
            "CN=,O=toolforge",
            long.as_str(),
        ];
        for dn in cases {
            assert!(identity_from_dn(dn, ORG).is_err(), "{dn:?} was accepted");
        }
    }

    #[test]
    fn organisation_is_configurable() {
        assert!(identity_from_dn("CN=alice,O=toolsbeta", "toolsbeta").is_ok());
        assert!(identity_from_dn("CN=alice,O=toolforge", "toolsbeta").is_err());
    }

    #[test]
    fn tool_name_rules() {
        assert!(ToolName::parse("a").is_ok());
        assert!(ToolName::parse(&"a".repeat(58)).is_ok());
        for bad in ["", "..", "a.b", "A", "a b", "a\0", "-a", "a-"] {
            assert!(ToolName::parse(bad).is_err(), "{bad:?}");
        }
    }
}
