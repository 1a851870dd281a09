//! RFC 4514 distinguished-name strings, as nginx passes them in `ssl-client-subject-dn`.
//!
//! The parser is strict: attribute types are case-sensitive short names (`CN`, `O`, …) or
//! dotted OIDs, values may use the RFC 4514 escapes (`\,` `\+` `\"` `\\` `\<` `\>` `\;`
//! `\=` `\ ` `\#` and `\XX` hex pairs), and a `+` joins attributes into one multi-valued RDN.
//! Hex-encoded BER values (`#0403…`) are refused: no real client subject needs them here.

use std::fmt;

/// One `type=value` pair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attribute {
    pub kind: String,
    pub value: String,
}

/// A parsed DN: a list of RDNs, each a non-empty list of attributes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DistinguishedName {
    pub rdns: Vec<Vec<Attribute>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnError(pub String);

impl fmt::Display for DnError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for DnError {}

/// Longest DN string accepted; real subjects are far shorter.
pub const MAX_DN_LEN: usize = 4096;

fn err<T>(msg: impl Into<String>) -> Result<T, DnError> {
    Err(DnError(msg.into()))
}

fn is_valid_type(kind: &str) -> bool {
    let mut chars = kind.chars();
    match chars.next() {
        Some(c) if c.is_ascii_alphabetic() => {
            kind.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        }
        Some(c) if c.is_ascii_digit() => {
            // dotted-decimal OID: numbers separated by single dots, no leading zeros
            kind.split('.').all(|part| {
                !part.is_empty()
                    && part.chars().all(|c| c.is_ascii_digit())
                    && (part == "0" || !part.starts_with('0'))
            })
        }
        _ => false,
    }
}

fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

impl DistinguishedName {
    /// Parses an RFC 4514 string.
    pub fn parse(input: &str) -> Result<Self, DnError> {
        if input.len() > MAX_DN_LEN {
            return err(format!("distinguished name longer than {MAX_DN_LEN} bytes"));
        }
        if input.is_empty() {
            return err("empty distinguished name");
        }
        let bytes = input.as_bytes();
        let mut pos = 0;
        let mut rdns = Vec::new();
        let mut current = Vec::new();
        loop {
            // attribute type
            let start = pos;
            while pos < bytes.len() && bytes[pos] != b'=' {
                if matches!(bytes[pos], b',' | b'+') {
                    return err(format!("attribute without '=' at offset {start}"));
                }
                pos += 1;
            }
            if pos >= bytes.len() {
                return err(format!("attribute without '=' at offset {start}"));
            }
            let kind = &input[start..pos];
            if !is_valid_type(kind) {
                return err(format!("invalid attribute type {kind:?}"));
            }
            pos += 1; // '='
            if pos < bytes.len() && bytes[pos] == b'#' {
                return err(format!("hex-encoded value for {kind} is not supported"));
            }
            // attribute value
            let mut value: Vec<u8> = Vec::new();
            let mut terminator = None;
            while pos < bytes.len() {
                let b = bytes[pos];
                match b {
                    b',' | b'+' => {
                        terminator = Some(b);
                        pos += 1;
                        break;
                    }
                    b'\\' => {
                        let Some(&next) = bytes.get(pos + 1) else {
                            return err("dangling escape at end of name");
                        };
                        if matches!(
                            next,
                            b',' | b'+' | b'"' | b'\\' | b'<' | b'>' | b';' | b'=' | b' ' | b'#'
                        ) {
                            value.push(next);
                            pos += 2;
                        } else {
                            let hi = hex_val(next);
                            let lo = bytes.get(pos + 2).copied().and_then(hex_val);
                            match (hi, lo) {
                                (Some(h), Some(l)) => {
                                    value.push(h * 16 + l);
                                    pos += 3;
                                }
                                _ => return err(format!("invalid escape in value of {kind}")),
                            }
                        }
                    }
                    b'"' | b';' | b'<' | b'>' | 0 => {
                        return err(format!("unescaped {:?} in value of {kind}", b as char));
                    }
                    _ => {
                        value.push(b);
                        pos += 1;
                    }
                }
            }
            let value = match String::from_utf8(value) {
                Ok(v) => v,
                Err(_) => return err(format!("value of {kind} is not valid UTF-8")),
            };
            if value.chars().any(char::is_control) {
                return err(format!("control character in value of {kind}"));
            }
            current.push(Attribute {
                kind: kind.to_string(),
                value,
            });
            match terminator {
                Some(b'+') => {
                    if pos >= bytes.len() {
                        return err("name ends after '+'");
                    }
                }
                Some(_) => {
                    rdns.push(std::mem::take(&mut current));
                    if pos >= bytes.len() {
                        return err("name ends after ','");
                    }
                }
                None => {
                    rdns.push(std::mem::take(&mut current));
                    break;
                }
            }
        }
        Ok(Self { rdns })
    }

    /// All values of an attribute type, in order, wherever they appear.
    pub fn values<'a>(&'a self, kinds: &'a [&'a str]) -> impl Iterator<Item = &'a Attribute> + 'a {
        self.rdns
            .iter()
            .flatten()
            .filter(move |a| kinds.contains(&a.kind.as_str()))
    }

    /// Whether any RDN holds more than one attribute.
    pub fn has_multi_valued_rdn(&self) -> bool {
        self.rdns.iter().any(|rdn| rdn.len() > 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(dn: &str) -> Vec<Vec<(String, String)>> {
        DistinguishedName::parse(dn)
            .map(|d| {
                d.rdns
                    .into_iter()
                    .map(|r| r.into_iter().map(|a| (a.kind, a.value)).collect())
                    .collect()
            })
            .unwrap_or_else(|e| panic!("{dn:?} failed: {e}"))
    }

    #[test]
    fn simple_names_in_either_order() {
        assert_eq!(
            pairs("CN=alice,O=toolforge"),
            vec![
                vec![("CN".into(), "alice".into())],
                vec![("O".into(), "toolforge".into())]
            ]
        );
        assert_eq!(pairs("O=toolforge,CN=alice")[1][0].1, "alice");
    }

    #[test]
    fn escapes_are_decoded() {
        assert_eq!(pairs(r"CN=a\,b,O=x")[0][0].1, "a,b");
        assert_eq!(pairs(r"CN=a\2Cb")[0][0].1, "a,b");
        assert_eq!(pairs(r"CN=\+\;\\\=")[0][0].1, "+;\\=");
        assert_eq!(pairs(r"CN=caf\C3\A9")[0][0].1, "café");
    }

    #[test]
    fn multi_valued_rdn_is_one_rdn() {
        let dn = DistinguishedName::parse("CN=a+O=toolforge,O=x").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(dn.rdns.len(), 2);
        assert_eq!(dn.rdns[0].len(), 2);
        assert!(dn.has_multi_valued_rdn());
    }

    #[test]
    fn oid_types_are_accepted() {
        assert_eq!(pairs("2.5.4.3=alice")[0][0].0, "2.5.4.3");
    }

    #[test]
    fn malformed_names_are_refused() {
        for bad in [
            "",
            "garbage",
            "/O=toolforge/CN=x",
            "CN=alice,",
            "CN=alice+",
            "=alice",
            "CN=a\\",
            "CN=a\\zz",
            "CN=#0403616263",
            "CN=a\"b",
            "CN=a;b",
            "C N=x",
            "1.02.3=x",
            "CN=a\\00b",
            "CN=a\u{7}b",
            "CN=\\C3",
        ] {
            assert!(
                DistinguishedName::parse(bad).is_err(),
                "{bad:?} was accepted"
            );
        }
        assert!(DistinguishedName::parse(&"CN=a".repeat(2000)).is_err());
    }
}
