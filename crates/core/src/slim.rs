//! Dropping `metadata.managedFields` from apiserver JSON before it is parsed.
//!
//! Every object the apiserver returns carries `metadata.managedFields`: server-side-apply
//! bookkeeping, often a third of the object, that k8s-openapi parses into untyped JSON trees.
//! The gateway never looks at it, so list replies are rewritten with `"managedFields":null`
//! (only for the key directly inside a `metadata` object; an annotation or label of that name
//! is left alone) and then parsed. The rewrite is done in the reply's own buffer (the text only
//! shrinks), so no second copy of a large list is made. Anything that does not scan as JSON
//! is returned unchanged, so the parser reports it as before.

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

/// `json` with the value of every `metadata.managedFields` replaced by `null`, in place. A
/// value shorter than `null` (`[]`) is left as it is: it costs nothing to parse.
pub fn without_managed_fields(mut json: Vec<u8>) -> Vec<u8> {
    if memchr::memmem::find(&json, KEY).is_none() {
        return json;
    }
    let Some(values) = managed_values(&json) else {
        return json;
    };
    // every replaced value is at least as long as `null`: writing never overtakes reading
    let (mut write, mut read) = (0, 0);
    for (start, end) in values {
        if end - start < NULL.len() {
            continue;
        }
        json.copy_within(read..start, write);
        write += start - read;
        json[write..write + NULL.len()].copy_from_slice(NULL);
        write += NULL.len();
        read = end;
    }
    let len = json.len();
    json.copy_within(read..len, write);
    json.truncate(write + len - read);
    json
}

const NULL: &[u8] = b"null";

/// Where the values of `metadata.managedFields` are (start, end), in order; `None` if the
/// text does not scan as JSON.
fn managed_values(json: &[u8]) -> Option<Vec<(usize, usize)>> {
    let mut values = Vec::new();
    let mut stack: Vec<Frame> = Vec::new();
    // the last key read in the innermost object, while its value is pending
    let mut key: Option<(usize, usize)> = None;
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
                    values.push((start, end));
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
    Some(values)
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
        serde_json::from_slice(&without_managed_fields(text)).unwrap_or(Value::Null)
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
            serde_json::from_slice(&without_managed_fields(pretty)).unwrap_or(Value::Null);
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
            assert_eq!(without_managed_fields(bad.to_vec()), bad);
        }
        // nothing to do: the same buffer back, not a copy
        let plain = br#"{"items":[]}"#.to_vec();
        let at = plain.as_ptr();
        let same = without_managed_fields(plain);
        assert_eq!(same.as_ptr(), at);
    }

    #[test]
    fn rewritten_in_place_byte_for_byte() {
        let text = br#"{"items":[{"metadata":{"managedFields":[{"m":"a"}],"name":"a"}},{"metadata":{"name":"b","managedFields":[]}}],"metadata":{"managedFields":{"x":1}}}"#;
        assert_eq!(
            String::from_utf8_lossy(&without_managed_fields(text.to_vec())),
            r#"{"items":[{"metadata":{"managedFields":null,"name":"a"}},{"metadata":{"name":"b","managedFields":[]}}],"metadata":{"managedFields":null}}"#
        );
    }
}
