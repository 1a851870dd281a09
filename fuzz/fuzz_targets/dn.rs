//! DN parser and identity rules: never panic; an accepted identity is a valid tool name.
#![no_main]

use jobs_core::identity::dn::DistinguishedName;
use jobs_core::identity::{identity_from_dn, MAX_TOOL_NAME_LEN};
use libfuzzer_sys::fuzz_target;

/// ^[a-z0-9]([a-z0-9-]*[a-z0-9])?$
fn is_tool_name(s: &str) -> bool {
    let b = s.as_bytes();
    let inner = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    match b {
        [] => false,
        [only] => inner(only),
        [first, mid @ .., last] => inner(first) && inner(last) && mid.iter().all(|c| inner(c) || *c == b'-'),
    }
}

fuzz_target!(|data: &[u8]| {
    // Header values reach the parser as &str; invalid UTF-8 is folded to U+FFFD.
    let raw = String::from_utf8_lossy(data);
    let raw = raw.as_ref();

    let parsed = DistinguishedName::parse(raw);
    if let Ok(dn) = &parsed {
        assert!(!dn.rdns.is_empty(), "parsed DN with no RDN: {raw:?}");
        for rdn in &dn.rdns {
            assert!(!rdn.is_empty(), "parsed DN with an empty RDN: {raw:?}");
            for a in rdn {
                assert!(!a.kind.is_empty(), "empty attribute type: {raw:?}");
                assert!(
                    !a.value.chars().any(char::is_control),
                    "control character in parsed value {:?} of {raw:?}",
                    a.value
                );
            }
        }
        let _ = dn.has_multi_valued_rdn();
    }

    match identity_from_dn(raw, "toolforge") {
        Ok(tool) => {
            let name = tool.as_str();
            assert!(parsed.is_ok(), "identity accepted from an unparsable DN: {raw:?}");
            assert!(
                name.len() <= MAX_TOOL_NAME_LEN && name.len() <= 58,
                "tool name longer than 58 chars: {name:?} from {raw:?}"
            );
            assert!(is_tool_name(name), "invalid tool name {name:?} from {raw:?}");
            assert_eq!(tool.namespace(), format!("tool-{name}"));
            assert!(tool.namespace().len() <= 63);
        }
        Err(e) => {
            // The message is shown to the caller; it must be built without panicking.
            let _ = e.to_string();
        }
    }
});
