//! Log lines as the API hands them out: the `lines` parameter, line capping and the NDJSON
//! entries `{datetime,pod,container,message}` (spec §1.3 logs row). Reading files is the
//! gateway's (`logfiles`); reading pods' logs is in [`crate::podlogs`].

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

/// Lines returned when the request does not say.
pub const DEFAULT_LINES: usize = 500;
/// Most lines a request may ask for.
pub const MAX_LINES: usize = 5000;
/// Longest line kept, in bytes; longer lines are cut and end with [`CUT_MARK`].
pub const MAX_LINE_BYTES: usize = 16 * 1024;
/// Appended to (or, for a line whose start was never reached, put before) a cut line.
pub const CUT_MARK: &str = "…";

/// The `lines` query parameter: absent means [`DEFAULT_LINES`].
pub fn parse_lines(raw: Option<&str>) -> Result<usize, String> {
    let Some(raw) = raw else {
        return Ok(DEFAULT_LINES);
    };
    let text = raw.trim();
    let digits = text.strip_prefix('+').unwrap_or(text);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err("Unable to parse lines as integer".to_string());
    }
    match digits.parse::<usize>() {
        Ok(n) if n <= MAX_LINES => Ok(n),
        _ => {
            let shown = digits.trim_start_matches('0');
            Err(format!(
                "Requested number of {shown} lines is over limit of {MAX_LINES}"
            ))
        }
    }
}

/// One line's bytes (without its newline) as text: a trailing `\r` dropped, invalid UTF-8
/// replaced, cut at [`MAX_LINE_BYTES`] on a character boundary with [`CUT_MARK`] appended.
pub fn line_text(bytes: &[u8]) -> String {
    let bytes = bytes.strip_suffix(b"\r").unwrap_or(bytes);
    if bytes.len() <= MAX_LINE_BYTES {
        return String::from_utf8_lossy(bytes).into_owned();
    }
    let mut cut = MAX_LINE_BYTES;
    // Do not split a multi-byte character: back off over continuation bytes.
    while cut > MAX_LINE_BYTES - 3 && (bytes[cut] & 0xC0) == 0x80 {
        cut -= 1;
    }
    let mut text = String::from_utf8_lossy(&bytes[..cut]).into_owned();
    text.push_str(CUT_MARK);
    text
}

/// One log line as the CLI reads it (release 14 reads `datetime`, `pod`, `message`; 16.x also
/// `container`, which the release 13/14 routes leave out).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct LogEntry {
    pub datetime: String,
    pub pod: String,
    pub container: String,
    pub message: String,
}

/// Turns the lines of one stream (`"stdout"` or `"stderr"`) into entries: file logs have no
/// pod, so `pod` is the job name; `datetime` is the file's mtime, RFC 3339 UTC seconds.
pub fn entries(job: &str, stream: &str, lines: Vec<String>, mtime: DateTime<Utc>) -> Vec<LogEntry> {
    let datetime = mtime.to_rfc3339_opts(SecondsFormat::Secs, true);
    lines
        .into_iter()
        .map(|message| LogEntry {
            datetime: datetime.clone(),
            pod: job.to_string(),
            container: stream.to_string(),
            message,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_parameter() {
        assert_eq!(parse_lines(None), Ok(500));
        assert_eq!(parse_lines(Some("10")), Ok(10));
        assert_eq!(parse_lines(Some(" 5000 ")), Ok(5000));
        assert_eq!(parse_lines(Some("0")), Ok(0));
        assert_eq!(parse_lines(Some("+7")), Ok(7));
        for bad in ["", "abc", "1.5", "-3", "10x", "+"] {
            assert_eq!(
                parse_lines(Some(bad)),
                Err("Unable to parse lines as integer".to_string()),
                "{bad}"
            );
        }
        assert_eq!(
            parse_lines(Some("5001")),
            Err("Requested number of 5001 lines is over limit of 5000".to_string())
        );
        assert_eq!(
            parse_lines(Some("99999999999999999999999")),
            Err(
                "Requested number of 99999999999999999999999 lines is over limit of 5000"
                    .to_string()
            )
        );
    }

    #[test]
    fn entries_and_json() {
        let mtime = DateTime::parse_from_rfc3339("2024-05-06T07:08:09.123+02:00")
            .unwrap()
            .with_timezone(&Utc);
        let e = entries("myjob", "stderr", vec!["boom".into(), "bang".into()], mtime);
        assert_eq!(e.len(), 2);
        assert_eq!(
            e[0],
            LogEntry {
                datetime: "2024-05-06T05:08:09Z".into(),
                pod: "myjob".into(),
                container: "stderr".into(),
                message: "boom".into(),
            }
        );
        assert_eq!(
            serde_json::to_value(&e[1]).unwrap(),
            serde_json::json!({"datetime": "2024-05-06T05:08:09Z", "pod": "myjob",
                               "container": "stderr", "message": "bang"})
        );
    }
}
