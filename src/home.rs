//! Reading inside a tool's home without acting as a confused deputy.
//!
//! The gateway can read every tool's home; a tool can only read its own. So every file the
//! gateway reads there for a tool (its credentials, its job logs) is opened:
//!
//! - relative to a directory handle of the home, with `openat2` and `RESOLVE_BENEATH`,
//!   `RESOLVE_NO_SYMLINKS` and `RESOLVE_NO_MAGICLINKS`: the kernel resolves the whole path in
//!   one go and refuses any symbolic link and any `..` that would climb out of the home,
//!   whatever the tool swaps meanwhile (no check-then-open race). The home's handle itself is
//!   opened the same way from a handle of the home root (trusted), so the home cannot be a link;
//! - then checked on the open handle: a regular file, owned by the owner of the home (the
//!   tool's uid), with one link. A hard link to another tool's file (or any hard link), a
//!   file of another uid, FIFOs, sockets and devices are refused: the gateway reads only the
//!   tool's own files, which the tool could read itself.
//!
//! There is no fallback: where `openat2` is missing (Linux before 5.6, or a seccomp filter
//! that hides it) reads of homes are refused ([`Problem::Unsupported`]).
//!
//! Errors name paths relative to the home (or as the tool configured them), never the
//! server's absolute paths. Everything here is blocking; callers run it on the bounded
//! blocking pool with a timeout (NFS can hang).

use std::fs::{File, Metadata};
use std::io;
use std::os::fd::{AsFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// What is wrong with a path in a tool's home.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// The file (or a directory on the way) does not exist.
    Missing,
    /// A symbolic link on the way, or a path that leads outside the home.
    Link,
    /// Not a regular file (a directory, FIFO, socket or device); for the home: not a directory.
    NotRegular,
    /// Owned by someone else than the owner of the home.
    NotOwned,
    /// More than one hard link.
    HardLinked,
    /// Permission denied.
    Unreadable,
    /// The kernel has no `openat2`: homes cannot be read safely.
    Unsupported,
    /// Another I/O error (its text names no path).
    Io(String),
}

/// A refused or failed read in a tool's home. `path` is relative to the home (or the path as
/// the tool configured it); `None` means the home itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HomeError {
    pub problem: Problem,
    pub path: Option<String>,
}

impl HomeError {
    fn file(problem: Problem, path: &Path) -> Self {
        Self {
            problem,
            path: Some(path.display().to_string()),
        }
    }

    fn home(problem: Problem) -> Self {
        Self {
            problem,
            path: None,
        }
    }

    /// The file (or the home) does not exist.
    pub fn is_missing(&self) -> bool {
        self.problem == Problem::Missing
    }

    /// A refusal (the tool's home is not as it must be), not a failure of the server.
    pub fn is_refusal(&self) -> bool {
        !matches!(self.problem, Problem::Io(_) | Problem::Unsupported)
    }
}

impl std::fmt::Display for HomeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.problem == Problem::Unsupported {
            return f.write_str(UNSUPPORTED);
        }
        let Some(p) = &self.path else {
            return match &self.problem {
                Problem::Missing => f.write_str("the tool's home does not exist"),
                Problem::Link => f.write_str("the tool's home is a link to somewhere else"),
                Problem::NotRegular => f.write_str("the tool's home is not a directory"),
                Problem::Unreadable => f.write_str("the tool's home is not readable"),
                Problem::Io(e) => write!(f, "the tool's home: {e}"),
                // not checked on the home
                Problem::NotOwned | Problem::HardLinked | Problem::Unsupported => {
                    f.write_str("the tool's home is not usable")
                }
            };
        };
        match &self.problem {
            Problem::Missing => write!(f, "{p} does not exist"),
            Problem::Link => write!(
                f,
                "{p} is reached through a symbolic link or leads outside the tool's home"
            ),
            Problem::NotRegular => write!(f, "{p} is not a regular file"),
            Problem::NotOwned => write!(
                f,
                "{p} is not owned by the tool (the owner of its home directory)"
            ),
            Problem::HardLinked => write!(f, "{p} has more than one hard link"),
            Problem::Unreadable => write!(f, "{p} is not readable"),
            Problem::Io(e) => write!(f, "{p}: {e}"),
            Problem::Unsupported => f.write_str(UNSUPPORTED),
        }
    }
}

impl std::error::Error for HomeError {}

const UNSUPPORTED: &str = "this server cannot read tools' home directories safely: openat2 is \
    not available to it (Linux 5.6 or later is needed, and a seccomp profile that allows it), so \
    reading them is refused";

/// An open handle of a tool's home directory, and its owner.
pub struct ToolHome {
    dir: OwnedFd,
    uid: u32,
    /// The home's path as the gateway names it, `<root>/<tool>`: absolute paths the tool
    /// configures are taken relative to it.
    path: PathBuf,
    root: PathBuf,
    tool: String,
}

/// A file opened in a tool's home that passed the checks, and its metadata (of the handle).
#[derive(Debug)]
pub struct HomeFile {
    pub file: File,
    pub meta: Metadata,
}

impl ToolHome {
    /// Opens `<root>/<tool>`: the root (trusted) by path, the home beneath it without
    /// following any link.
    pub fn open(root: &Path, tool: &str) -> Result<Self, HomeError> {
        if tool.is_empty() || tool == "." || tool == ".." || tool.contains(['/', '\0']) {
            return Err(HomeError::home(Problem::Missing));
        }
        let root_dir = open_root(root).map_err(|e| HomeError::home(problem_of(&e)))?;
        if !openat2_works(root_dir.as_fd()) {
            return Err(HomeError::home(Problem::Unsupported));
        }
        let dir = File::from(
            openat2(root_dir.as_fd(), Path::new(tool), libc::O_DIRECTORY)
                .map_err(|e| HomeError::home(problem_of(&e)))?,
        );
        let meta = dir
            .metadata()
            .map_err(|e| HomeError::home(io_problem(&e)))?;
        Ok(Self {
            dir: OwnedFd::from(dir),
            uid: meta.uid(),
            path: root.join(tool),
            root: root.to_path_buf(),
            tool: tool.to_string(),
        })
    }

    /// The owner of the home directory: the uid every file read in it must have.
    pub fn owner(&self) -> u32 {
        self.uid
    }

    /// A configured path as a path relative to the home: relative paths as they are,
    /// absolute ones only when under the home's path (`<root>/<tool>`, or the same with the
    /// root's links resolved); `None` for an absolute path elsewhere. Nothing is resolved
    /// here: [`Self::open_file`] confines what remains.
    pub fn relative(&self, configured: &str) -> Option<PathBuf> {
        let given = Path::new(configured);
        if !given.is_absolute() {
            return Some(given.to_path_buf());
        }
        let canonical = std::fs::canonicalize(&self.root)
            .ok()
            .map(|r| r.join(&self.tool));
        let rest = std::iter::once(self.path.clone())
            .chain(canonical)
            .find_map(|home| given.strip_prefix(&home).ok().map(Path::to_path_buf))?;
        if rest.as_os_str().is_empty() {
            return Some(PathBuf::from("."));
        }
        Some(rest)
    }

    /// Opens `rel` beneath the home for reading: no link followed, nothing outside the home
    /// reached; then a regular file, owned by the home's owner, with one link, or refused.
    pub fn open_file(&self, rel: &Path) -> Result<HomeFile, HomeError> {
        if rel.is_absolute() || rel.as_os_str().is_empty() {
            return Err(HomeError::file(Problem::Link, rel));
        }
        // O_NONBLOCK: opening a FIFO must not wait for a writer (it is refused just below);
        // regular files ignore it. O_NOCTTY: a terminal device never becomes ours.
        let fd = openat2(self.dir.as_fd(), rel, libc::O_NONBLOCK | libc::O_NOCTTY)
            .map_err(|e| HomeError::file(problem_of(&e), rel))?;
        let file = File::from(fd);
        let meta = file
            .metadata()
            .map_err(|e| HomeError::file(io_problem(&e), rel))?;
        if !meta.file_type().is_file() {
            return Err(HomeError::file(Problem::NotRegular, rel));
        }
        if meta.uid() != self.uid {
            return Err(HomeError::file(Problem::NotOwned, rel));
        }
        if meta.nlink() != 1 {
            return Err(HomeError::file(Problem::HardLinked, rel));
        }
        Ok(HomeFile { file, meta })
    }
}

fn open_root(root: &Path) -> io::Result<OwnedFd> {
    use std::os::unix::fs::OpenOptionsExt;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_CLOEXEC)
        .open(root)?;
    Ok(OwnedFd::from(f))
}

/// Whether `openat2` can be used at all: opening the root's own `.` beneath it cannot be
/// refused by permissions, so `ENOSYS` (old kernel) or `EPERM` (a seccomp filter that does not
/// know the call) there means it is missing. Found out once, and logged then.
fn openat2_works(root: BorrowedFd<'_>) -> bool {
    static WORKS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *WORKS.get_or_init(|| match openat2(root, Path::new("."), libc::O_DIRECTORY) {
        Err(e) if matches!(e.raw_os_error(), Some(libc::ENOSYS | libc::EPERM)) => {
            tracing::error!(
                "openat2 is not available ({e}): tools' homes will not be read (no file logs, no credentials); Linux 5.6 or later is needed"
            );
            false
        }
        _ => true,
    })
}

/// How often an `openat2` that the kernel asks to retry (`EAGAIN`: a rename raced with a
/// `..` lookup) or that a signal interrupted is tried again.
const RETRIES: usize = 16;

#[cfg(target_os = "linux")]
fn openat2(dir: BorrowedFd<'_>, path: &Path, extra_flags: libc::c_int) -> io::Result<OwnedFd> {
    use std::os::fd::AsRawFd;
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: open_how is plain old data (three integers); all zero is a valid value.
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = (libc::O_RDONLY | libc::O_CLOEXEC | extra_flags) as u64;
    how.mode = 0;
    how.resolve = libc::RESOLVE_BENEATH | libc::RESOLVE_NO_SYMLINKS | libc::RESOLVE_NO_MAGICLINKS;
    let mut last = io::Error::from_raw_os_error(libc::EAGAIN);
    for _ in 0..RETRIES {
        // SAFETY: the path is a NUL-terminated string and `how` a valid open_how, both alive
        // for the call, with its true size; the kernel only reads them.
        let fd = unsafe {
            libc::syscall(
                libc::SYS_openat2,
                dir.as_raw_fd(),
                c_path.as_ptr(),
                &how as *const libc::open_how,
                std::mem::size_of::<libc::open_how>(),
            )
        };
        if fd >= 0 {
            let Ok(fd) = libc::c_int::try_from(fd) else {
                return Err(io::Error::other(
                    "openat2 returned an impossible descriptor",
                ));
            };
            // SAFETY: the kernel just returned this descriptor to us; nothing else owns it.
            return Ok(unsafe { OwnedFd::from_raw_fd(fd) });
        }
        last = io::Error::last_os_error();
        if !matches!(last.raw_os_error(), Some(libc::EAGAIN | libc::EINTR)) {
            break;
        }
    }
    Err(last)
}

#[cfg(not(target_os = "linux"))]
fn openat2(_dir: BorrowedFd<'_>, _path: &Path, _extra_flags: libc::c_int) -> io::Result<OwnedFd> {
    Err(io::Error::from_raw_os_error(libc::ENOSYS))
}

/// The problem an `openat2` error means.
fn problem_of(e: &io::Error) -> Problem {
    match e.raw_os_error() {
        Some(libc::ENOENT | libc::ENOTDIR) => Problem::Missing,
        // ELOOP: a symbolic link (RESOLVE_NO_SYMLINKS); EXDEV: out of the home
        // (RESOLVE_BENEATH), or through a magic link
        Some(libc::ELOOP | libc::EXDEV) => Problem::Link,
        // sockets and device nodes without a driver cannot even be opened
        Some(libc::ENXIO | libc::ENODEV | libc::EOPNOTSUPP) => Problem::NotRegular,
        Some(libc::EACCES | libc::EPERM) => Problem::Unreadable,
        // no such system call (old kernel, or hidden by a seccomp filter)
        Some(libc::ENOSYS) => Problem::Unsupported,
        _ => io_problem(e),
    }
}

fn io_problem(e: &io::Error) -> Problem {
    if e.kind() == io::ErrorKind::PermissionDenied {
        return Problem::Unreadable;
    }
    // the text of an OS error names no path
    Problem::Io(e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn read(f: HomeFile) -> String {
        let mut s = String::new();
        let mut file = f.file;
        file.read_to_string(&mut s)
            .unwrap_or_else(|e| panic!("{e}"));
        s
    }

    fn setup() -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let root = dir.path().join("project");
        for tool in ["alice", "bob"] {
            std::fs::create_dir_all(root.join(tool).join("logs")).unwrap_or_else(|e| panic!("{e}"));
        }
        std::fs::write(root.join("alice/logs/job.out"), "mine\n").unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(root.join("bob/secret.txt"), "bob's secret\n")
            .unwrap_or_else(|e| panic!("{e}"));
        (dir, root)
    }

    fn problem(r: Result<HomeFile, HomeError>) -> Problem {
        match r {
            Ok(_) => panic!("opened"),
            Err(e) => e.problem,
        }
    }

    #[test]
    fn opens_files_beneath_the_home() {
        let (_dir, root) = setup();
        let home = ToolHome::open(&root, "alice").unwrap_or_else(|e| panic!("{e}"));
        let f = home
            .open_file(Path::new("logs/job.out"))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(read(f), "mine\n");
        // `..` that stays inside is fine
        let f = home
            .open_file(Path::new("logs/../logs/./job.out"))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(read(f), "mine\n");
        let abs = root.join("alice/logs/job.out");
        let rel = home
            .relative(&abs.display().to_string())
            .unwrap_or_else(|| panic!("not in the home"));
        assert_eq!(rel, Path::new("logs/job.out"));
        assert_eq!(
            read(home.open_file(&rel).unwrap_or_else(|e| panic!("{e}"))),
            "mine\n"
        );
        assert_eq!(
            home.relative(&root.join("alice").display().to_string()),
            Some(PathBuf::from("."))
        );
        assert!(home
            .open_file(Path::new("nothing"))
            .is_err_and(|e| e.is_missing()));
        assert!(home
            .open_file(Path::new("logs/job.out/x"))
            .is_err_and(|e| e.is_missing()));
    }

    #[test]
    fn refuses_links_escapes_and_odd_files() {
        let (_dir, root) = setup();
        let alice = root.join("alice");
        let secret = root.join("bob/secret.txt");
        std::os::unix::fs::symlink(&secret, alice.join("sym.out"))
            .unwrap_or_else(|e| panic!("{e}"));
        std::os::unix::fs::symlink(root.join("bob"), alice.join("bobdir"))
            .unwrap_or_else(|e| panic!("{e}"));
        std::os::unix::fs::symlink("logs/job.out", alice.join("alias.out"))
            .unwrap_or_else(|e| panic!("{e}"));
        std::fs::hard_link(&secret, alice.join("hard.out")).unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(alice.join("twice.out"), "x\n").unwrap_or_else(|e| panic!("{e}"));
        std::fs::hard_link(alice.join("twice.out"), alice.join("twice2.out"))
            .unwrap_or_else(|e| panic!("{e}"));
        let fifo = std::ffi::CString::new(alice.join("fifo.out").as_os_str().as_bytes())
            .unwrap_or_else(|e| panic!("{e}"));
        // SAFETY: a valid NUL-terminated path
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o644) }, 0);

        let home = ToolHome::open(&root, "alice").unwrap_or_else(|e| panic!("{e}"));
        for (path, want) in [
            ("sym.out", Problem::Link),
            ("bobdir/secret.txt", Problem::Link),
            // even a link that stays inside the home
            ("alias.out", Problem::Link),
            ("../bob/secret.txt", Problem::Link),
            ("logs/../../bob/secret.txt", Problem::Link),
            ("hard.out", Problem::HardLinked),
            ("twice.out", Problem::HardLinked),
            // opened without blocking, then refused
            ("fifo.out", Problem::NotRegular),
            ("logs", Problem::NotRegular),
            (".", Problem::NotRegular),
        ] {
            assert_eq!(problem(home.open_file(Path::new(path))), want, "{path}");
        }
        assert_eq!(home.relative(&secret.display().to_string()), None);
        assert_eq!(home.relative("/etc/passwd"), None);
        // lexically under the home, but climbing out of it
        let climb = home
            .relative(&format!("{}/../bob/secret.txt", alice.display()))
            .unwrap_or_else(|| panic!("not in the home"));
        assert_eq!(problem(home.open_file(&climb)), Problem::Link);
        assert_eq!(
            problem(home.open_file(Path::new("/etc/passwd"))),
            Problem::Link
        );
        // the messages name the path relative to the home, never the server's
        let e = home
            .open_file(Path::new("hard.out"))
            .err()
            .unwrap_or_else(|| panic!("opened"));
        assert_eq!(e.to_string(), "hard.out has more than one hard link");
        let root_text = root.display().to_string();
        for path in ["sym.out", "bobdir/secret.txt", "fifo.out", "nothing"] {
            let e = home
                .open_file(Path::new(path))
                .err()
                .unwrap_or_else(|| panic!("opened"));
            assert!(!e.to_string().contains(&root_text), "{e}");
        }
    }

    #[test]
    fn the_home_itself_must_not_be_a_link() {
        let (_dir, root) = setup();
        std::os::unix::fs::symlink(root.join("bob"), root.join("mallory"))
            .unwrap_or_else(|e| panic!("{e}"));
        let e = ToolHome::open(&root, "mallory")
            .err()
            .unwrap_or_else(|| panic!("opened"));
        assert_eq!(e.to_string(), "the tool's home is a link to somewhere else");
        for tool in ["", ".", "..", "a/b", "nobody"] {
            assert!(
                ToolHome::open(&root, tool).is_err_and(|e| e.is_missing()),
                "{tool}"
            );
        }
        std::fs::write(root.join("file"), "").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            ToolHome::open(&root, "file").err().map(|e| e.problem),
            Some(Problem::Missing)
        );
    }

    #[test]
    fn files_of_another_owner_are_refused() {
        // the unit tests may not run as root; only then can a file be given to another uid
        // SAFETY: geteuid has no preconditions
        if unsafe { libc::geteuid() } != 0 {
            return;
        }
        let (_dir, root) = setup();
        let p = root.join("alice/other.out");
        std::fs::write(&p, "not alice's\n").unwrap_or_else(|e| panic!("{e}"));
        std::os::unix::fs::chown(&p, Some(4242), None).unwrap_or_else(|e| panic!("{e}"));
        let home = ToolHome::open(&root, "alice").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            problem(home.open_file(Path::new("other.out"))),
            Problem::NotOwned
        );
        // a device node (/dev/zero's numbers) is opened without effect, then refused
        let dev = std::ffi::CString::new(root.join("alice/zero.out").as_os_str().as_bytes())
            .unwrap_or_else(|e| panic!("{e}"));
        // SAFETY: a valid NUL-terminated path
        let made = unsafe { libc::mknod(dev.as_ptr(), libc::S_IFCHR | 0o644, libc::makedev(1, 5)) };
        assert_eq!(made, 0, "{}", io::Error::last_os_error());
        assert_eq!(
            problem(home.open_file(Path::new("zero.out"))),
            Problem::NotRegular
        );
    }
}
