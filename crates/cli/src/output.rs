//! Terminal output: colours (only on a terminal, never with NO_COLOR), tables that fit the
//! terminal width, and a spinner on stderr.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    Bold,
    Dim,
    Green,
    Yellow,
    Red,
    Cyan,
}

impl Style {
    fn code(self) -> &'static str {
        match self {
            Style::Bold => "1",
            Style::Dim => "2",
            Style::Green => "32",
            Style::Yellow => "33",
            Style::Red => "31",
            Style::Cyan => "36",
        }
    }
}

fn no_color() -> bool {
    std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty())
}

pub fn stdout_color() -> bool {
    std::io::stdout().is_terminal() && !no_color()
}

pub fn stderr_color() -> bool {
    std::io::stderr().is_terminal() && !no_color()
}

pub fn paint(enabled: bool, style: Style, text: &str) -> String {
    if enabled && !text.is_empty() {
        format!("\x1b[{}m{text}\x1b[0m", style.code())
    } else {
        text.to_string()
    }
}

/// Width to fit output into: the terminal's, else `$COLUMNS`, else unlimited (pipes).
pub fn width() -> Option<usize> {
    if std::io::stdout().is_terminal() {
        if let Some((terminal_size::Width(w), _)) = terminal_size::terminal_size() {
            return Some(usize::from(w).max(20));
        }
    }
    std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.parse::<usize>().ok())
        .filter(|w| *w >= 20)
}

fn len(s: &str) -> usize {
    s.chars().count()
}

/// Characters of `s` without ANSI colour sequences.
pub fn visible_len(s: &str) -> usize {
    let mut n = 0;
    let mut in_escape = false;
    for c in s.chars() {
        match (in_escape, c) {
            (false, '\x1b') => in_escape = true,
            (true, 'm') => in_escape = false,
            (true, _) => {}
            (false, _) => n += 1,
        }
    }
    n
}

/// Cuts `s` to `max` characters, ending with `…` when cut.
pub fn truncate(s: &str, max: usize) -> String {
    if len(s) <= max {
        return s.to_string();
    }
    if max == 0 {
        return String::new();
    }
    let mut out: String = s.chars().take(max - 1).collect();
    out.push('…');
    out
}

/// Greedy word wrap to `max` characters (long words are split).
pub fn wrap(s: &str, max: usize) -> Vec<String> {
    let max = max.max(8);
    let mut lines = Vec::new();
    for para in s.split('\n') {
        let mut line = String::new();
        for word in para.split(' ') {
            let mut word = word.to_string();
            while len(&word) > max {
                if !line.is_empty() {
                    lines.push(std::mem::take(&mut line));
                }
                let head: String = word.chars().take(max).collect();
                word = word.chars().skip(max).collect();
                lines.push(head);
            }
            if line.is_empty() {
                line = word;
            } else if len(&line) + 1 + len(&word) <= max {
                line.push(' ');
                line.push_str(&word);
            } else {
                lines.push(std::mem::replace(&mut line, word));
            }
        }
        lines.push(line);
    }
    lines
}

pub struct Cell {
    pub text: String,
    pub style: Option<Style>,
}

impl Cell {
    pub fn plain(text: impl Into<String>) -> Self {
        Self {
            text: text.into(),
            style: None,
        }
    }
    pub fn styled(text: impl Into<String>, style: Option<Style>) -> Self {
        Self {
            text: text.into(),
            style,
        }
    }
}

/// An aligned table. `shrinkable` columns (by index, first shrunk first) are truncated so a
/// row fits `width`.
pub fn table(
    headers: &[&str],
    rows: &[Vec<Cell>],
    shrinkable: &[usize],
    width: Option<usize>,
    color: bool,
) -> String {
    const GAP: usize = 2;
    let n = headers.len();
    let mut widths: Vec<usize> = headers.iter().map(|h| len(h)).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate().take(n) {
            widths[i] = widths[i].max(len(&c.text));
        }
    }
    if let Some(max) = width {
        let total = |w: &[usize]| w.iter().sum::<usize>() + GAP * (n.saturating_sub(1));
        for &col in shrinkable {
            let over = total(&widths).saturating_sub(max);
            if over == 0 {
                break;
            }
            let floor = len(headers[col]).max(8);
            widths[col] = widths[col].saturating_sub(over).max(floor);
        }
    }
    let mut out = String::new();
    let mut line = |cells: Vec<(String, Option<Style>)>| {
        let last = cells.len().saturating_sub(1);
        let mut s = String::new();
        for (i, (text, style)) in cells.into_iter().enumerate() {
            let t = truncate(&text, widths[i]);
            let pad = if i == last {
                0
            } else {
                widths[i] - len(&t) + GAP
            };
            let painted = match style {
                Some(st) => paint(color, st, &t),
                None => t,
            };
            s.push_str(&painted);
            s.push_str(&" ".repeat(pad));
        }
        out.push_str(s.trim_end());
        out.push('\n');
    };
    line(
        headers
            .iter()
            .map(|h| (h.to_string(), Some(Style::Bold)))
            .collect(),
    );
    for r in rows {
        line(r.iter().map(|c| (c.text.clone(), c.style)).collect());
    }
    out
}

/// A two-column "key: value" block, values wrapped to the width.
pub fn key_values(rows: &[(&str, Cell)], width: Option<usize>, color: bool) -> String {
    let kw = rows.iter().map(|(k, _)| len(k) + 1).max().unwrap_or(0);
    let vw = width.map(|w| w.saturating_sub(kw + 2).max(20));
    let mut out = String::new();
    for (k, v) in rows {
        let lines = match vw {
            Some(w) => wrap(&v.text, w),
            None => vec![v.text.clone()],
        };
        for (i, l) in lines.iter().enumerate() {
            let key = if i == 0 {
                format!("{k}:")
            } else {
                String::new()
            };
            let pad = " ".repeat(kw - len(&key) + 2);
            let value = match v.style {
                Some(st) => paint(color, st, l),
                None => l.clone(),
            };
            out.push_str(format!("{}{pad}{value}", paint(color, Style::Bold, &key)).trim_end());
            out.push('\n');
        }
    }
    out
}

/// Colour for a job status word.
pub fn status_style(short: &str) -> Option<Style> {
    let s = short.to_ascii_lowercase();
    if s.starts_with("running") || s.starts_with("succeeded") || s.starts_with("completed") {
        Some(Style::Green)
    } else if s.starts_with("failed") || s.contains("error") || s.contains("crash") {
        Some(Style::Red)
    } else if s.starts_with("pending") || s.starts_with("waiting") || s.starts_with("starting") {
        Some(Style::Yellow)
    } else {
        None
    }
}

/// A spinner with elapsed time and a status text on stderr; does nothing off a terminal.
pub struct Spinner {
    enabled: bool,
    start: Instant,
    frame: usize,
    what: String,
    drawn: bool,
}

const FRAMES: &[&str] = &["⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"];

impl Spinner {
    pub fn new(what: impl Into<String>) -> Self {
        Self {
            enabled: std::io::stderr().is_terminal(),
            start: Instant::now(),
            frame: 0,
            what: what.into(),
            drawn: false,
        }
    }

    pub fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }

    pub fn tick(&mut self, status: &str) {
        if !self.enabled {
            return;
        }
        let secs = self.start.elapsed().as_secs();
        let frame = FRAMES[self.frame % FRAMES.len()];
        self.frame += 1;
        let color = stderr_color();
        let text = format!(
            "{} {} {} {}",
            paint(color, Style::Cyan, frame),
            self.what,
            paint(color, Style::Dim, &format!("[{}]", elapsed_text(secs))),
            status
        );
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "\r\x1b[2K{text}");
        let _ = err.flush();
        self.drawn = true;
    }

    /// Clears the spinner line.
    pub fn clear(&mut self) {
        if self.enabled && self.drawn {
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "\r\x1b[2K");
            let _ = err.flush();
            self.drawn = false;
        }
    }
}

impl Drop for Spinner {
    fn drop(&mut self) {
        self.clear();
    }
}

pub fn elapsed_text(secs: u64) -> String {
    if secs < 60 {
        format!("{secs}s")
    } else {
        format!("{}m{:02}s", secs / 60, secs % 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_fit_the_width_by_cutting_the_named_column() {
        let rows = vec![vec![
            Cell::plain("job"),
            Cell::plain("a very long command that goes on and on and on"),
            Cell::plain("Running"),
        ]];
        let t = table(&["Name", "Command", "Status"], &rows, &[1], Some(40), false);
        for l in t.lines() {
            assert!(l.chars().count() <= 40, "{l:?}");
        }
        assert!(t.contains('…'));
        assert!(t.contains("Running"));
        let wide = table(&["Name", "Command", "Status"], &rows, &[1], None, false);
        assert!(wide.contains("and on and on"));
    }

    #[test]
    fn wrap_and_truncate() {
        assert_eq!(wrap("aaa bbb ccc", 8), vec!["aaa bbb", "ccc"]);
        assert_eq!(truncate("abcdef", 4), "abc…");
        assert_eq!(truncate("abc", 4), "abc");
        assert_eq!(paint(false, Style::Red, "x"), "x");
    }
}
