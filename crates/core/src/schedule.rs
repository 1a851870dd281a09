//! Cron schedule parsing, deterministic at-macro skew and next-run computation.
//!
//! The parser mirrors the OLD jobs-api validation rules (spec §3.5): it only validates the
//! expression, the text sent to Kubernetes keeps the user's spelling (lower-cased). At-macros
//! are spread over their full range with a pseudo-random generator that reproduces CPython's
//! `random.seed(str)` + `random.randint` so existing jobs keep their run times.

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveTime, TimeZone, Timelike, Utc};
use sha2::{Digest, Sha512};

/// A validated schedule: the user's text and the 5-field expression given to Kubernetes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    /// What the user asked for (stored in the `jobs.toolforge.org/cron-expression` annotation).
    pub original: String,
    /// The 5 space-separated fields stored in `spec.schedule`.
    pub actual: String,
}

/// Supported at-macros and their (unskewed) expansions, in the order used by the error text.
const MACROS: [(&str, &str); 5] = [
    ("@hourly", "0 * * * *"),
    ("@daily", "0 0 * * *"),
    ("@weekly", "0 0 * * 0"),
    ("@monthly", "0 0 1 * *"),
    ("@yearly", "0 0 1 1 *"),
];

/// Inclusive value range of one cron field.
#[derive(Debug, Clone, Copy)]
struct FieldSpec {
    min: u32,
    max: u32,
    /// Whether `sun`…`sat` and `7` are accepted (day-of-week only).
    weekday: bool,
}

const FIELDS: [FieldSpec; 5] = [
    FieldSpec {
        min: 0,
        max: 59,
        weekday: false,
    },
    FieldSpec {
        min: 0,
        max: 23,
        weekday: false,
    },
    FieldSpec {
        min: 1,
        max: 31,
        weekday: false,
    },
    FieldSpec {
        min: 1,
        max: 12,
        weekday: false,
    },
    FieldSpec {
        min: 0,
        max: 6,
        weekday: true,
    },
];

const WEEKDAY_NAMES: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

/// Parse a user-supplied schedule (a 5-field cron expression or an at-macro).
///
/// `seed` is the at-macro seed string (OLD: `"tool-<tool> <jobname>"`).
/// The error is the full user-facing message.
pub fn parse_schedule(text: &str, seed: &str) -> Result<Schedule, String> {
    parse_inner(text, seed)
        .map_err(|msg| format!("Unable to parse cron expression '{text}' ({msg})"))
}

/// [`parse_schedule`] with the 16.x server's wording of a failure, which prefixes the parser's
/// message with `Unable to parse cron expression "<text>": ` (spec §3.5).
pub fn parse_schedule_v1(text: &str, seed: &str) -> Result<Schedule, String> {
    parse_inner(text, seed)
        .map_err(|msg| format!("Unable to parse cron expression \"{text}\": {msg}"))
}

fn parse_inner(text: &str, seed: &str) -> Result<Schedule, String> {
    if text.starts_with('@') {
        let expansion = macro_expansion(text).ok_or_else(|| {
            let names: Vec<&str> = MACROS.iter().map(|(name, _)| *name).collect();
            format!(
                "Invalid at-macro '{text}', supported macros are: {}",
                names.join(", ")
            )
        })?;
        return Ok(Schedule {
            original: text.to_string(),
            actual: spread_macro(expansion, seed),
        });
    }
    let fields = split_fields(text)?;
    for (value, spec) in fields.iter().zip(FIELDS.iter()) {
        expand_field(value, spec)?;
    }
    Ok(Schedule {
        original: text.to_string(),
        actual: fields.join(" "),
    })
}

fn macro_expansion(text: &str) -> Option<&'static str> {
    MACROS
        .iter()
        .find(|(name, _)| *name == text)
        .map(|(_, expansion)| *expansion)
}

/// Lower-case, split on single spaces, drop empty parts; exactly 5 parts are required.
fn split_fields(text: &str) -> Result<Vec<String>, String> {
    let lowered = text.to_lowercase();
    let fields: Vec<String> = lowered
        .split(' ')
        .filter(|part| !part.is_empty())
        .map(str::to_string)
        .collect();
    if fields.len() != 5 {
        return Err(format!(
            "Expected to find 5 space-separated values, found {}",
            fields.len()
        ));
    }
    Ok(fields)
}

/// Validate one field and return the sorted, de-duplicated set of values it matches.
fn expand_field(value: &str, spec: &FieldSpec) -> Result<Vec<u32>, String> {
    let mut values = Vec::new();
    for entry in value.split(',') {
        values.extend(expand_entry(entry, spec)?);
    }
    values.sort_unstable();
    values.dedup();
    Ok(values)
}

fn expand_entry(entry: &str, spec: &FieldSpec) -> Result<Vec<u32>, String> {
    if entry == "*" || entry.starts_with("*/") {
        let step = match entry.strip_prefix("*/") {
            Some(step) => parse_step(step, entry, spec)?,
            None => 1,
        };
        return Ok(stepped(spec.min, spec.max, step));
    }
    if let Some((start, end)) = entry.split_once('-') {
        if entry.contains('/') {
            return Err("Step syntax is not supported with ranges".to_string());
        }
        let start = parse_int(start)?;
        let end = parse_int(end)?;
        if start < i64::from(spec.min) {
            return Err(format!("Start value {start} must be at least {}", spec.min));
        }
        if end > i64::from(spec.max) {
            return Err(format!("End value {end} must be at most {}", spec.max));
        }
        if start > end {
            return Err(format!(
                "End value {end} must be smaller than start value {start}"
            ));
        }
        return Ok(stepped(to_u32(start), to_u32(end), 1));
    }
    let (value, step) = match entry.split_once('/') {
        Some((value, step)) => (value, Some(parse_step(step, entry, spec)?)),
        None => (entry, None),
    };
    let start = parse_single(value, spec)?;
    Ok(match step {
        Some(step) => stepped(start, spec.max, step),
        None => vec![start],
    })
}

fn parse_int(text: &str) -> Result<i64, String> {
    text.trim()
        .parse::<i64>()
        .map_err(|_| format!("Unable to parse '{text}' as an integer"))
}

fn parse_step(step: &str, entry: &str, spec: &FieldSpec) -> Result<u32, String> {
    let invalid = || format!("Invalid step value in '{entry}'");
    let step = step.trim().parse::<i64>().map_err(|_| invalid())?;
    if step == 0 || step < i64::from(spec.min) || step > i64::from(spec.max) {
        return Err(invalid());
    }
    Ok(to_u32(step))
}

fn parse_single(value: &str, spec: &FieldSpec) -> Result<u32, String> {
    if spec.weekday {
        if let Some(index) = WEEKDAY_NAMES.iter().position(|name| *name == value) {
            return u32::try_from(index).map_err(|_| format!("Invalid value '{value}'"));
        }
    }
    let number = parse_int(value)?;
    if spec.weekday && number == 7 {
        return Ok(0);
    }
    if number < i64::from(spec.min) || number > i64::from(spec.max) {
        return Err(format!(
            "Invalid value '{value}', expected {}-{}",
            spec.min, spec.max
        ));
    }
    Ok(to_u32(number))
}

/// Callers have range-checked `value`; saturate instead of panicking just in case.
fn to_u32(value: i64) -> u32 {
    u32::try_from(value).unwrap_or(0)
}

fn stepped(start: u32, end: u32, step: u32) -> Vec<u32> {
    let step = usize::try_from(step.max(1)).unwrap_or(1);
    (start..=end).step_by(step).collect()
}

/// Replace every non-`*` field of a macro expansion by a deterministic pseudo-random value
/// in the field's full range (minute, hour, dom, month, dow in that order).
pub fn spread_macro(macro_expansion: &str, seed: &str) -> String {
    let mut rng = PyRandom::from_str_seed(seed);
    macro_expansion
        .split(' ')
        .filter(|part| !part.is_empty())
        .enumerate()
        .map(|(index, field)| match FIELDS.get(index) {
            Some(spec) if field != "*" => rng.randint(spec.min, spec.max).to_string(),
            _ => field.to_string(),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The next minute strictly after `after` that matches the cron expression `actual`.
///
/// Standard cron semantics: when both day-of-month and day-of-week are restricted (do not
/// start with `*`), a day matches if either matches. Returns `None` for an invalid
/// expression or one that never fires (e.g. 31 February).
pub fn next_run_after(actual: &str, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let text = macro_expansion(actual).unwrap_or(actual);
    let fields = split_fields(text).ok()?;
    let mut sets: Vec<Vec<u32>> = Vec::with_capacity(5);
    for (value, spec) in fields.iter().zip(FIELDS.iter()) {
        sets.push(expand_field(value, spec).ok()?);
    }
    let [minutes, hours, doms, months, dows] = <[Vec<u32>; 5]>::try_from(sets).ok()?;
    let dom_any = fields[2].starts_with('*');
    let dow_any = fields[4].starts_with('*');

    let day_matches = |date: NaiveDate| -> bool {
        if !months.contains(&date.month()) {
            return false;
        }
        let dom_ok = doms.contains(&date.day());
        let dow_ok = dows.contains(&date.weekday().num_days_from_sunday());
        match (dom_any, dow_any) {
            (false, false) => dom_ok || dow_ok,
            _ => dom_ok && dow_ok,
        }
    };

    // First candidate: the minute after `after`, truncated to whole minutes.
    let start = after + Duration::minutes(1);
    let start_date = start.date_naive();
    let start_time = NaiveTime::from_hms_opt(start.hour(), start.minute(), 0)?;

    // 28 years cover every (leap year × weekday) combination.
    let mut date = start_date;
    for _ in 0..(366 * 28) {
        if day_matches(date) {
            let floor = (date == start_date).then_some(start_time);
            if let Some(time) = first_time_in_day(&hours, &minutes, floor) {
                return Some(Utc.from_utc_datetime(&date.and_time(time)));
            }
        }
        date = date.succ_opt()?;
    }
    None
}

fn first_time_in_day(
    hours: &[u32],
    minutes: &[u32],
    floor: Option<NaiveTime>,
) -> Option<NaiveTime> {
    for &hour in hours {
        for &minute in minutes {
            let time = NaiveTime::from_hms_opt(hour, minute, 0)?;
            if floor.is_none_or(|floor| time >= floor) {
                return Some(time);
            }
        }
    }
    None
}

// === CPython `random` emulation ===

const MT_N: usize = 624;
const MT_M: usize = 397;

/// MT19937 as used by CPython's `random.Random`.
struct PyRandom {
    state: [u32; MT_N],
    index: usize,
}

impl PyRandom {
    fn init_genrand(seed: u32) -> Self {
        let mut state = [0u32; MT_N];
        state[0] = seed;
        for i in 1..MT_N {
            let prev = state[i - 1];
            state[i] = 1_812_433_253u32
                .wrapping_mul(prev ^ (prev >> 30))
                .wrapping_add(i as u32);
        }
        Self { state, index: MT_N }
    }

    fn init_by_array(key: &[u32]) -> Self {
        let mut rng = Self::init_genrand(19_650_218);
        let mt = &mut rng.state;
        let key_len = key.len().max(1);
        let mut i = 1usize;
        let mut j = 0usize;
        for _ in 0..MT_N.max(key_len) {
            let prev = mt[i - 1];
            let word = key.get(j).copied().unwrap_or(0);
            mt[i] = (mt[i] ^ (prev ^ (prev >> 30)).wrapping_mul(1_664_525))
                .wrapping_add(word)
                .wrapping_add(j as u32);
            i += 1;
            j += 1;
            if i >= MT_N {
                mt[0] = mt[MT_N - 1];
                i = 1;
            }
            if j >= key_len {
                j = 0;
            }
        }
        for _ in 0..(MT_N - 1) {
            let prev = mt[i - 1];
            mt[i] =
                (mt[i] ^ (prev ^ (prev >> 30)).wrapping_mul(1_566_083_941)).wrapping_sub(i as u32);
            i += 1;
            if i >= MT_N {
                mt[0] = mt[MT_N - 1];
                i = 1;
            }
        }
        mt[0] = 0x8000_0000;
        rng
    }

    /// `random.seed(text)` with version 2: the integer `bytes + sha512(bytes)` (big-endian)
    /// split into 32-bit words, least significant first.
    fn from_str_seed(text: &str) -> Self {
        let mut bytes = text.as_bytes().to_vec();
        bytes.extend_from_slice(&Sha512::digest(text.as_bytes()));
        let first_nonzero = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
        let significant = &bytes[first_nonzero..];
        let mut key: Vec<u32> = significant
            .rchunks(4)
            .map(|chunk| chunk.iter().fold(0u32, |acc, b| (acc << 8) | u32::from(*b)))
            .collect();
        if key.is_empty() {
            key.push(0);
        }
        Self::init_by_array(&key)
    }

    fn genrand_uint32(&mut self) -> u32 {
        if self.index >= MT_N {
            self.twist();
        }
        let mut y = self.state[self.index];
        self.index += 1;
        y ^= y >> 11;
        y ^= (y << 7) & 0x9d2c_5680;
        y ^= (y << 15) & 0xefc6_0000;
        y ^= y >> 18;
        y
    }

    fn twist(&mut self) {
        const UPPER: u32 = 0x8000_0000;
        const LOWER: u32 = 0x7fff_ffff;
        const MATRIX_A: u32 = 0x9908_b0df;
        let mt = &mut self.state;
        for k in 0..MT_N {
            let y = (mt[k] & UPPER) | (mt[(k + 1) % MT_N] & LOWER);
            let mag = if y & 1 == 1 { MATRIX_A } else { 0 };
            mt[k] = mt[(k + MT_M) % MT_N] ^ (y >> 1) ^ mag;
        }
        self.index = 0;
    }

    /// `random.randint(lo, hi)` via `_randbelow_with_getrandbits` (rejection sampling).
    fn randint(&mut self, lo: u32, hi: u32) -> u32 {
        let n = hi.saturating_sub(lo).saturating_add(1);
        let bits = u32::BITS - n.leading_zeros();
        loop {
            let r = self.genrand_uint32() >> (32 - bits);
            if r < n {
                return lo + r;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> String {
        parse_schedule(text, "seed").unwrap_err()
    }

    fn wrapped(text: &str, msg: &str) -> String {
        format!("Unable to parse cron expression '{text}' ({msg})")
    }

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn mt_first_outputs_for_asdf() {
        let mut rng = PyRandom::from_str_seed("asdf");
        assert_eq!(rng.genrand_uint32(), 96_280_406);
        assert_eq!(rng.genrand_uint32(), 745_951_233);
        assert_eq!(rng.genrand_uint32(), 4_256_082_653);
    }

    #[test]
    fn mt_reference_init_by_array() {
        // Reference output of mt19937ar.c with init_by_array({0x123, 0x234, 0x345, 0x456}).
        let mut rng = PyRandom::init_by_array(&[0x123, 0x234, 0x345, 0x456]);
        assert_eq!(rng.genrand_uint32(), 1_067_595_299);
        assert_eq!(rng.genrand_uint32(), 955_945_823);
        assert_eq!(rng.genrand_uint32(), 477_289_528);
    }

    #[test]
    fn spread_vectors_daily() {
        assert_eq!(spread_macro("0 0 * * *", "asdf"), "1 5 * * *");
        assert_eq!(
            spread_macro("0 0 * * *", "some-tool some-job"),
            "56 6 * * *"
        );
        assert_eq!(
            spread_macro("0 0 * * *", "tool-some-tool some-job"),
            "44 11 * * *"
        );
    }

    #[test]
    fn spread_vectors_all_macros() {
        let table = [
            (
                "tool-tf-test myjob",
                [
                    "52 * * * *",
                    "52 16 * * *",
                    "52 16 * * 5",
                    "52 16 24 * *",
                    "52 16 24 1 *",
                ],
            ),
            (
                "tool-tf-test cronjob",
                [
                    "34 * * * *",
                    "34 22 * * *",
                    "34 22 * * 2",
                    "34 22 9 * *",
                    "34 22 9 10 *",
                ],
            ),
            (
                "tool-mytool backup",
                [
                    "0 * * * *",
                    "0 20 * * *",
                    "0 20 * * 0",
                    "0 20 4 * *",
                    "0 20 4 3 *",
                ],
            ),
        ];
        for (seed, expected) in table {
            for ((name, _), want) in MACROS.iter().zip(expected) {
                let schedule = parse_schedule(name, seed).unwrap();
                assert_eq!(schedule.actual, want, "{seed} {name}");
                assert_eq!(schedule.original, *name);
            }
        }
    }

    #[test]
    fn spread_macro_example_from_brief() {
        assert_eq!(
            spread_macro("0 0 * * *", "tool-tf-test myjob"),
            "52 16 * * *"
        );
    }

    #[test]
    fn seed_cpython_cross_check() {
        // Cross-checked with CPython 3: random.seed(s); randint(0,59), (0,23), (1,31), (1,12).
        assert_eq!(spread_macro("0 0 1 1 *", ""), "29 19 7 7 *");
        assert_eq!(spread_macro("0 0 1 1 *", "x"), "40 10 20 10 *");
        assert_eq!(spread_macro("0 0 1 1 *", "tool-ünï cødé"), "52 3 5 11 *");
        assert_eq!(spread_macro("0 0 1 1 *", &"a".repeat(100)), "55 17 2 7 *");
    }

    #[test]
    fn parses_valid_expressions() {
        let ok = [
            ("* * * * *", "* * * * *"),
            ("*/5 * * * *", "*/5 * * * *"),
            ("0,15,30,45 1-5 1 1 sun", "0,15,30,45 1-5 1 1 sun"),
            ("0  0   * *  MON", "0 0 * * mon"),
            ("5 4 * * 7", "5 4 * * 7"),
            ("5 4 31 12 6", "5 4 31 12 6"),
            ("5/10 */23 */31 */12 */6", "5/10 */23 */31 */12 */6"),
            ("0 0 * * 1-5", "0 0 * * 1-5"),
            ("59 23 31 12 sat", "59 23 31 12 sat"),
        ];
        for (text, actual) in ok {
            let schedule = parse_schedule(text, "x").unwrap();
            assert_eq!(schedule.actual, actual, "{text}");
            assert_eq!(schedule.original, text);
        }
    }

    #[test]
    fn the_16x_wording_of_a_bad_schedule() {
        let v1 = |text: &str| parse_schedule_v1(text, "seed").err().unwrap_or_default();
        assert_eq!(
            v1("wrong"),
            "Unable to parse cron expression \"wrong\": Expected to find 5 space-separated values, found 1"
        );
        assert_eq!(
            v1("@reboot"),
            "Unable to parse cron expression \"@reboot\": Invalid at-macro '@reboot', supported macros are: @hourly, @daily, @weekly, @monthly, @yearly"
        );
        assert_eq!(
            v1("*/0 * * * *"),
            "Unable to parse cron expression \"*/0 * * * *\": Invalid step value in '*/0'"
        );
        assert!(parse_schedule_v1("@daily", "seed").is_ok());
    }

    #[test]
    fn wrong_field_count() {
        assert_eq!(
            err("wrong"),
            "Unable to parse cron expression 'wrong' (Expected to find 5 space-separated values, found 1)"
        );
        assert_eq!(
            err("* * * * * *"),
            wrapped(
                "* * * * * *",
                "Expected to find 5 space-separated values, found 6"
            )
        );
        assert_eq!(
            err(""),
            wrapped("", "Expected to find 5 space-separated values, found 0")
        );
    }

    #[test]
    fn invalid_macros() {
        let msg = |m: &str| {
            wrapped(
                m,
                &format!(
                    "Invalid at-macro '{m}', supported macros are: @hourly, @daily, @weekly, @monthly, @yearly"
                ),
            )
        };
        for m in ["@annually", "@midnight", "@reboot", "@foo", "@DAILY", "@"] {
            assert_eq!(err(m), msg(m));
        }
    }

    #[test]
    fn range_errors() {
        assert_eq!(
            err("1-5/2 * * * *"),
            wrapped("1-5/2 * * * *", "Step syntax is not supported with ranges")
        );
        assert_eq!(
            err("* 5-3 * * *"),
            wrapped(
                "* 5-3 * * *",
                "End value 3 must be smaller than start value 5"
            )
        );
        assert_eq!(
            err("* * 0-3 * *"),
            wrapped("* * 0-3 * *", "Start value 0 must be at least 1")
        );
        assert_eq!(
            err("* * * * 1-7"),
            wrapped("* * * * 1-7", "End value 7 must be at most 6")
        );
        assert_eq!(
            err("* * * * mon-fri"),
            wrapped("* * * * mon-fri", "Unable to parse 'mon' as an integer")
        );
    }

    #[test]
    fn value_errors() {
        assert_eq!(
            err("x * * * *"),
            wrapped("x * * * *", "Unable to parse 'x' as an integer")
        );
        assert_eq!(
            err("* * * jan *"),
            wrapped("* * * jan *", "Unable to parse 'jan' as an integer")
        );
        assert_eq!(
            err("60 * * * *"),
            wrapped("60 * * * *", "Invalid value '60', expected 0-59")
        );
        assert_eq!(
            err("* 24 * * *"),
            wrapped("* 24 * * *", "Invalid value '24', expected 0-23")
        );
        assert_eq!(
            err("* * 32 * *"),
            wrapped("* * 32 * *", "Invalid value '32', expected 1-31")
        );
        assert_eq!(
            err("* * * 13 *"),
            wrapped("* * * 13 *", "Invalid value '13', expected 1-12")
        );
        assert_eq!(
            err("* * * * 8"),
            wrapped("* * * * 8", "Invalid value '8', expected 0-6")
        );
    }

    #[test]
    fn step_errors() {
        assert_eq!(
            err("* */0 * * *"),
            wrapped("* */0 * * *", "Invalid step value in '*/0'")
        );
        assert_eq!(
            err("* */24 * * *"),
            wrapped("* */24 * * *", "Invalid step value in '*/24'")
        );
        assert_eq!(
            err("*/x * * * *"),
            wrapped("*/x * * * *", "Invalid step value in '*/x'")
        );
        assert_eq!(
            err("5/60 * * * *"),
            wrapped("5/60 * * * *", "Invalid step value in '5/60'")
        );
    }

    #[test]
    fn next_run_simple() {
        let now = at("2026-11-26T03:59:30Z");
        assert_eq!(
            next_run_after("0 4 * * *", now),
            Some(at("2026-11-26T04:00:00Z"))
        );
        // strictly after: exactly on a matching minute moves on.
        assert_eq!(
            next_run_after("0 4 * * *", at("2026-11-26T04:00:00Z")),
            Some(at("2026-11-27T04:00:00Z"))
        );
        assert_eq!(
            next_run_after("*/15 * * * *", at("2026-01-01T10:16:59Z")),
            Some(at("2026-01-01T10:30:00Z"))
        );
        assert_eq!(
            next_run_after("59 23 31 12 *", at("2026-12-31T23:59:00Z")),
            Some(at("2027-12-31T23:59:00Z"))
        );
    }

    #[test]
    fn next_run_day_rules() {
        // 2026-11-26 is a Thursday.
        let now = at("2026-11-26T12:00:00Z");
        // dow only: next Monday.
        assert_eq!(
            next_run_after("0 0 * * mon", now),
            Some(at("2026-11-30T00:00:00Z"))
        );
        assert_eq!(
            next_run_after("0 0 * * 7", now),
            Some(at("2026-11-29T00:00:00Z"))
        );
        // dom and dow both restricted: either one matches (1st of month OR Friday).
        assert_eq!(
            next_run_after("0 0 1 * 5", now),
            Some(at("2026-11-27T00:00:00Z"))
        );
        // dom restricted, dow '*': only dom.
        assert_eq!(
            next_run_after("0 0 1 * *", now),
            Some(at("2026-12-01T00:00:00Z"))
        );
        // dow with step counts as unrestricted (starts with '*'): AND rule.
        assert_eq!(
            next_run_after("0 0 1 * */2", now),
            Some(at("2026-12-01T00:00:00Z"))
        );
        // leap day.
        assert_eq!(
            next_run_after("0 0 29 2 *", now),
            Some(at("2028-02-29T00:00:00Z"))
        );
        // 31 February never runs.
        assert_eq!(next_run_after("0 0 31 2 *", now), None);
        assert_eq!(next_run_after("garbage", now), None);
        assert_eq!(
            next_run_after("@daily", now),
            Some(at("2026-11-27T00:00:00Z"))
        );
    }
}
