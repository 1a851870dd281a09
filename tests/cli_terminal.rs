//! `toolforge-jobs` in a real pseudo-terminal (script(1)): the spinner and colours appear only
//! there, and `flush` asks before deleting.

mod cli_support;
mod common;

use cli_support::*;

#[test]
fn spinner_and_colours_only_on_a_terminal() {
    let t = Tool::new("cli-tty");
    t.ok(&["flush", "--yes"]);
    let args = [
        "run",
        "spin",
        "--command",
        "sleep 1000",
        "--image",
        "bookworm",
        "--wait",
        "3",
    ];
    let tty = t.in_terminal(&args, "");
    assert_eq!(tty.code, 2, "the wait times out: {tty}");
    assert!(
        tty.stdout.contains("waiting for job 'spin'"),
        "spinner text: {tty}"
    );
    assert!(
        ["⠋", "⠙", "⠹", "⠸"].iter().any(|f| tty.stdout.contains(f)),
        "spinner frames: {tty}"
    );
    assert!(tty.stdout.contains("timed out"), "{tty}");

    t.ok(&["delete", "spin"]);
    let piped = t.run(&args);
    assert_eq!(piped.code, 2, "{piped}");
    assert!(!piped.stderr.contains('\r'), "{piped}");
    assert_eq!(piped.stderr.lines().count(), 1, "only the error: {piped}");
    assert!(!piped.stderr.contains('⠋'), "{piped}");

    let list = t.in_terminal(&["list"], "");
    assert_eq!(list.code, 0, "{list}");
    assert!(
        list.stdout.contains("\x1b["),
        "colours on a terminal: {list}"
    );
    let mut plain = t.cmd(&["list"]);
    plain.env("NO_COLOR", "1");
    let out = plain.output().unwrap_or_else(|e| panic!("{e}"));
    assert!(!String::from_utf8_lossy(&out.stdout).contains('\x1b'));
}

#[test]
fn flush_asks_on_a_terminal() {
    let t = Tool::new("cli-flush");
    t.ok(&["flush", "--yes"]);
    for name in ["one", "two"] {
        t.ok(&[
            "run",
            name,
            "--command",
            "./x",
            "--image",
            "bookworm",
            "--continuous",
        ]);
    }
    let no = t.in_terminal(&["flush"], "n\n");
    assert!(no.stdout.contains("Delete them all? [y/N]"), "{no}");
    assert!(no.stdout.contains("one, two"), "the jobs are named: {no}");
    assert_eq!(no.code, 1, "{no}");
    assert_eq!(t.names(), ["one", "two"], "answer n: nothing deleted");

    let yes = t.in_terminal(&["flush"], "y\n");
    assert_eq!(yes.code, 0, "{yes}");
    assert!(t.names().is_empty(), "answer y: flushed");
}
