//! Container command generation (OLD v2 format) and read-back of every historic format
//! (spec §3.3).

use std::collections::BTreeMap;

/// Root of the tools' home directories (`/data/project/<tool>` is the working directory).
pub const DEFAULT_HOME_ROOT: &str = "/data/project";

/// The shell wrapper put in front of the user command on standard images.
const SHELL_WRAPPER: [&str; 3] = ["/bin/sh", "-c", "--"];

const LABEL_FILELOG: &str = "jobs.toolforge.org/filelog";
const LABEL_VERSION: &str = "app.kubernetes.io/version";
const LABEL_NEW_FORMAT: &str = "jobs.toolforge.org/command-new-format";

const STDOUT_PREFIX: &str = "exec 1>>";
const STDERR_PREFIX: &str = "exec 2>>";

/// Build the container command for a standard (shell-wrapped) image, OLD v2 format.
///
/// With `filelog`, output is appended to `stdout`/`stderr`, defaulting to `<job>.out` and
/// `<job>.err` relative to the working directory. Paths are pasted in unquoted, like OLD.
/// Without `filelog` the paths are ignored and output goes to the container log.
pub fn wrap_command(
    user_cmd: &str,
    job_name: &str,
    filelog: bool,
    stdout: Option<&str>,
    stderr: Option<&str>,
) -> Vec<String> {
    let script = if filelog {
        let out = stdout.map_or_else(|| format!("{job_name}.out"), str::to_string);
        let err = stderr.map_or_else(|| format!("{job_name}.err"), str::to_string);
        format!("{STDOUT_PREFIX}{out};{STDERR_PREFIX}{err};{user_cmd}")
    } else {
        user_cmd.to_string()
    };
    SHELL_WRAPPER
        .iter()
        .map(|part| (*part).to_string())
        .chain(std::iter::once(script))
        .collect()
}

/// The user command and file-log paths recovered from a Kubernetes container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedCommand {
    /// The user's command (`"unknown"` when nothing could be recovered).
    pub cmd: String,
    /// Where stdout is appended, as found in the command (may be `/dev/null` for v1 objects).
    pub filelog_stdout: Option<String>,
    /// Where stderr is appended, as found in the command (may be `/dev/null` for v1 objects).
    pub filelog_stderr: Option<String>,
}

/// Recover the user command from a container's `command`/`args` (OLD `Command.from_k8s`).
///
/// `labels` are the object's metadata labels; the filelog, version and command-new-format
/// labels decide which historic format is expected.
pub fn parse_command(
    command: &[String],
    args: &[String],
    labels: &BTreeMap<String, String>,
) -> ParsedCommand {
    let filelog = labels.get(LABEL_FILELOG).is_some_and(|v| v == "yes");
    let version = labels
        .get(LABEL_VERSION)
        .and_then(|v| v.trim().parse::<i64>().ok())
        .unwrap_or(1);
    let is_v1 = version == 1;
    let new_format = match labels.get(LABEL_NEW_FORMAT) {
        Some(value) => value == "yes",
        None => !is_v1,
    };

    let mut parsed = if new_format && (filelog || is_v1) {
        parse_exec_prefixed(last_or_empty(command))
    } else if new_format {
        ParsedCommand {
            cmd: parse_plain(command, args),
            filelog_stdout: None,
            filelog_stderr: None,
        }
    } else {
        parse_old_array(last_or_empty(command))
    };
    if parsed.cmd.is_empty() {
        parsed.cmd = "unknown".to_string();
    }
    parsed
}

fn last_or_empty(command: &[String]) -> &str {
    command.last().map_or("", String::as_str)
}

/// `exec 1>>X;exec 2>>Y;<cmd>`: split on `;`, the rest is re-joined with `;`.
fn parse_exec_prefixed(script: &str) -> ParsedCommand {
    let mut parts = script.split(';');
    let stdout = parts.next().map(|p| strip(p, STDOUT_PREFIX));
    let stderr = parts.next().map(|p| strip(p, STDERR_PREFIX));
    let cmd = parts.collect::<Vec<_>>().join(";");
    ParsedCommand {
        cmd,
        filelog_stdout: stdout,
        filelog_stderr: stderr,
    }
}

fn strip(part: &str, prefix: &str) -> String {
    part.strip_prefix(prefix).unwrap_or(part).to_string()
}

/// v2 without file logs: the wrapped string, or a shell-quoted join of command + args.
fn parse_plain(command: &[String], args: &[String]) -> String {
    if args.is_empty() && command.len() == SHELL_WRAPPER.len() + 1 {
        let is_wrapper = command
            .iter()
            .zip(SHELL_WRAPPER.iter())
            .all(|(have, want)| have == want);
        if is_wrapper {
            return command[SHELL_WRAPPER.len()].clone();
        }
    }
    command
        .iter()
        .chain(args.iter())
        .map(|word| shell_quote(word))
        .collect::<Vec<_>>()
        .join(" ")
}

/// v1 "old array": `<cmd> 1>>J.out 2>>J.err` (or `/dev/null` targets, with `>` or `>>`).
/// The user command is everything before the last ` 1>`.
fn parse_old_array(script: &str) -> ParsedCommand {
    let Some(index) = script.rfind(" 1>") else {
        return ParsedCommand {
            cmd: script.to_string(),
            filelog_stdout: None,
            filelog_stderr: None,
        };
    };
    let cmd = script[..index].to_string();
    let redirects = &script[index + " 1>".len()..];
    let (out, err) = match redirects.split_once(" 2>") {
        Some((out, err)) => (out, Some(err)),
        None => (redirects, None),
    };
    let target = |text: &str| text.trim_start_matches('>').trim().to_string();
    ParsedCommand {
        cmd,
        filelog_stdout: Some(target(out)),
        filelog_stderr: err.map(target),
    }
}

/// Python `shlex.quote`.
fn shell_quote(word: &str) -> String {
    if word.is_empty() {
        return "''".to_string();
    }
    let safe = word
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "_@%+=:,./-".contains(c));
    if safe {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', "'\"'\"'"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
            .collect()
    }

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| (*s).to_string()).collect()
    }

    fn wrapper(script: &str) -> Vec<String> {
        strings(&["/bin/sh", "-c", "--", script])
    }

    fn parsed(cmd: &str, out: Option<&str>, err: Option<&str>) -> ParsedCommand {
        ParsedCommand {
            cmd: cmd.to_string(),
            filelog_stdout: out.map(str::to_string),
            filelog_stderr: err.map(str::to_string),
        }
    }

    const V2: (&str, &str) = ("app.kubernetes.io/version", "2");
    const V1: (&str, &str) = ("app.kubernetes.io/version", "1");
    const FILELOG: (&str, &str) = ("jobs.toolforge.org/filelog", "yes");
    const NEW_FORMAT: (&str, &str) = ("jobs.toolforge.org/command-new-format", "yes");

    #[test]
    fn wrap_without_filelog() {
        assert_eq!(
            wrap_command("./run.sh --x", "myjob", false, Some("a"), Some("b")),
            wrapper("./run.sh --x")
        );
    }

    #[test]
    fn wrap_with_default_paths() {
        assert_eq!(
            wrap_command("./run.sh", "myjob", true, None, None),
            wrapper("exec 1>>myjob.out;exec 2>>myjob.err;./run.sh")
        );
    }

    #[test]
    fn wrap_with_custom_paths() {
        assert_eq!(
            wrap_command("./run.sh", "myjob", true, Some("/tmp/o.log"), None),
            wrapper("exec 1>>/tmp/o.log;exec 2>>myjob.err;./run.sh")
        );
        assert_eq!(
            wrap_command("./run.sh", "myjob", true, None, Some("logs/e.log")),
            wrapper("exec 1>>myjob.out;exec 2>>logs/e.log;./run.sh")
        );
    }

    #[test]
    fn round_trip_v2_filelog_default() {
        let command = wrap_command("./run.sh", "myjob", true, None, None);
        assert_eq!(
            parse_command(&command, &[], &labels(&[V2, FILELOG])),
            parsed("./run.sh", Some("myjob.out"), Some("myjob.err"))
        );
    }

    #[test]
    fn round_trip_v2_no_filelog() {
        let command = wrap_command("./run.sh a b", "myjob", false, None, None);
        assert_eq!(
            parse_command(&command, &[], &labels(&[V2])),
            parsed("./run.sh a b", None, None)
        );
    }

    #[test]
    fn round_trip_v2_custom_paths() {
        let command = wrap_command("./run.sh", "j", true, Some("/data/o"), Some("rel/e"));
        assert_eq!(
            parse_command(&command, &[], &labels(&[V2, FILELOG])),
            parsed("./run.sh", Some("/data/o"), Some("rel/e"))
        );
        let command = wrap_command("./run.sh", "j", true, Some("custom.out"), None);
        assert_eq!(
            parse_command(&command, &[], &labels(&[V2, FILELOG])),
            parsed("./run.sh", Some("custom.out"), Some("j.err"))
        );
    }

    #[test]
    fn round_trip_v2_same_path_for_both() {
        let command = wrap_command("./run.sh", "j", true, Some("both.log"), Some("both.log"));
        assert_eq!(
            command[3],
            "exec 1>>both.log;exec 2>>both.log;./run.sh".to_string()
        );
        assert_eq!(
            parse_command(&command, &[], &labels(&[V2, FILELOG])),
            parsed("./run.sh", Some("both.log"), Some("both.log"))
        );
    }

    #[test]
    fn round_trip_v2_command_with_semicolons_and_redirects() {
        let user = "cd x; ./a.sh 1>&2; echo done 1>>extra.log";
        let command = wrap_command(user, "j", true, None, None);
        assert_eq!(
            parse_command(&command, &[], &labels(&[V2, FILELOG])),
            parsed(user, Some("j.out"), Some("j.err"))
        );
        let command = wrap_command(user, "j", false, None, None);
        assert_eq!(
            parse_command(&command, &[], &labels(&[V2])),
            parsed(user, None, None)
        );
    }

    #[test]
    fn v2_buildpack_is_shell_joined() {
        let command = strings(&["my-proc"]);
        let args = strings(&["--flag", "two words", "it's", ""]);
        assert_eq!(
            parse_command(&command, &args, &labels(&[V2])),
            parsed("my-proc --flag 'two words' 'it'\"'\"'s' ''", None, None)
        );
    }

    #[test]
    fn v1_old_array_with_filelog() {
        let command = wrapper("./run.sh --arg 1>>myjob.out 2>>myjob.err");
        assert_eq!(
            parse_command(&command, &[], &labels(&[V1, FILELOG])),
            parsed("./run.sh --arg", Some("myjob.out"), Some("myjob.err"))
        );
        // No version label at all means v1.
        assert_eq!(
            parse_command(&command, &[], &labels(&[FILELOG])),
            parsed("./run.sh --arg", Some("myjob.out"), Some("myjob.err"))
        );
    }

    #[test]
    fn v1_old_array_dev_null_variants() {
        for script in [
            "./run.sh 1>/dev/null 2>/dev/null",
            "./run.sh 1>>/dev/null 2>>/dev/null",
        ] {
            assert_eq!(
                parse_command(&wrapper(script), &[], &labels(&[V1])),
                parsed("./run.sh", Some("/dev/null"), Some("/dev/null")),
                "{script}"
            );
        }
    }

    #[test]
    fn v1_old_array_command_containing_redirect() {
        let command = wrapper("echo err 1>&2; ./b.sh 1>>j.out 2>>j.err");
        assert_eq!(
            parse_command(&command, &[], &labels(&[FILELOG])),
            parsed("echo err 1>&2; ./b.sh", Some("j.out"), Some("j.err"))
        );
        let command = wrapper("a; b 1>/dev/null 2>/dev/null");
        assert_eq!(
            parse_command(&command, &[], &labels(&[])),
            parsed("a; b", Some("/dev/null"), Some("/dev/null"))
        );
    }

    #[test]
    fn v1_old_array_without_redirects() {
        assert_eq!(
            parse_command(&wrapper("./run.sh"), &[], &labels(&[])),
            parsed("./run.sh", None, None)
        );
    }

    #[test]
    fn v1_new_format_with_and_without_filelog() {
        let command = wrapper("exec 1>>j.out;exec 2>>j.err;./run.sh; echo x");
        assert_eq!(
            parse_command(&command, &[], &labels(&[V1, FILELOG, NEW_FORMAT])),
            parsed("./run.sh; echo x", Some("j.out"), Some("j.err"))
        );
        let command = wrapper("exec 1>>/dev/null;exec 2>>/dev/null;./run.sh 1>&2");
        assert_eq!(
            parse_command(&command, &[], &labels(&[NEW_FORMAT])),
            parsed("./run.sh 1>&2", Some("/dev/null"), Some("/dev/null"))
        );
    }

    #[test]
    fn v2_with_explicit_old_format_label() {
        let command = wrapper("./run.sh 1>>j.out 2>>j.err");
        let labels = labels(&[V2, FILELOG, ("jobs.toolforge.org/command-new-format", "no")]);
        assert_eq!(
            parse_command(&command, &[], &labels),
            parsed("./run.sh", Some("j.out"), Some("j.err"))
        );
    }

    #[test]
    fn empty_becomes_unknown() {
        assert_eq!(
            parse_command(&[], &[], &labels(&[])),
            parsed("unknown", None, None)
        );
        assert_eq!(
            parse_command(&wrapper(""), &[], &labels(&[V2])),
            parsed("unknown", None, None)
        );
        assert_eq!(
            parse_command(
                &wrapper("exec 1>>a;exec 2>>b;"),
                &[],
                &labels(&[V2, FILELOG])
            ),
            parsed("unknown", Some("a"), Some("b"))
        );
    }

    #[test]
    fn garbage_version_label_is_v1() {
        let command = wrapper("./x 1>>j.out 2>>j.err");
        assert_eq!(
            parse_command(
                &command,
                &[],
                &labels(&[("app.kubernetes.io/version", "abc")])
            ),
            parsed("./x", Some("j.out"), Some("j.err"))
        );
    }

    #[test]
    fn generated_command_runs_in_sh() {
        let dir = std::env::temp_dir().join(format!("jobs-cmd-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let user = "echo out; echo err 1>&2";
        for _ in 0..2 {
            let argv = wrap_command(user, "myjob", true, None, None);
            let status = std::process::Command::new(&argv[0])
                .args(&argv[1..])
                .current_dir(&dir)
                .status()
                .unwrap();
            assert!(status.success());
        }
        let out = std::fs::read_to_string(dir.join("myjob.out")).unwrap();
        let err = std::fs::read_to_string(dir.join("myjob.err")).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        // Appended, not truncated.
        assert_eq!(out, "out\nout\n");
        assert_eq!(err, "err\nerr\n");
    }

    #[test]
    fn shell_quote_matches_python() {
        assert_eq!(shell_quote("abc-1.2/x:y=z@%+,"), "abc-1.2/x:y=z@%+,");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("ü"), "'ü'");
        assert_eq!(shell_quote(""), "''");
    }

    #[test]
    fn home_root() {
        assert_eq!(DEFAULT_HOME_ROOT, "/data/project");
    }
}
