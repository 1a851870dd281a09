//! File logs: reading the end of a job's `filelog` files from the tool's home, and following
//! them as they grow.
//!
//! Files are opened in the tool's home with [`crate::home`] (never by path with the gateway's
//! own rights) and read from the checked handle. Everything here is blocking; the caller runs
//! it on a blocking pool with a timeout. Reads are bounded: [`tail`] reads backwards in chunks
//! and never more than about `n` capped lines' worth of bytes, [`read_since`] at most
//! `max_bytes` per call. Lines are cut as [`jobs_core::logs::line_text`] says.

use std::fs::File;
use std::io::{self, ErrorKind, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use jobs_core::logs::{line_text, CUT_MARK, MAX_LINE_BYTES};

use crate::home::{HomeError, HomeFile, ToolHome};

/// Backwards read size for [`tail`].
const CHUNK: usize = 64 * 1024;
/// Hard cap of one [`read_since`] call, whatever `max_bytes` says.
const MAX_READ_SINCE: u64 = 16 * 1024 * 1024;

/// Where a configured log path (relative to the home, or absolute under the home's path) is
/// in the tool's home, as a path relative to it; `Err(message)` when it cannot be there.
/// `what` names the file in messages (`"stdout"`): an absolute path elsewhere is the server's
/// or another tool's, never echoed.
pub fn in_home(home: &ToolHome, what: &str, configured: &str) -> Result<PathBuf, String> {
    if configured.trim().is_empty() {
        return Err(format!("The {what} log file path is empty"));
    }
    if configured.contains('\0') {
        return Err(format!("The {what} log file path is not valid"));
    }
    home.relative(configured)
        .ok_or_else(|| format!("The {what} log file is outside the tool's home directory"))
}

/// Opens a log file in the tool's home (see [`crate::home`]: beneath the home, no link
/// followed, a regular file of the home's owner with one link). A missing file is `Ok(None)`.
pub fn open(home: &ToolHome, rel: &Path) -> Result<Option<HomeFile>, HomeError> {
    match home.open_file(rel) {
        Ok(f) => Ok(Some(f)),
        Err(e) if e.is_missing() => Ok(None),
        Err(e) => Err(e),
    }
}

/// Reads `len` bytes at `offset`, fewer if the file ends first.
fn read_at(mut file: &File, offset: u64, len: usize) -> io::Result<Vec<u8>> {
    file.seek(SeekFrom::Start(offset))?;
    let mut buf = Vec::with_capacity(len);
    file.take(len as u64).read_to_end(&mut buf)?;
    Ok(buf)
}

/// The last `n` lines of a file (oldest first) and the file length, the offset to follow
/// from. Reads backwards in chunks, at most about `n * MAX_LINE_BYTES` bytes; when lines are
/// so long that this budget runs out first, the oldest line returned is the end of a line
/// whose start was not reached, marked with a leading [`CUT_MARK`].
pub fn tail(log: &HomeFile, n: usize) -> io::Result<(Vec<String>, u64)> {
    let file = &log.file;
    let len = log.meta.len();
    if n == 0 || len == 0 {
        return Ok((Vec::new(), len));
    }
    let budget = (n as u64)
        .saturating_mul(MAX_LINE_BYTES as u64 + 2)
        .saturating_add(CHUNK as u64);
    let floor = len.saturating_sub(budget);

    // Line ranges [start, end), newest first; `end` excludes the newline.
    let mut ranges: Vec<(u64, u64)> = Vec::new();
    let mut pos = len; // bytes before `pos` are not scanned yet
    let mut line_end = len;
    let mut first_chunk = true;
    let mut reached_start = false;
    while ranges.len() < n {
        if pos <= floor {
            break;
        }
        let start = pos.saturating_sub(CHUNK as u64).max(floor);
        let want = (pos - start) as usize;
        let chunk = read_at(file, start, want)?;
        if chunk.len() != want {
            return Err(io::Error::new(
                ErrorKind::UnexpectedEof,
                "log file shrank while reading",
            ));
        }
        let mut scan = &chunk[..];
        if first_chunk {
            first_chunk = false;
            // A final newline ends the last line; it does not start an empty one.
            if let Some(rest) = scan.strip_suffix(b"\n") {
                scan = rest;
                line_end = len - 1;
            }
        }
        while let Some(i) = scan.iter().rposition(|&b| b == b'\n') {
            let nl = start + i as u64;
            ranges.push((nl + 1, line_end));
            line_end = nl;
            scan = &scan[..i];
            if ranges.len() == n {
                break;
            }
        }
        pos = start;
        if pos == 0 {
            reached_start = true;
        }
    }

    let mut lines = Vec::with_capacity(ranges.len() + 1);
    let mut oldest_cut = false;
    if ranges.len() < n {
        if reached_start {
            ranges.push((0, line_end));
        } else if line_end > floor {
            // Budget exhausted inside a very long line: keep its end.
            ranges.push((
                line_end.saturating_sub(MAX_LINE_BYTES as u64).max(floor),
                line_end,
            ));
            oldest_cut = true;
        }
    }
    for (i, &(start, end)) in ranges.iter().rev().enumerate() {
        let want = ((end - start) as usize).min(MAX_LINE_BYTES + 1);
        let bytes = read_at(file, start, want)?;
        let mut text = line_text(&bytes);
        if (end - start) as usize > bytes.len() && !text.ends_with(CUT_MARK) {
            // The line is longer than what was read (file shrank): mark it anyway.
            text.push_str(CUT_MARK);
        }
        if i == 0 && oldest_cut {
            text.insert_str(0, CUT_MARK);
        }
        lines.push(text);
    }
    Ok((lines, len))
}

/// Complete lines appended since `offset` (at most `max_bytes` read per call) and the new
/// offset, which only moves past complete lines. A file shorter than `offset` was truncated
/// or replaced: reading restarts from 0. A line longer than `max_bytes` cannot complete in
/// one read; it is then returned in `max_bytes` pieces (each cut) so following never stalls.
pub fn read_since(log: &HomeFile, offset: u64, max_bytes: u64) -> io::Result<(Vec<String>, u64)> {
    let file = &log.file;
    let len = log.meta.len();
    let offset = if len < offset { 0 } else { offset };
    let want = (len - offset).min(max_bytes).min(MAX_READ_SINCE);
    if want == 0 {
        return Ok((Vec::new(), offset));
    }
    let buf = read_at(file, offset, want as usize)?;
    let complete = match buf.iter().rposition(|&b| b == b'\n') {
        Some(i) => &buf[..=i],
        None if buf.len() as u64 == want && want == max_bytes.min(MAX_READ_SINCE) => {
            // No newline in a full read: a line longer than a read; hand out this piece.
            let mut text = line_text(&buf);
            if !text.ends_with(CUT_MARK) {
                text.push_str(CUT_MARK);
            }
            return Ok((vec![text], offset + buf.len() as u64));
        }
        None => return Ok((Vec::new(), offset)),
    };
    let lines = complete
        .split(|&b| b == b'\n')
        .take(complete.iter().filter(|&&b| b == b'\n').count())
        .map(line_text)
        .collect();
    Ok((lines, offset + complete.len() as u64))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::time::Instant;

    fn write(dir: &Path, name: &str, content: &[u8]) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, content).unwrap();
        p
    }

    /// Opens a file of a temporary directory as a log file of a home (the directory).
    fn opened(p: &Path) -> HomeFile {
        let (Some(home), Some(name)) = (p.parent(), p.file_name()) else {
            panic!("{}", p.display())
        };
        let (Some(root), Some(tool)) = (home.parent(), home.file_name().and_then(|t| t.to_str()))
        else {
            panic!("{}", p.display())
        };
        let home = ToolHome::open(root, tool).unwrap_or_else(|e| panic!("{e}"));
        open(&home, Path::new(name))
            .unwrap_or_else(|e| panic!("{e}"))
            .unwrap_or_else(|| panic!("{} is missing", p.display()))
    }

    fn append(p: &Path, content: &[u8]) {
        let mut f = std::fs::OpenOptions::new().append(true).open(p).unwrap();
        f.write_all(content).unwrap();
    }

    #[test]
    fn tail_big_file_is_exact_and_fast() {
        let dir = tempfile::tempdir().unwrap();
        let mut content = String::new();
        for i in 0..200_000 {
            content.push_str(&format!("line number {i}\n"));
        }
        let p = write(dir.path(), "big.log", content.as_bytes());
        let t = Instant::now();
        let (lines, len) = tail(&opened(&p), 5).unwrap();
        assert!(t.elapsed().as_millis() < 500);
        assert_eq!(len, content.len() as u64);
        assert_eq!(
            lines,
            (199_995..200_000)
                .map(|i| format!("line number {i}"))
                .collect::<Vec<_>>()
        );
        let (lines, _) = tail(&opened(&p), 5000).unwrap();
        assert_eq!(lines.len(), 5000);
        assert_eq!(lines[0], "line number 195000");
        assert_eq!(lines[4999], "line number 199999");
    }

    #[test]
    fn tail_small_cases() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(dir.path(), "a", b"one\ntwo\nthree");
        assert_eq!(
            tail(&opened(&p), 2).unwrap(),
            (vec!["two".into(), "three".into()], 13)
        );
        assert_eq!(
            tail(&opened(&p), 10).unwrap().0,
            vec!["one", "two", "three"]
        );
        assert_eq!(tail(&opened(&p), 0).unwrap(), (vec![], 13));

        let p = write(dir.path(), "crlf", b"one\r\ntwo\r\n");
        assert_eq!(tail(&opened(&p), 10).unwrap().0, vec!["one", "two"]);

        let p = write(dir.path(), "empty", b"");
        assert_eq!(tail(&opened(&p), 10).unwrap(), (vec![], 0));

        let p = write(dir.path(), "nl", b"\n");
        assert_eq!(tail(&opened(&p), 10).unwrap().0, vec![""]);

        let p = write(dir.path(), "blank", b"a\n\n\nb\n");
        assert_eq!(tail(&opened(&p), 3).unwrap().0, vec!["", "", "b"]);

        let p = write(dir.path(), "utf8", b"caf\xc3\xa9\nbad \xff\n");
        assert_eq!(
            tail(&opened(&p), 10).unwrap().0,
            vec!["café", "bad \u{fffd}"]
        );
    }

    #[test]
    fn tail_lines_across_chunk_boundaries() {
        let dir = tempfile::tempdir().unwrap();
        // Lines of varying length so newlines fall on and around chunk edges.
        let lines: Vec<String> = (0..3000)
            .map(|i| "x".repeat(i % 97) + &i.to_string())
            .collect();
        let mut content = lines.join("\n");
        content.push('\n');
        let p = write(dir.path(), "f", content.as_bytes());
        let (got, _) = tail(&opened(&p), 2500).unwrap();
        assert_eq!(got, lines[500..].to_vec());
        let (got, _) = tail(&opened(&p), 5000).unwrap();
        assert_eq!(got, lines);
    }

    #[test]
    fn tail_caps_long_lines() {
        let dir = tempfile::tempdir().unwrap();
        let long = "é".repeat(20_000); // 40 000 bytes
        let content = format!("first\n{long}\nlast\n");
        let p = write(dir.path(), "long", content.as_bytes());
        let (got, _) = tail(&opened(&p), 3).unwrap();
        assert_eq!(got.len(), 3);
        assert_eq!(got[0], "first");
        assert!(got[1].ends_with(CUT_MARK));
        assert_eq!(got[1].len(), MAX_LINE_BYTES + CUT_MARK.len());
        assert!(got[1].trim_end_matches(CUT_MARK).chars().all(|c| c == 'é'));
        assert_eq!(got[2], "last");
    }

    #[test]
    fn tail_giant_single_line_is_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let mut content = vec![b'a'; 4 * 1024 * 1024];
        content.extend_from_slice(b"\nend\n");
        let p = write(dir.path(), "giant", &content);
        let (got, _) = tail(&opened(&p), 2).unwrap();
        assert_eq!(got.len(), 2);
        assert!(got[0].starts_with(CUT_MARK));
        assert!(got[0].len() <= MAX_LINE_BYTES + 2 * CUT_MARK.len());
        assert_eq!(got[1], "end");
    }

    fn tool_home(dir: &Path) -> ToolHome {
        let (Some(root), Some(tool)) = (dir.parent(), dir.file_name().and_then(|t| t.to_str()))
        else {
            panic!("{}", dir.display())
        };
        ToolHome::open(root, tool).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn opens_only_regular_files_in_the_home() {
        let dir = tempfile::tempdir().unwrap();
        let home = tool_home(dir.path());
        std::fs::create_dir(dir.path().join("logs")).unwrap();
        write(dir.path(), "logs/job.out", b"x\n");
        let err = open(&home, Path::new("logs")).unwrap_err();
        assert_eq!(err.problem, crate::home::Problem::NotRegular);
        assert!(open(&home, Path::new("missing")).unwrap().is_none());
        assert!(open(&home, Path::new("logs/job.out/x")).unwrap().is_none());
        let f = open(&home, Path::new("logs/job.out")).unwrap().unwrap();
        assert_eq!(tail(&f, 10).unwrap(), (vec!["x".to_string()], 2));
        // a link is refused, even one to a file in the home
        std::os::unix::fs::symlink("logs/job.out", dir.path().join("alias.out")).unwrap();
        let err = open(&home, Path::new("alias.out")).unwrap_err();
        assert_eq!(err.problem, crate::home::Problem::Link);
    }

    #[test]
    fn configured_paths_in_the_home() {
        let dir = tempfile::tempdir().unwrap();
        let home = tool_home(dir.path());
        assert_eq!(
            in_home(&home, "stdout", "logs/job.out"),
            Ok(PathBuf::from("logs/job.out"))
        );
        let abs = dir.path().join("logs/job.out");
        assert_eq!(
            in_home(&home, "stdout", &abs.display().to_string()),
            Ok(PathBuf::from("logs/job.out"))
        );
        assert!(in_home(&home, "stdout", "").is_err());
        assert!(in_home(&home, "stdout", "a\0b").is_err());
        let outside = in_home(&home, "stderr", "/etc/passwd").unwrap_err();
        assert_eq!(
            outside,
            "The stderr log file is outside the tool's home directory"
        );
        // a sibling directory sharing the home's name as a prefix is outside
        let sibling = format!("{}-other/x.out", dir.path().display());
        assert!(in_home(&home, "stdout", &sibling).is_err());
    }

    #[test]
    fn read_since_follows_complete_lines() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(dir.path(), "f", b"old\n");
        let (_, off) = tail(&opened(&p), 10).unwrap();
        assert_eq!(off, 4);
        assert_eq!(read_since(&opened(&p), off, 1024).unwrap(), (vec![], 4));

        append(&p, b"new 1\nnew 2\r\npart");
        let (got, off) = read_since(&opened(&p), off, 1024).unwrap();
        assert_eq!(got, vec!["new 1", "new 2"]);
        assert_eq!(off, 4 + 6 + 7);
        // The partial line is not returned until completed.
        assert_eq!(read_since(&opened(&p), off, 1024).unwrap(), (vec![], off));
        append(&p, b"ial\n");
        let (got, off2) = read_since(&opened(&p), off, 1024).unwrap();
        assert_eq!(got, vec!["partial"]);
        assert_eq!(off2, off + 8);
    }

    #[test]
    fn read_since_respects_max_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(dir.path(), "f", b"aaaa\nbbbb\ncccc\n");
        let (got, off) = read_since(&opened(&p), 0, 12).unwrap();
        assert_eq!(got, vec!["aaaa", "bbbb"]);
        assert_eq!(off, 10);
        let (got, off) = read_since(&opened(&p), off, 12).unwrap();
        assert_eq!(got, vec!["cccc"]);
        assert_eq!(off, 15);
        // A line longer than max_bytes is handed out in pieces instead of stalling.
        let p = write(dir.path(), "g", b"0123456789\n");
        let (got, off) = read_since(&opened(&p), 0, 4).unwrap();
        assert_eq!((got, off), (vec![format!("0123{CUT_MARK}")], 4));
        assert_eq!(read_since(&opened(&p), 0, 0).unwrap(), (vec![], 0));
    }

    #[test]
    fn read_since_restarts_after_truncation() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(dir.path(), "f", b"line one\nline two\n");
        let (_, off) = tail(&opened(&p), 1).unwrap();
        assert_eq!(off, 18);
        std::fs::write(&p, b"fresh\n").unwrap(); // truncated / rotated
        let (got, off) = read_since(&opened(&p), off, 1024).unwrap();
        assert_eq!(got, vec!["fresh"]);
        assert_eq!(off, 6);
    }
}
