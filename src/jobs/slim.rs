//! Dropping `metadata.managedFields` from apiserver JSON before it is parsed.
//!
//! Every object the apiserver returns carries `metadata.managedFields`: server-side-apply
//! bookkeeping, often a third of the object, that k8s-openapi parses into untyped JSON trees.
//! The gateway never looks at it, so list replies are rewritten with `"managedFields":null`
//! (only for the key directly inside a `metadata` object; an annotation or label of that name
//! is left alone) and then parsed. Anything that does not scan as JSON is returned unchanged,
//! so the parser reports it as before.

use std::borrow::Cow;

const KEY: &[u8] = b"managedFields";
const METADATA: &[u8] = b"metadata";

/// One open object or array.
struct Frame {
    object: bool,
    /// This object is the value of a `metadata` key.
    metadata: bool,
    /// In an object: the next string is a key.
    expect_key: bool,
}

/// `json` with the value of every `metadata.managedFields` replaced by `null`.
pub fn without_managed_fields(json: &[u8]) -> Cow<'_, [u8]> {
    if memchr::memmem::find(json, KEY).is_none() {
        return Cow::Borrowed(json);
    }
    match rewrite(json) {
        Some(out) => Cow::Owned(out),
        None => Cow::Borrowed(json),
    }
}

fn rewrite(json: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(json.len());
    let mut stack: Vec<Frame> = Vec::new();
    // the last key read in the innermost object, while its value is pending
    let mut key: Option<(usize, usize)> = None;
    let mut copied = 0;
    let mut i = 0;
    while i < json.len() {
        match json[i] {
            b'{' => {
                let metadata = key.is_some_and(|(s, e)| &json[s..e] == METADATA);
                stack.push(Frame {
                    object: true,
                    metadata,
                    expect_key: true,
                });
                key = None;
                i += 1;
            }
            b'[' => {
                stack.push(Frame {
                    object: false,
                    metadata: false,
                    expect_key: false,
                });
                key = None;
                i += 1;
            }
            b'}' | b']' => {
                stack.pop()?;
                key = None;
                i += 1;
            }
            b',' => {
                if let Some(top) = stack.last_mut() {
                    top.expect_key = top.object;
                }
                key = None;
                i += 1;
            }
            b'"' => {
                let end = string_end(json, i)?;
                match stack.last_mut() {
                    Some(top) if top.object && top.expect_key => {
                        top.expect_key = false;
                        key = Some((i + 1, end - 1));
                    }
                    _ => key = None,
                }
                i = end;
            }
            b':' => {
                let in_metadata = stack.last().is_some_and(|f| f.object && f.metadata);
                let is_managed = key.is_some_and(|(s, e)| &json[s..e] == KEY);
                i += 1;
                if in_metadata && is_managed {
                    let start = skip_ws(json, i);
                    let end = value_end(json, start)?;
                    out.extend_from_slice(&json[copied..start]);
                    out.extend_from_slice(b"null");
                    copied = end;
                    i = end;
                    key = None;
                }
            }
            _ => i += 1,
        }
    }
    if !stack.is_empty() {
        return None;
    }
    out.extend_from_slice(&json[copied..]);
    Some(out)
}

fn skip_ws(json: &[u8], mut i: usize) -> usize {
    while i < json.len() && json[i].is_ascii_whitespace() {
        i += 1;
    }
    i
}

/// The index just after the string that starts (with its quote) at `start`.
fn string_end(json: &[u8], start: usize) -> Option<usize> {
    let mut i = start + 1;
    loop {
        let at = i + memchr::memchr2(b'"', b'\\', json.get(i..)?)?;
        if json[at] == b'"' {
            return Some(at + 1);
        }
        i = at + 2;
    }
}

/// The index just after the JSON value that starts at `start`.
fn value_end(json: &[u8], start: usize) -> Option<usize> {
    match *json.get(start)? {
        b'"' => string_end(json, start),
        b'{' | b'[' => {
            let mut depth = 0usize;
            let mut i = start;
            while i < json.len() {
                match json[i] {
                    b'"' => {
                        i = string_end(json, i)?;
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            return Some(i + 1);
                        }
                    }
                    _ => {}
                }
                i += 1;
            }
            None
        }
        _ => {
            let mut i = start;
            while i < json.len() && !matches!(json[i], b',' | b'}' | b']') {
                i += 1;
            }
            (i > start).then_some(i)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn slim(v: &Value) -> Value {
        let text = serde_json::to_vec(v).unwrap_or_default();
        serde_json::from_slice(&without_managed_fields(&text)).unwrap_or(Value::Null)
    }

    #[test]
    fn managed_fields_of_every_item_become_null() {
        let mf = json!([{"manager": "kube-controller-manager", "operation": "Update",
            "fieldsType": "FieldsV1", "fieldsV1": {"f:status": {"f:active": {}, ".": {}}}}]);
        let list = json!({"kind": "JobList", "metadata": {"resourceVersion": "7"}, "items": [
            {"metadata": {"name": "a", "managedFields": mf, "labels": {"x": "y"}}, "spec": {}},
            {"metadata": {"managedFields": mf, "name": "b"}},
        ]});
        let got = slim(&list);
        assert_eq!(got["items"][0]["metadata"]["managedFields"], Value::Null);
        assert_eq!(got["items"][1]["metadata"]["managedFields"], Value::Null);
        assert_eq!(got["items"][0]["metadata"]["name"], "a");
        assert_eq!(got["items"][0]["metadata"]["labels"]["x"], "y");
        assert_eq!(got["items"][1]["metadata"]["name"], "b");
        assert_eq!(got["metadata"]["resourceVersion"], "7");
    }

    #[test]
    fn the_name_elsewhere_is_left_alone() {
        let v = json!({"metadata": {
            "annotations": {"managedFields": "kept", "note": "\"managedFields\":[1]"},
            "labels": {"managedFields": "also-kept"},
            "name": "x\\"},
            "spec": {"managedFields": [1, 2]},
            "managedFields": [3]});
        assert_eq!(slim(&v), v);
    }

    #[test]
    fn pretty_printed_and_escaped_input() {
        let v = json!({"items": [{"metadata": {"name": "q\"{[", "managedFields": [
            {"fieldsV1": {"f:metadata": {"f:labels": {"f:a\"]}": {}}}}}]}}]});
        let pretty = serde_json::to_vec_pretty(&v).unwrap_or_default();
        let got: Value =
            serde_json::from_slice(&without_managed_fields(&pretty)).unwrap_or(Value::Null);
        assert_eq!(got["items"][0]["metadata"]["managedFields"], Value::Null);
        assert_eq!(got["items"][0]["metadata"]["name"], "q\"{[");
    }

    #[test]
    fn input_that_is_not_json_is_returned_unchanged() {
        for bad in [
            &b"{\"metadata\":{\"managedFields\":[{\"a\":1}"[..],
            b"{\"metadata\":{\"managedFields\":",
            b"]]managedFields",
            b"{\"metadata\":{\"managedFields\":\"unterminated}}",
        ] {
            assert_eq!(&*without_managed_fields(bad), bad);
        }
        let plain = br#"{"items":[]}"#;
        assert!(matches!(without_managed_fields(plain), Cow::Borrowed(_)));
    }
}
