//! Runs the `toolforge-jobs` binary as a tool would: a home with the minted kubeconfig, the
//! gateway URL in env `TOOL_TOOLFORGE_API_URL`, the cluster CA in `REQUESTS_CA_BUNDLE`.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use crate::common::{provision, Gateway, Pki};

/// The `toolforge-jobs` binary of the workspace's CLI package. It is another package's
/// binary, so cargo does not build it for these tests: `tests/run.sh` runs
/// `cargo build --workspace --bins` first (by hand: `cargo build -p toolforge-jobs`). It sits
/// beside the gateway binary, in the same profile directory.
pub fn cli() -> &'static str {
    static PATH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    PATH.get_or_init(|| {
        let gateway = Path::new(env!("CARGO_BIN_EXE_jobs-gateway"));
        let cli = gateway.with_file_name("toolforge-jobs");
        assert!(
            cli.is_file(),
            "{} is missing: build it first with `cargo build -p toolforge-jobs`",
            cli.display()
        );
        cli.display().to_string()
    })
}

/// One tool, provisioned, with a running gateway and a home for the CLI.
pub struct Tool {
    pub name: String,
    pub pki: Pki,
    pub gw: Gateway,
    pub home: PathBuf,
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {}\n--- stdout\n{}--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

fn run_of(out: Output) -> Run {
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

impl Tool {
    pub fn new(name: &str) -> Self {
        let cluster = crate::common::cluster();
        let pki = Pki::new(&cluster);
        provision(&pki, name);
        let gw = Gateway::start(&pki, &[]);
        let home = pki.dir.path().join(format!("clihome-{name}"));
        std::fs::create_dir_all(&home).unwrap_or_else(|e| panic!("{e}"));
        Self {
            name: name.to_string(),
            pki,
            gw,
            home,
        }
    }

    pub fn kubeconfig(&self) -> PathBuf {
        self.pki.home_root.join(&self.name).join(".kube/config")
    }

    pub fn api_url(&self) -> String {
        self.gw.direct_url("")
    }

    /// The environment a tool account has: nothing from the test runner leaks in.
    pub fn env(&self, cmd: &mut Command) {
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", &self.home)
            .env("KUBECONFIG", self.kubeconfig())
            .env("TOOL_TOOLFORGE_API_URL", self.api_url())
            .env("REQUESTS_CA_BUNDLE", &self.pki.cluster.ca)
            .env("TERM", "xterm");
    }

    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(cli());
        self.env(&mut cmd);
        cmd.args(args).stdin(Stdio::null());
        cmd
    }

    pub fn run(&self, args: &[&str]) -> Run {
        run_of(
            self.cmd(args)
                .output()
                .unwrap_or_else(|e| panic!("starting {}: {e}", cli())),
        )
    }

    /// Runs and asserts the exit code.
    pub fn expect(&self, code: i32, args: &[&str]) -> Run {
        let r = self.run(args);
        assert_eq!(r.code, code, "toolforge-jobs {args:?}: {r}");
        r
    }

    pub fn ok(&self, args: &[&str]) -> Run {
        self.expect(0, args)
    }

    /// Runs the CLI inside a pseudo-terminal (`script`), `stdin` fed to it.
    pub fn in_terminal(&self, args: &[&str], stdin: &str) -> Run {
        let line = std::iter::once(cli())
            .chain(args.iter().copied())
            .map(shell_quote)
            .collect::<Vec<_>>()
            .join(" ");
        let mut cmd = Command::new("script");
        self.env(&mut cmd);
        cmd.env("SHELL", "/bin/sh")
            .args(["-qec", &line, "/dev/null"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("starting script(1): {e}"));
        if let Some(mut input) = child.stdin.take() {
            use std::io::Write;
            // give the program time to print its prompt before the answer arrives
            std::thread::sleep(std::time::Duration::from_millis(1500));
            let _ = input.write_all(stdin.as_bytes());
        }
        run_of(
            child
                .wait_with_output()
                .unwrap_or_else(|e| panic!("script(1): {e}")),
        )
    }

    pub fn write(&self, file: &str, text: &str) -> PathBuf {
        let p = self.home.join(file);
        std::fs::write(&p, text).unwrap_or_else(|e| panic!("{e}"));
        p
    }

    pub fn names(&self) -> Vec<String> {
        let r = self.ok(&["list", "-o", "name"]);
        r.stdout.lines().map(str::to_string).collect()
    }
}

pub fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

pub fn path_str(p: &Path) -> &str {
    p.to_str().unwrap_or_else(|| panic!("non-UTF-8 path {p:?}"))
}
