//! Container logs: the output of jobs without file logging, read from the kubelet through the
//! apiserver (`pods/log`, `timestamps=true`) as the tool. This module has the pure parts:
//! a kubelet log line, the `since`/`until` bounds the 16.x CLI passes through, and the merge
//! of several pods' lines into one list, oldest first, capped at the last `lines` entries.

use chrono::{DateTime, Duration, SecondsFormat, Utc};

use super::logs::{LogEntry, CUT_MARK, MAX_LINE_BYTES};

/// One line of a container's log as the kubelet serves it with `timestamps=true`:
/// `2026-12-03T11:45:27.123456789Z message`. A line without a parsable time (never sent by a
/// kubelet) is `None`.
pub fn parse_line(raw: &str) -> Option<(DateTime<Utc>, &str)> {
    let raw = raw.strip_suffix('\n').unwrap_or(raw);
    let raw = raw.strip_suffix('\r').unwrap_or(raw);
    let (stamp, message) = raw.split_once(' ').unwrap_or((raw, ""));
    let time = DateTime::parse_from_rfc3339(stamp)
        .ok()?
        .with_timezone(&Utc);
    Some((time, message))
}

/// A message no longer than [`MAX_LINE_BYTES`], cut at a character boundary and marked.
pub fn capped(message: &str) -> String {
    if message.len() <= MAX_LINE_BYTES {
        return message.to_string();
    }
    let mut end = MAX_LINE_BYTES;
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{CUT_MARK}", &message[..end])
}

/// The time a `since` or `until` parameter names: an RFC 3339 / ISO 8601 time, or a
/// duration before `now` such as `1h32m22s`, `10m`, `2d`, `90s` (units d, h, m, s; a bare
/// number is seconds), as the 16.x CLI passes them through untouched.
pub fn parse_time_bound(
    name: &str,
    text: &str,
    now: DateTime<Utc>,
) -> Result<DateTime<Utc>, String> {
    let text = text.trim();
    let bad = || {
        format!(
            "Invalid value for {name}: {text:?} (use an ISO 8601 time such as 2026-03-02T21:29:55+01:00, or a duration such as 1h30m, 10m, 45s)"
        )
    };
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&Utc));
    }
    // ISO 8601 without a zone, or with a space: read as UTC
    for format in ["%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M"] {
        if let Ok(t) = chrono::NaiveDateTime::parse_from_str(text, format) {
            return Ok(t.and_utc());
        }
    }
    if text.is_empty() {
        return Err(bad());
    }
    let mut seconds: i64 = 0;
    let mut digits = String::new();
    for c in text.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let unit = match c {
            'd' => 86_400,
            'h' => 3_600,
            'm' => 60,
            's' => 1,
            _ => return Err(bad()),
        };
        let n: i64 = digits.parse().map_err(|_| bad())?;
        seconds = n
            .checked_mul(unit)
            .and_then(|s| seconds.checked_add(s))
            .ok_or_else(bad)?;
        digits.clear();
    }
    if !digits.is_empty() {
        let n: i64 = digits.parse().map_err(|_| bad())?;
        seconds = seconds.checked_add(n).ok_or_else(bad)?;
    }
    // more than ten years back is surely a mistake, and keeps the arithmetic in range
    if seconds > 10 * 366 * 86_400 {
        return Err(bad());
    }
    Ok(now - Duration::seconds(seconds))
}

/// A line of one pod's container, with its kubelet time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodLine {
    pub time: DateTime<Utc>,
    pub pod: String,
    pub container: String,
    pub message: String,
}

impl PodLine {
    pub fn entry(&self) -> LogEntry {
        LogEntry {
            datetime: self.time.to_rfc3339_opts(SecondsFormat::Secs, true),
            pod: self.pod.clone(),
            container: self.container.clone(),
            message: self.message.clone(),
        }
    }
}

/// The lines of every pod, oldest first (pods interleaved by time; equal times keep each
/// pod's order), without lines after `until`, then the last `lines` of them.
pub fn merge(mut all: Vec<PodLine>, until: Option<DateTime<Utc>>, lines: usize) -> Vec<PodLine> {
    if let Some(until) = until {
        all.retain(|l| l.time <= until);
    }
    // stable: lines of one pod with equal times stay in the kubelet's order
    all.sort_by_key(|l| l.time);
    let skip = all.len().saturating_sub(lines);
    all.drain(..skip);
    all
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .unwrap_or_else(|e| panic!("{s}: {e}"))
            .with_timezone(&Utc)
    }

    fn line(time: &str, pod: &str, message: &str) -> PodLine {
        PodLine {
            time: t(time),
            pod: pod.into(),
            container: "job".into(),
            message: message.into(),
        }
    }

    #[test]
    fn kubelet_lines() {
        let (time, msg) = parse_line("2026-12-03T11:45:27.123456789Z hello world\n")
            .unwrap_or_else(|| panic!("parses"));
        assert_eq!(time, t("2026-12-03T11:45:27.123456789Z"));
        assert_eq!(msg, "hello world");
        assert_eq!(
            parse_line("2026-12-03T11:45:27Z ").map(|(_, m)| m),
            Some("")
        );
        assert_eq!(parse_line("2026-12-03T11:45:27Z").map(|(_, m)| m), Some(""));
        assert_eq!(
            parse_line("2026-12-03T11:45:27Z  two spaces").map(|(_, m)| m),
            Some(" two spaces")
        );
        assert!(parse_line("no time here").is_none());
        assert!(parse_line("").is_none());
    }

    #[test]
    fn long_messages_are_cut_on_a_character() {
        assert_eq!(capped("short"), "short");
        let long = "é".repeat(MAX_LINE_BYTES);
        let cut = capped(&long);
        assert!(cut.ends_with(CUT_MARK));
        assert!(cut.len() <= MAX_LINE_BYTES + CUT_MARK.len());
    }

    #[test]
    fn time_bounds() {
        let now = t("2026-12-03T12:00:00Z");
        let p = |s: &str| parse_time_bound("since", s, now);
        assert_eq!(p("1h32m22s"), Ok(t("2026-12-03T10:27:38Z")));
        assert_eq!(p("10m"), Ok(t("2026-12-03T11:50:00Z")));
        assert_eq!(p("2d"), Ok(t("2026-12-01T12:00:00Z")));
        assert_eq!(p("90"), Ok(t("2026-12-03T11:58:30Z")));
        assert_eq!(
            p("2026-03-02T21:29:55+01:00"),
            Ok(t("2026-03-02T20:29:55Z"))
        );
        assert_eq!(p("2026-03-02T21:29:55"), Ok(t("2026-03-02T21:29:55Z")));
        for bad in [
            "",
            "yesterday",
            "1x",
            "h",
            "-5m",
            "99999999999999999999s",
            "1000000d",
        ] {
            let err = p(bad).err().unwrap_or_else(|| panic!("{bad:?} accepted"));
            assert!(err.starts_with("Invalid value for since"), "{err}");
        }
    }

    #[test]
    fn merge_interleaves_pods_by_time_and_keeps_the_last_lines() {
        let all = vec![
            line("2026-12-03T11:00:01Z", "a", "a1"),
            line("2026-12-03T11:00:03Z", "a", "a2"),
            line("2026-12-03T11:00:02Z", "b", "b1"),
            line("2026-12-03T11:00:04Z", "b", "b2"),
            line("2026-12-03T11:00:04Z", "b", "b3"),
        ];
        let msgs = |v: Vec<PodLine>| v.into_iter().map(|l| l.message).collect::<Vec<_>>();
        assert_eq!(
            msgs(merge(all.clone(), None, 10)),
            ["a1", "b1", "a2", "b2", "b3"]
        );
        assert_eq!(msgs(merge(all.clone(), None, 2)), ["b2", "b3"]);
        assert_eq!(msgs(merge(all.clone(), None, 0)), Vec::<String>::new());
        assert_eq!(
            msgs(merge(all, Some(t("2026-12-03T11:00:03Z")), 10)),
            ["a1", "b1", "a2"]
        );
    }

    #[test]
    fn entries_carry_seconds() {
        let e = line("2026-12-03T11:00:01.999Z", "p", "m").entry();
        assert_eq!(e.datetime, "2026-12-03T11:00:01Z");
        assert_eq!((e.pod.as_str(), e.container.as_str()), ("p", "job"));
    }
}
