//! HTTP/2 frames (RFC 9113 §4, §6) as a client needs them, and the request header block
//! (HPACK, RFC 7541): pure functions over bytes, no I/O.

/// Frame types.
pub const DATA: u8 = 0x0;
pub const HEADERS: u8 = 0x1;
pub const RST_STREAM: u8 = 0x3;
pub const SETTINGS: u8 = 0x4;
pub const PUSH_PROMISE: u8 = 0x5;
pub const PING: u8 = 0x6;
pub const GOAWAY: u8 = 0x7;
pub const WINDOW_UPDATE: u8 = 0x8;
pub const CONTINUATION: u8 = 0x9;

/// Flags.
pub const END_STREAM: u8 = 0x1;
pub const ACK: u8 = 0x1;
pub const END_HEADERS: u8 = 0x4;
pub const PADDED: u8 = 0x8;
pub const PRIORITY: u8 = 0x20;

/// Settings.
pub const SETTINGS_HEADER_TABLE_SIZE: u16 = 0x1;
pub const SETTINGS_ENABLE_PUSH: u16 = 0x2;
pub const SETTINGS_MAX_CONCURRENT_STREAMS: u16 = 0x3;
pub const SETTINGS_INITIAL_WINDOW_SIZE: u16 = 0x4;
pub const SETTINGS_MAX_FRAME_SIZE: u16 = 0x5;

/// Error codes.
pub const NO_ERROR: u32 = 0x0;
pub const PROTOCOL_ERROR: u32 = 0x1;
pub const FLOW_CONTROL_ERROR: u32 = 0x3;
pub const REFUSED_STREAM: u32 = 0x7;
pub const CANCEL: u32 = 0x8;
pub const COMPRESSION_ERROR: u32 = 0x9;

/// What a client sends first on a connection.
pub const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// The largest frame payload this client takes (the protocol's default; never raised).
pub const MAX_FRAME: usize = 16_384;
/// The largest window the protocol allows.
pub const MAX_WINDOW: i64 = (1 << 31) - 1;
/// The window every stream and the connection start with.
pub const DEFAULT_WINDOW: u32 = 65_535;

/// A frame's 9-byte head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Head {
    pub len: usize,
    pub kind: u8,
    pub flags: u8,
    pub stream: u32,
}

impl Head {
    pub const SIZE: usize = 9;

    /// The head at the start of `bytes`, when 9 bytes are there.
    pub fn parse(bytes: &[u8]) -> Option<Self> {
        let b = bytes.get(..Self::SIZE)?;
        Some(Self {
            len: (usize::from(b[0]) << 16) | (usize::from(b[1]) << 8) | usize::from(b[2]),
            kind: b[3],
            flags: b[4],
            stream: u32::from_be_bytes([b[5], b[6], b[7], b[8]]) & 0x7fff_ffff,
        })
    }
}

/// Appends one frame to `out`.
pub fn put(out: &mut Vec<u8>, kind: u8, flags: u8, stream: u32, payload: &[u8]) {
    let len = payload.len();
    out.extend_from_slice(&[(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags]);
    out.extend_from_slice(&(stream & 0x7fff_ffff).to_be_bytes());
    out.extend_from_slice(payload);
}

/// Appends a SETTINGS frame with `pairs`.
pub fn put_settings(out: &mut Vec<u8>, pairs: &[(u16, u32)]) {
    let mut payload = Vec::with_capacity(pairs.len() * 6);
    for (id, value) in pairs {
        payload.extend_from_slice(&id.to_be_bytes());
        payload.extend_from_slice(&value.to_be_bytes());
    }
    put(out, SETTINGS, 0, 0, &payload);
}

/// Appends a frame whose payload is one 32-bit number (WINDOW_UPDATE, RST_STREAM).
pub fn put_u32(out: &mut Vec<u8>, kind: u8, stream: u32, value: u32) {
    put(out, kind, 0, stream, &value.to_be_bytes());
}

/// Appends a GOAWAY frame.
pub fn put_goaway(out: &mut Vec<u8>, last_stream: u32, code: u32) {
    let mut payload = [0u8; 8];
    payload[..4].copy_from_slice(&(last_stream & 0x7fff_ffff).to_be_bytes());
    payload[4..].copy_from_slice(&code.to_be_bytes());
    put(out, GOAWAY, 0, 0, &payload);
}

/// Appends a header block as one HEADERS frame and as many CONTINUATION frames as
/// `max_frame` needs.
pub fn put_header_block(
    out: &mut Vec<u8>,
    stream: u32,
    block: &[u8],
    end_stream: bool,
    max_frame: usize,
) {
    let max_frame = max_frame.max(1);
    let mut chunks = block.chunks(max_frame).peekable();
    let first = chunks.next().unwrap_or(&[]);
    let mut flags = if end_stream { END_STREAM } else { 0 };
    if chunks.peek().is_none() {
        flags |= END_HEADERS;
    }
    put(out, HEADERS, flags, stream, first);
    while let Some(chunk) = chunks.next() {
        let flags = if chunks.peek().is_none() {
            END_HEADERS
        } else {
            0
        };
        put(out, CONTINUATION, flags, stream, chunk);
    }
}

/// A frame that breaks the protocol: the connection ends with this error code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtocolError {
    pub code: u32,
    pub what: String,
}

impl ProtocolError {
    pub fn new(code: u32, what: impl Into<String>) -> Self {
        Self {
            code,
            what: what.into(),
        }
    }
}

/// The payload of a DATA or HEADERS frame without its padding.
pub fn unpad(flags: u8, payload: &[u8]) -> Result<&[u8], ProtocolError> {
    if flags & PADDED == 0 {
        return Ok(payload);
    }
    let Some((&pad, rest)) = payload.split_first() else {
        return Err(ProtocolError::new(
            PROTOCOL_ERROR,
            "a padded frame is empty",
        ));
    };
    rest.len()
        .checked_sub(usize::from(pad))
        .map(|len| &rest[..len])
        .ok_or_else(|| ProtocolError::new(PROTOCOL_ERROR, "padding longer than the frame"))
}

/// The header block fragment of a HEADERS frame (padding and priority removed).
pub fn header_fragment(flags: u8, payload: &[u8]) -> Result<&[u8], ProtocolError> {
    let rest = unpad(flags, payload)?;
    if flags & PRIORITY == 0 {
        return Ok(rest);
    }
    rest.get(5..)
        .ok_or_else(|| ProtocolError::new(PROTOCOL_ERROR, "a HEADERS frame's priority is cut"))
}

/// The (id, value) pairs of a SETTINGS payload.
pub fn settings(payload: &[u8]) -> Result<Vec<(u16, u32)>, ProtocolError> {
    if payload.len() % 6 != 0 {
        return Err(ProtocolError::new(
            PROTOCOL_ERROR,
            "a SETTINGS frame's length is not a multiple of 6",
        ));
    }
    Ok(payload
        .chunks_exact(6)
        .map(|c| {
            (
                u16::from_be_bytes([c[0], c[1]]),
                u32::from_be_bytes([c[2], c[3], c[4], c[5]]),
            )
        })
        .collect())
}

/// The 32-bit number that starts a payload (its top bit cleared when `reserved`).
pub fn leading_u32(payload: &[u8], reserved: bool) -> Result<u32, ProtocolError> {
    let b = payload
        .get(..4)
        .ok_or_else(|| ProtocolError::new(PROTOCOL_ERROR, "a frame is too short"))?;
    let v = u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
    Ok(if reserved { v & 0x7fff_ffff } else { v })
}

/// The name of an error code, for messages.
pub fn reason(code: u32) -> String {
    let name = match code {
        0x0 => "NO_ERROR",
        0x1 => "PROTOCOL_ERROR",
        0x2 => "INTERNAL_ERROR",
        0x3 => "FLOW_CONTROL_ERROR",
        0x4 => "SETTINGS_TIMEOUT",
        0x5 => "STREAM_CLOSED",
        0x6 => "FRAME_SIZE_ERROR",
        0x7 => "REFUSED_STREAM",
        0x8 => "CANCEL",
        0x9 => "COMPRESSION_ERROR",
        0xa => "CONNECT_ERROR",
        0xb => "ENHANCE_YOUR_CALM",
        0xc => "INADEQUATE_SECURITY",
        0xd => "HTTP_1_1_REQUIRED",
        _ => return format!("error code {code:#x}"),
    };
    name.to_string()
}

/// Request headers that HTTP/2 forbids (RFC 9113 §8.2.2); `host` becomes `:authority`.
fn connection_specific(name: &http::HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection" | "keep-alive" | "proxy-connection" | "transfer-encoding" | "upgrade" | "host"
    )
}

/// An HPACK integer with an `n`-bit prefix, the first byte's other bits set to `flags`.
fn hpack_int(out: &mut Vec<u8>, n: u8, flags: u8, mut value: usize) {
    let max = (1usize << n) - 1;
    if value < max {
        out.push(flags | value as u8);
        return;
    }
    out.push(flags | max as u8);
    value -= max;
    while value >= 0x80 {
        out.push((value as u8 & 0x7f) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// An HPACK string literal, without Huffman coding.
fn hpack_str(out: &mut Vec<u8>, s: &[u8]) {
    hpack_int(out, 7, 0, s.len());
    out.extend_from_slice(s);
}

/// Static table indexes (RFC 7541 Appendix A) of the names a request uses.
const AUTHORITY: usize = 1;
const METHOD: usize = 2;
const PATH: usize = 4;
/// Fully indexed fields: `:method GET`, `:method POST`, `:scheme https`.
const METHOD_GET: u8 = 0x80 | 2;
const METHOD_POST: u8 = 0x80 | 3;
const SCHEME_HTTPS: u8 = 0x80 | 7;

/// The header block of a request. Nothing is added to the apiserver's dynamic table (every
/// field is a literal without indexing, `authorization` never indexed), so the block stands
/// alone and encoding keeps no state.
pub fn request_block(
    method: &http::Method,
    authority: &str,
    path: &str,
    headers: &http::HeaderMap,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 + path.len() + headers.len() * 32);
    match *method {
        http::Method::GET => out.push(METHOD_GET),
        http::Method::POST => out.push(METHOD_POST),
        ref other => {
            hpack_int(&mut out, 4, 0, METHOD);
            hpack_str(&mut out, other.as_str().as_bytes());
        }
    }
    out.push(SCHEME_HTTPS);
    hpack_int(&mut out, 4, 0, PATH);
    hpack_str(&mut out, path.as_bytes());
    hpack_int(&mut out, 4, 0, AUTHORITY);
    hpack_str(&mut out, authority.as_bytes());
    for (name, value) in headers {
        if connection_specific(name) || (name == http::header::TE && value != "trailers") {
            continue;
        }
        let never_indexed = name == http::header::AUTHORIZATION || value.is_sensitive();
        out.push(if never_indexed { 0x10 } else { 0x00 });
        hpack_str(&mut out, name.as_str().as_bytes());
        hpack_str(&mut out, value.as_bytes());
    }
    out
}

/// The response head a decoded header block describes: its status and headers.
/// `Ok(None)` for an informational (1xx) head, which a client skips.
pub fn response_head(
    fields: &[(Vec<u8>, Vec<u8>, u8)],
) -> Result<Option<http::response::Parts>, String> {
    let mut status = None;
    let mut headers = http::HeaderMap::with_capacity(fields.len());
    for (name, value, _) in fields {
        if name.first() == Some(&b':') {
            if name.as_slice() == b":status" {
                status = Some(
                    http::StatusCode::from_bytes(value)
                        .map_err(|_| "a response with an invalid :status".to_string())?,
                );
            }
            continue;
        }
        let name = http::HeaderName::from_bytes(name)
            .map_err(|_| "a response header with an invalid name".to_string())?;
        let value = http::HeaderValue::from_bytes(value)
            .map_err(|_| format!("the response header {name} has an invalid value"))?;
        headers.append(name, value);
    }
    let status = status.ok_or_else(|| "a response without :status".to_string())?;
    if status.is_informational() {
        return Ok(None);
    }
    let (mut parts, ()) = http::Response::new(()).into_parts();
    parts.status = status;
    parts.version = http::Version::HTTP_2;
    parts.headers = headers;
    Ok(Some(parts))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(block: &[u8]) -> Vec<(String, String)> {
        let mut decoder = httlib_hpack::Decoder::default();
        let mut buf = block.to_vec();
        let mut fields = Vec::new();
        decoder
            .decode(&mut buf, &mut fields)
            .unwrap_or_else(|e| panic!("{e:?}"));
        fields
            .into_iter()
            .map(|(n, v, _)| {
                (
                    String::from_utf8_lossy(&n).into_owned(),
                    String::from_utf8_lossy(&v).into_owned(),
                )
            })
            .collect()
    }

    #[test]
    fn a_request_block_decodes_to_its_pseudo_headers_and_headers() {
        let mut headers = http::HeaderMap::new();
        headers.insert("accept", http::HeaderValue::from_static("application/json"));
        headers.insert("host", http::HeaderValue::from_static("ignored"));
        headers.insert("connection", http::HeaderValue::from_static("close"));
        headers.insert("x-long", http::HeaderValue::from_static(""));
        let long_path = format!(
            "/api/v1/namespaces/tool-a/pods?labelSelector={}",
            "x".repeat(300)
        );
        let block = request_block(&http::Method::GET, "127.0.0.1:6443", &long_path, &headers);
        assert_eq!(
            decode(&block),
            vec![
                (":method".into(), "GET".into()),
                (":scheme".into(), "https".into()),
                (":path".into(), long_path.clone()),
                (":authority".into(), "127.0.0.1:6443".into()),
                ("accept".into(), "application/json".into()),
                ("x-long".into(), "".into()),
            ]
        );
        for method in [
            http::Method::POST,
            http::Method::DELETE,
            http::Method::PATCH,
        ] {
            let block = request_block(&method, "k", "/", &http::HeaderMap::new());
            assert_eq!(decode(&block)[0], (":method".into(), method.to_string()));
        }
    }

    #[test]
    fn hpack_integers_follow_the_rfc_examples() {
        // RFC 7541 C.1.1-C.1.3
        let mut out = Vec::new();
        hpack_int(&mut out, 5, 0, 10);
        assert_eq!(out, [10]);
        out.clear();
        hpack_int(&mut out, 5, 0, 1337);
        assert_eq!(out, [31, 154, 10]);
        out.clear();
        hpack_int(&mut out, 8, 0, 42);
        assert_eq!(out, [42]);
    }

    #[test]
    fn frames_round_trip_through_their_head() {
        let mut out = Vec::new();
        put(&mut out, DATA, END_STREAM, 7, b"hello");
        let head = Head::parse(&out).unwrap_or_else(|| panic!("no head"));
        assert_eq!(
            head,
            Head {
                len: 5,
                kind: DATA,
                flags: END_STREAM,
                stream: 7
            }
        );
        assert_eq!(&out[Head::SIZE..], b"hello");
        assert_eq!(Head::parse(&out[..8]), None);
    }

    #[test]
    fn a_long_header_block_is_split_into_continuations() {
        let block: Vec<u8> = (0..40u8).collect();
        let mut out = Vec::new();
        put_header_block(&mut out, 3, &block, true, 16);
        let mut at = 0;
        let mut kinds = Vec::new();
        let mut joined = Vec::new();
        while let Some(h) = Head::parse(&out[at..]) {
            kinds.push((h.kind, h.flags));
            joined.extend_from_slice(&out[at + Head::SIZE..at + Head::SIZE + h.len]);
            at += Head::SIZE + h.len;
        }
        assert_eq!(
            kinds,
            vec![
                (HEADERS, END_STREAM),
                (CONTINUATION, 0),
                (CONTINUATION, END_HEADERS)
            ]
        );
        assert_eq!(joined, block);
        out.clear();
        put_header_block(&mut out, 3, &block, false, MAX_FRAME);
        assert_eq!(
            Head::parse(&out).map(|h| (h.kind, h.flags, h.len)),
            Some((HEADERS, END_HEADERS, 40))
        );
    }

    #[test]
    fn padding_and_priority_are_removed() {
        assert_eq!(unpad(0, b"abc"), Ok(&b"abc"[..]));
        assert_eq!(unpad(PADDED, b"\x02abcxx"), Ok(&b"abc"[..]));
        assert!(unpad(PADDED, b"\x05ab").is_err());
        assert!(unpad(PADDED, b"").is_err());
        assert_eq!(
            header_fragment(PADDED | PRIORITY, b"\x01\0\0\0\x03\x10hdrX"),
            Ok(&b"hdr"[..])
        );
        assert!(header_fragment(PRIORITY, b"\0\0").is_err());
    }

    #[test]
    fn settings_are_read_in_pairs() {
        let mut out = Vec::new();
        put_settings(
            &mut out,
            &[
                (SETTINGS_ENABLE_PUSH, 0),
                (SETTINGS_MAX_FRAME_SIZE, 1 << 20),
            ],
        );
        let head = Head::parse(&out).unwrap_or_else(|| panic!("no head"));
        assert_eq!((head.kind, head.len), (SETTINGS, 12));
        assert_eq!(
            settings(&out[Head::SIZE..]),
            Ok(vec![
                (SETTINGS_ENABLE_PUSH, 0),
                (SETTINGS_MAX_FRAME_SIZE, 1 << 20)
            ])
        );
        assert!(settings(b"12345").is_err());
    }

    #[test]
    fn response_heads_need_a_status_and_skip_informational_ones() {
        let field = |n: &str, v: &str| (n.as_bytes().to_vec(), v.as_bytes().to_vec(), 0u8);
        let parts = response_head(&[
            field(":status", "404"),
            field("content-type", "application/json"),
        ])
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|| panic!("informational"));
        assert_eq!(parts.status, http::StatusCode::NOT_FOUND);
        assert_eq!(parts.headers["content-type"], "application/json");
        assert!(matches!(
            response_head(&[field(":status", "100")]),
            Ok(None)
        ));
        assert!(response_head(&[field("content-type", "x")]).is_err());
        assert!(response_head(&[field(":status", "2000")]).is_err());
        assert!(response_head(&[field(":status", "200"), field("bad name", "x")]).is_err());
    }
}
