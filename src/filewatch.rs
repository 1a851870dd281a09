//! Files the gateway re-reads while it runs: the serving TLS set, the image list, the quota file.
//!
//! A [`Source`] names a set of files and how to make a value of their contents. Loading it
//! ([`Source::load`]) reads and parses them once, synchronously: at start-up a missing or broken
//! file is an error. The [`FileWatch`] it gives then re-reads the set every period on the
//! blocking pool, off the request path:
//!
//! - changes are noticed by content (a SHA-256 of the bytes read), not by mtime: a Kubernetes
//!   secret or ConfigMap update swaps a symlink and keeps the old files' mtimes, and a
//!   second-granular mtime misses two writes within a second. Only that hash is kept, never the
//!   bytes, which are zeroed after parsing (one of the files may be a private key);
//! - content seen before (what is served, or what was refused) is not parsed again;
//! - a new content that does not parse keeps the previous value and is reported once; a file
//!   that cannot be read is reported once per distinct error;
//! - a read that outlives its time limit (a hung network filesystem, a FIFO without a writer)
//!   is reported once and left to finish: no second read starts while it is outstanding, and
//!   when it ends what it found is taken and the files are read afresh;
//! - readers take the current value from a [`Current`] without any I/O.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use secrecy::zeroize::Zeroize;
use sha2::{Digest, Sha256};
use tokio::sync::watch;

/// Largest file read; the real ones are a few KiB. Bounds what a wrong path (`/dev/zero`)
/// could make the gateway allocate.
const MAX_FILE_LEN: u64 = 16 * 1024 * 1024;

/// Time limit of a read when none is set: the period, and at least this.
const MIN_READ_TIMEOUT: Duration = Duration::from_secs(5);

/// How many refused contents are remembered (not parsed or reported again).
const REFUSED_KEPT: usize = 8;

/// What a set of files held, by content.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Fingerprint([u8; 32]);

fn fingerprint(contents: &[Vec<u8>]) -> Fingerprint {
    let mut h = Sha256::new();
    for c in contents {
        h.update((c.len() as u64).to_le_bytes());
        h.update(c);
    }
    Fingerprint(h.finalize().into())
}

/// The bytes read from a set of files; zeroed when dropped.
struct Contents(Vec<Vec<u8>>);

impl Drop for Contents {
    fn drop(&mut self) {
        for c in &mut self.0 {
            c.zeroize();
        }
    }
}

/// Reads one file, at most [`MAX_FILE_LEN`] bytes, into one allocation (no copies left behind
/// by a growing buffer).
fn read_file(path: &Path) -> std::io::Result<Vec<u8>> {
    let file = std::fs::File::open(path)?;
    let hint = file
        .metadata()
        .map(|m| m.len())
        .unwrap_or(0)
        .min(MAX_FILE_LEN);
    let mut buf = Vec::with_capacity(usize::try_from(hint).unwrap_or(0).saturating_add(1));
    let read = file.take(MAX_FILE_LEN + 1).read_to_end(&mut buf);
    if let Err(e) = read {
        buf.zeroize();
        return Err(e);
    }
    if buf.len() as u64 > MAX_FILE_LEN {
        buf.zeroize();
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("larger than {} MiB", MAX_FILE_LEN / (1024 * 1024)),
        ));
    }
    Ok(buf)
}

/// How a read error is told: names the file, never its content.
pub type ReadError = fn(&Path, &std::io::Error) -> String;

/// The default [`ReadError`]: `reading PATH: ERROR`.
pub fn reading(path: &Path, e: &std::io::Error) -> String {
    format!("reading {}: {e}", path.display())
}

fn read_all(paths: &[PathBuf], describe: ReadError) -> Result<Contents, String> {
    let mut contents = Contents(Vec::with_capacity(paths.len()));
    for path in paths {
        contents
            .0
            .push(read_file(path).map_err(|e| describe(path, &e))?);
    }
    Ok(contents)
}

type Parse<T> = dyn Fn(&[Vec<u8>]) -> Result<T, String> + Send + Sync;

/// A set of files and what to make of them, in the order of the paths.
pub struct Source<T> {
    what: &'static str,
    paths: Vec<PathBuf>,
    parse: Box<Parse<T>>,
    period: Duration,
    read_timeout: Option<Duration>,
    read_error: ReadError,
}

impl<T: Send + Sync + 'static> Source<T> {
    /// `what` names the value in logs ("image list": "image list reloaded", "...; keeping the
    /// previous image list"). `parse` gets the files' contents in the order of `paths`; its
    /// error must name the problem, never quote the content.
    pub fn new(
        what: &'static str,
        paths: Vec<PathBuf>,
        parse: impl Fn(&[Vec<u8>]) -> Result<T, String> + Send + Sync + 'static,
    ) -> Self {
        Self {
            what,
            paths,
            parse: Box::new(parse),
            period: Duration::ZERO,
            read_timeout: None,
            read_error: reading,
        }
    }

    /// How often the files are read again once watched (zero, the default: never).
    pub fn every(mut self, period: Duration) -> Self {
        self.period = period;
        self
    }

    /// Longest a re-read may take before it counts as hung (default: the period, at least 5 s).
    pub fn read_timeout(mut self, limit: Duration) -> Self {
        self.read_timeout = Some(limit);
        self
    }

    /// How a file that cannot be read is told (default: [`reading`]).
    pub fn read_error(mut self, describe: ReadError) -> Self {
        self.read_error = describe;
        self
    }

    /// Reads and parses the files now (on this thread): the first load, an error stops start-up.
    pub fn load(self) -> Result<FileWatch<T>, String> {
        let contents = read_all(&self.paths, self.read_error)?;
        self.load_contents(contents)
    }

    /// Like [`Self::load`], with the files' contents already read (in the order of the paths);
    /// the bytes are zeroed once parsed.
    pub fn load_from(self, contents: Vec<Vec<u8>>) -> Result<FileWatch<T>, String> {
        self.load_contents(Contents(contents))
    }

    fn load_contents(self, contents: Contents) -> Result<FileWatch<T>, String> {
        if contents.0.len() != self.paths.len() {
            return Err(format!(
                "{}: {} contents for {} files",
                self.what,
                contents.0.len(),
                self.paths.len()
            ));
        }
        let served = fingerprint(&contents.0);
        let value = (self.parse)(&contents.0)?;
        drop(contents);
        let what = self.what;
        let single = match self.paths.as_slice() {
            [one] => Some(one.display().to_string()),
            _ => None,
        };
        Ok(FileWatch {
            tx: watch::Sender::new(Arc::new(value)),
            served,
            stats: Arc::new(Stats::default()),
            on_change: Box::new(move |_| match &single {
                Some(file) => tracing::info!(%file, "{what} reloaded"),
                None => tracing::info!("{what} reloaded"),
            }),
            on_problem: Box::new(move |problem| {
                tracing::warn!("{problem}; keeping the previous {what}")
            }),
            source: Arc::new(self),
        })
    }
}

/// What a watcher did, for tests and metrics.
#[derive(Debug, Default)]
pub struct Stats {
    reads: AtomicU64,
    reading: AtomicUsize,
    most_reading: AtomicUsize,
    parses: AtomicU64,
    changes: AtomicU64,
    problems: AtomicU64,
    hangs: AtomicU64,
}

impl Stats {
    /// Re-reads started.
    pub fn reads(&self) -> u64 {
        self.reads.load(Ordering::Relaxed)
    }

    /// Most re-reads that were outstanding at one time (1 once anything was read).
    pub fn most_at_once(&self) -> usize {
        self.most_reading.load(Ordering::Relaxed)
    }

    /// New contents parsed (not counting the first load).
    pub fn parses(&self) -> u64 {
        self.parses.load(Ordering::Relaxed)
    }

    /// New values taken.
    pub fn changes(&self) -> u64 {
        self.changes.load(Ordering::Relaxed)
    }

    /// Problems reported (each distinct one once).
    pub fn problems(&self) -> u64 {
        self.problems.load(Ordering::Relaxed)
    }

    /// Re-reads that outlived their time limit.
    pub fn hangs(&self) -> u64 {
        self.hangs.load(Ordering::Relaxed)
    }
}

/// Counts a read as outstanding for as long as it lives.
struct Reading<'a>(&'a Stats);

impl<'a> Reading<'a> {
    fn start(stats: &'a Stats) -> Self {
        stats.reads.fetch_add(1, Ordering::Relaxed);
        let now = stats.reading.fetch_add(1, Ordering::SeqCst) + 1;
        stats.most_reading.fetch_max(now, Ordering::SeqCst);
        Self(stats)
    }
}

impl Drop for Reading<'_> {
    fn drop(&mut self) {
        self.0.reading.fetch_sub(1, Ordering::SeqCst);
    }
}

/// What one re-read found.
enum Outcome<T> {
    /// A file could not be read.
    Unreadable(String),
    /// Content seen before (served, or refused): not parsed again.
    Known(Fingerprint),
    /// New content, and what parsing made of it.
    Parsed(Fingerprint, Result<T, String>),
}

fn reread<T>(source: &Source<T>, known: &[Fingerprint], stats: &Stats) -> Outcome<T> {
    let _reading = Reading::start(stats);
    let contents = match read_all(&source.paths, source.read_error) {
        Ok(c) => c,
        Err(e) => return Outcome::Unreadable(e),
    };
    let print = fingerprint(&contents.0);
    if known.contains(&print) {
        return Outcome::Known(print);
    }
    stats.parses.fetch_add(1, Ordering::Relaxed);
    Outcome::Parsed(print, (source.parse)(&contents.0))
}

/// A problem as reported, so that the same one is not reported again.
#[derive(PartialEq, Eq)]
enum Problem {
    /// New content that did not parse.
    Content(Fingerprint),
    /// A file could not be read: the error.
    Unreadable(String),
    /// A read outlived its time limit.
    Hung,
    /// The reading task failed (a panic).
    Failed(String),
}

type OnChange<T> = Box<dyn Fn(&T) + Send + Sync>;
type OnProblem = Box<dyn Fn(&str) + Send + Sync>;

/// Loaded files, their current value, and (once spawned) the task that re-reads them.
pub struct FileWatch<T> {
    source: Arc<Source<T>>,
    tx: watch::Sender<Arc<T>>,
    served: Fingerprint,
    stats: Arc<Stats>,
    on_change: OnChange<T>,
    on_problem: OnProblem,
}

impl<T: Send + Sync + 'static> FileWatch<T> {
    /// A handle on the current value, for readers.
    pub fn current(&self) -> Current<T> {
        Current(self.tx.subscribe())
    }

    pub fn stats(&self) -> Arc<Stats> {
        self.stats.clone()
    }

    /// Called with a new value before readers see it (default: logs "WHAT reloaded").
    pub fn on_change(mut self, f: impl Fn(&T) + Send + Sync + 'static) -> Self {
        self.on_change = Box::new(f);
        self
    }

    /// Called once per distinct problem, with its text (default: logs "PROBLEM; keeping the
    /// previous WHAT").
    pub fn on_problem(mut self, f: impl Fn(&str) + Send + Sync + 'static) -> Self {
        self.on_problem = Box::new(f);
        self
    }

    /// Starts re-reading the files every period on the current Tokio runtime; `None` (and
    /// nothing started) when the period is zero.
    pub fn spawn(self) -> Option<tokio::task::JoinHandle<()>> {
        if self.source.period.is_zero() {
            return None;
        }
        Some(tokio::spawn(self.run()))
    }

    async fn run(self) {
        let source = self.source.clone();
        let limit = source
            .read_timeout
            .unwrap_or(source.period.max(MIN_READ_TIMEOUT));
        let files = source
            .paths
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ");
        let mut state = State {
            served: self.served,
            refused: Vec::new(),
            reported: None,
            watch: self,
        };
        let mut pending: Option<tokio::task::JoinHandle<Outcome<T>>> = None;
        let mut tick = tokio::time::interval(source.period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tick.tick().await;
            if let Some(read) = pending.take() {
                if !read.is_finished() {
                    pending = Some(read);
                    continue;
                }
                // a read that hung has ended: what it found counts, then a fresh look
                state.settle(read.await);
            }
            let mut read = {
                let source = source.clone();
                let stats = state.watch.stats.clone();
                let mut known = state.refused.clone();
                known.push(state.served);
                tokio::task::spawn_blocking(move || reread(&source, &known, &stats))
            };
            match tokio::time::timeout(limit, &mut read).await {
                Ok(outcome) => state.settle(outcome),
                Err(_) => {
                    state.watch.stats.hangs.fetch_add(1, Ordering::Relaxed);
                    state.report(
                        Problem::Hung,
                        &format!("reading {files} took over {}", duration_text(limit)),
                    );
                    pending = Some(read);
                }
            }
        }
    }
}

/// `10 s`, or `200 ms` for a limit that is not whole seconds.
fn duration_text(d: Duration) -> String {
    if d.subsec_nanos() == 0 && !d.is_zero() {
        format!("{} s", d.as_secs())
    } else {
        format!("{} ms", d.as_millis())
    }
}

/// A watcher's memory: only fingerprints and problem texts, never contents.
struct State<T> {
    served: Fingerprint,
    refused: Vec<Fingerprint>,
    reported: Option<Problem>,
    watch: FileWatch<T>,
}

impl<T> State<T> {
    fn report(&mut self, problem: Problem, text: &str) {
        if self.reported.as_ref() != Some(&problem) {
            (self.watch.on_problem)(text);
            self.watch.stats.problems.fetch_add(1, Ordering::Relaxed);
            self.reported = Some(problem);
        }
    }

    fn settle(&mut self, outcome: Result<Outcome<T>, tokio::task::JoinError>) {
        match outcome {
            Err(e) => self.report(
                Problem::Failed(e.to_string()),
                &format!("the reading task failed: {e}"),
            ),
            Ok(Outcome::Unreadable(e)) => self.report(Problem::Unreadable(e.clone()), &e),
            Ok(Outcome::Known(print)) => {
                if print == self.served {
                    // back to (or still) what is served: a later problem is news again
                    self.reported = None;
                }
            }
            Ok(Outcome::Parsed(print, Err(e))) => {
                if self.refused.len() >= REFUSED_KEPT {
                    self.refused.remove(0);
                }
                self.refused.push(print);
                self.report(Problem::Content(print), &e);
            }
            Ok(Outcome::Parsed(print, Ok(value))) => {
                (self.watch.on_change)(&value);
                self.watch.tx.send_replace(Arc::new(value));
                self.watch.stats.changes.fetch_add(1, Ordering::Relaxed);
                self.served = print;
                self.refused.clear();
                self.reported = None;
            }
        }
    }
}

/// The current value of watched files (or a fixed one), for readers: no I/O, no waiting on a
/// read.
pub struct Current<T>(watch::Receiver<Arc<T>>);

impl<T> Clone for Current<T> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

impl<T> Current<T> {
    /// A value that never changes (no file configured).
    pub fn fixed(value: T) -> Self {
        Self(watch::Sender::new(Arc::new(value)).subscribe())
    }

    pub fn get(&self) -> Arc<T> {
        self.0.borrow().clone()
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::OpenOptionsExt;
    use std::sync::Mutex;
    use std::time::{Instant, SystemTime};

    use super::*;

    const PERIOD: Duration = Duration::from_millis(10);
    const READ_LIMIT: Duration = Duration::from_millis(100);

    /// A file of text; empty or `broken...` does not parse.
    fn text_file(path: &Path) -> Source<String> {
        Source::new("test file", vec![path.to_path_buf()], |files| {
            let bytes = files.first().ok_or("no file")?;
            let text = std::str::from_utf8(bytes).map_err(|_| "not UTF-8".to_string())?;
            if text.is_empty() || text.starts_with("broken") {
                return Err(format!("unusable ({} bytes)", text.len()));
            }
            Ok(text.to_string())
        })
        .every(PERIOD)
        .read_timeout(READ_LIMIT)
    }

    /// Loads, records the problems reported, starts watching.
    fn watch(source: Source<String>) -> (Current<String>, Arc<Stats>, Arc<Mutex<Vec<String>>>) {
        let problems = Arc::new(Mutex::new(Vec::new()));
        let seen = problems.clone();
        let watch = source
            .load()
            .unwrap_or_else(|e| panic!("{e}"))
            .on_problem(move |p| {
                seen.lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(p.into())
            });
        let (current, stats) = (watch.current(), watch.stats());
        assert!(watch.spawn().is_some());
        (current, stats, problems)
    }

    fn reported(problems: &Mutex<Vec<String>>) -> Vec<String> {
        problems.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Replaces `path` in one step (write beside, rename), as a ConfigMap update does, so that
    /// no read sees it half-written; with `mtime`, the new file carries that mtime.
    fn put(path: &Path, text: &str, mtime: Option<SystemTime>) {
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, text).unwrap_or_else(|e| panic!("{e}"));
        if let Some(t) = mtime {
            std::fs::File::options()
                .write(true)
                .open(&tmp)
                .and_then(|f| f.set_modified(t))
                .unwrap_or_else(|e| panic!("{e}"));
        }
        std::fs::rename(&tmp, path).unwrap_or_else(|e| panic!("{e}"));
    }

    fn mtime(path: &Path) -> SystemTime {
        std::fs::metadata(path)
            .and_then(|m| m.modified())
            .unwrap_or_else(|e| panic!("{e}"))
    }

    async fn eventually(what: &str, mut done: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while !done() {
            assert!(Instant::now() < deadline, "not within 5 s: {what}");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Waits until the watcher has started `n` more reads than it had.
    async fn reads_more(stats: &Stats, n: u64) {
        let want = stats.reads() + n;
        eventually("the watcher reads again", || stats.reads() >= want).await;
    }

    #[tokio::test]
    async fn a_change_of_content_with_an_unchanged_mtime_is_seen() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("list");
        put(&path, "one", None);
        let (current, stats, problems) = watch(text_file(&path));
        assert_eq!(*current.get(), "one");
        let before = mtime(&path);
        put(&path, "two", Some(before));
        assert_eq!(mtime(&path), before);
        eventually("the new content", || *current.get() == "two").await;
        assert_eq!(stats.changes(), 1);
        assert_eq!(reported(&problems), Vec::<String>::new());
    }

    #[tokio::test]
    async fn a_configmap_symlink_swap_keeping_old_mtimes_is_seen() {
        // what the kubelet does: PATH -> ..data/PATH, ..data -> a timestamped directory, and an
        // update points ..data at a new directory in one rename
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let version = |name: &str, text: &str, t: Option<SystemTime>| {
            let d = dir.path().join(name);
            std::fs::create_dir(&d).unwrap_or_else(|e| panic!("{e}"));
            put(&d.join("list"), text, t);
            mtime(&d.join("list"))
        };
        let t = version("v1", "one", None);
        let link = |target: &str| {
            let tmp = dir.path().join("..data_tmp");
            std::os::unix::fs::symlink(target, &tmp).unwrap_or_else(|e| panic!("{e}"));
            std::fs::rename(&tmp, dir.path().join("..data")).unwrap_or_else(|e| panic!("{e}"));
        };
        link("v1");
        let path = dir.path().join("list");
        std::os::unix::fs::symlink("..data/list", &path).unwrap_or_else(|e| panic!("{e}"));
        let (current, _, _) = watch(text_file(&path));
        version("v2", "two", Some(t));
        link("v2");
        assert_eq!(mtime(&path), t);
        eventually("the swapped content", || *current.get() == "two").await;
    }

    #[tokio::test]
    async fn an_unchanged_rewrite_is_not_parsed_again() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("list");
        put(&path, "one", None);
        let (current, stats, problems) = watch(text_file(&path));
        reads_more(&stats, 2).await;
        put(
            &path,
            "one",
            Some(SystemTime::now() + Duration::from_secs(5)),
        );
        reads_more(&stats, 5).await;
        assert_eq!(stats.parses(), 0, "the same bytes are not parsed again");
        assert_eq!(stats.changes(), 0);
        assert_eq!(*current.get(), "one");
        assert_eq!(reported(&problems), Vec::<String>::new());
    }

    #[tokio::test]
    async fn a_broken_file_keeps_the_previous_value_and_is_reported_once() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("list");
        put(&path, "one", None);
        let (current, stats, problems) = watch(text_file(&path));
        put(&path, "broken", None);
        eventually("the broken file reported", || stats.problems() == 1).await;
        reads_more(&stats, 5).await;
        assert_eq!(*current.get(), "one");
        assert_eq!(reported(&problems), ["unusable (6 bytes)"]);
        assert_eq!(stats.parses(), 1, "a refused content is not parsed again");
        // another broken content is news, and so is a missing file
        put(&path, "broken again", None);
        eventually("the second broken file", || stats.problems() == 2).await;
        std::fs::remove_file(&path).unwrap_or_else(|e| panic!("{e}"));
        eventually("the missing file", || stats.problems() == 3).await;
        reads_more(&stats, 5).await;
        let problems_now = reported(&problems);
        assert_eq!(problems_now.len(), 3, "{problems_now:?}");
        assert!(
            problems_now[2].starts_with(&format!("reading {}: ", path.display())),
            "{problems_now:?}"
        );
        assert_eq!(*current.get(), "one");
        put(&path, "fixed", None);
        eventually("the fixed file", || *current.get() == "fixed").await;
        assert_eq!(stats.problems(), 3);
    }

    #[test]
    fn the_first_load_fails_on_a_missing_or_broken_file() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("list");
        let missing = text_file(&path).load().err().unwrap_or_default();
        assert!(
            missing.starts_with(&format!("reading {}: No such file", path.display())),
            "{missing}"
        );
        let told = text_file(&path)
            .read_error(|p, e| format!("the list {}: {e}", p.display()))
            .load()
            .err()
            .unwrap_or_default();
        assert!(told.starts_with("the list "), "{told}");
        put(&path, "broken", None);
        assert_eq!(
            text_file(&path).load().err().as_deref(),
            Some("unusable (6 bytes)")
        );
    }

    fn mkfifo(path: &Path) {
        use std::os::unix::ffi::OsStrExt;
        let c =
            std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap_or_else(|e| panic!("{e}"));
        // SAFETY: a valid NUL-terminated path
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    }

    /// Another name of a FIFO that a read hangs on; opening it for writing (and closing) lets
    /// that read end. Done on drop too, so that no test leaves a blocking thread behind (the
    /// runtime waits for those).
    struct Hang(PathBuf);

    impl Hang {
        /// Puts a FIFO without a writer at `path`, in one step.
        fn at(path: &Path) -> Self {
            let fifo = path.with_extension("fifo");
            mkfifo(&fifo);
            let held = path.with_extension("held");
            std::fs::hard_link(&fifo, &held).unwrap_or_else(|e| panic!("{e}"));
            std::fs::rename(&fifo, path).unwrap_or_else(|e| panic!("{e}"));
            Self(held)
        }

        fn end(&self) -> bool {
            std::fs::File::options()
                .write(true)
                .custom_flags(libc::O_NONBLOCK)
                .open(&self.0)
                .is_ok()
        }
    }

    impl Drop for Hang {
        fn drop(&mut self) {
            self.end();
        }
    }

    #[tokio::test]
    async fn a_hung_read_is_reported_once_not_repeated_and_the_watcher_goes_on_after_it() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("list");
        put(&path, "one", None);
        let sibling = dir.path().join("other");
        put(&sibling, "a", None);
        let (current, stats, problems) = watch(text_file(&path));
        let (other, _, _) = watch(text_file(&sibling));

        let hang = Hang::at(&path);
        eventually("the hang noticed", || stats.hangs() == 1).await;
        let reads = stats.reads();
        // many periods and read limits later: still that one read, reported once
        tokio::time::sleep(READ_LIMIT * 4).await;
        assert_eq!(stats.reads(), reads, "no second read while one hangs");
        assert_eq!(stats.hangs(), 1);
        assert_eq!(stats.most_at_once(), 1);
        assert_eq!(
            reported(&problems),
            [format!("reading {} took over 100 ms", path.display())]
        );
        assert_eq!(*current.get(), "one", "the last good value stays");
        // another watcher is not held up
        put(&sibling, "b", None);
        eventually("the sibling's change", || *other.get() == "b").await;

        // the file is fixed while the read still hangs; when it ends, the fix is taken
        put(&path, "two", None);
        tokio::time::sleep(READ_LIMIT).await;
        assert_eq!(*current.get(), "one");
        assert!(hang.end(), "the hung read was waiting on the FIFO");
        eventually("the fixed file", || *current.get() == "two").await;
        assert_eq!(stats.most_at_once(), 1, "never two reads at once");
        assert_eq!(stats.hangs(), 1);
        // what the hung read got at last (nothing: the writer closed at once) was refused
        assert_eq!(
            reported(&problems)[1..],
            [String::from("unusable (0 bytes)")]
        );
    }

    #[tokio::test]
    async fn readers_do_not_wait_for_a_hung_read() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("list");
        put(&path, "one", None);
        let (current, stats, _) = watch(text_file(&path));
        let _hang = Hang::at(&path);
        eventually("the hang noticed", || stats.hangs() == 1).await;
        // on a thread of its own, so that a reader that blocked would fail the test, not hang it
        let (tx, rx) = std::sync::mpsc::channel();
        let reader = current.clone();
        std::thread::spawn(move || {
            let started = Instant::now();
            for _ in 0..10_000 {
                assert_eq!(*reader.get(), "one");
            }
            let _ = tx.send(started.elapsed());
        });
        let took = rx
            .recv_timeout(Duration::from_secs(2))
            .unwrap_or_else(|e| panic!("a reader waited: {e}"));
        assert!(took < Duration::from_secs(1), "{took:?}");
    }

    #[test]
    fn a_fixed_value_is_current() {
        let c = Current::fixed(7u32);
        assert_eq!(*c.clone().get(), 7);
    }
}
