//! Cron/at-macro parsing: never panic; an accepted schedule has 5 space-separated fields.
//!
//! Input: schedule text, optionally followed by a NUL byte and the at-macro seed
//! (default seed `tool-alice myjob`). Invalid UTF-8 is folded to U+FFFD.
#![no_main]

use chrono::{TimeZone, Utc};
use jobs_core::schedule::{next_run_after, parse_schedule};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (text, seed) = match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &b"tool-alice myjob"[..]),
    };
    let text = String::from_utf8_lossy(text);
    let seed = String::from_utf8_lossy(seed);
    let Ok(schedule) = parse_schedule(&text, &seed) else {
        return;
    };
    let fields: Vec<&str> = schedule.actual.split(' ').collect();
    assert_eq!(
        fields.len(),
        5,
        "actual {:?} (from {text:?}) is not 5 space-separated fields",
        schedule.actual
    );
    assert!(
        fields.iter().all(|f| !f.is_empty()),
        "empty field in actual {:?} (from {text:?})",
        schedule.actual
    );
    // The accepted expression must also be usable by the next-run computation.
    let after = Utc.with_ymd_and_hms(2024, 2, 28, 23, 59, 30).unwrap();
    if let Some(next) = next_run_after(&schedule.actual, after) {
        assert!(next > after, "next run {next} not after {after} for {:?}", schedule.actual);
    }
});
