//! Run-request body parsing: never panic; an accepted request obeys the field rules.
//!
//! The first input byte picks the Content-Type (byte % 4), the rest is the body:
//!   0 → `application/json`, 1 → `application/x-www-form-urlencoded`,
//!   2 → no Content-Type (read as JSON), 3 → `  application/x-www-form-urlencoded; charset=UTF-8`.
//! Seeds use the ASCII digits '0'..'3' as that byte.
#![no_main]

use jobs_core::request::{check_job_name, fields_from_body, RunRequest, EMAIL_VALUES};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    let content_type = match selector % 4 {
        0 => Some("application/json"),
        1 => Some("application/x-www-form-urlencoded"),
        2 => None,
        _ => Some("  application/x-www-form-urlencoded; charset=UTF-8"),
    };
    let Ok(fields) = fields_from_body(content_type, body) else {
        return;
    };
    let Ok(req) = RunRequest::from_fields(&fields) else {
        return;
    };
    assert!(
        check_job_name(&req.name).is_ok(),
        "accepted job name fails check_job_name: {:?}",
        req.name
    );
    assert!(req.retry <= 5, "retry {} > 5", req.retry);
    assert!(
        EMAIL_VALUES.contains(&req.emails.as_str()),
        "emails value {:?} not allowed",
        req.emails
    );
    assert!(!req.cmd.is_empty() && !req.cmd.contains('\0'), "bad cmd {:?}", req.cmd);
    assert!(!req.image.is_empty(), "empty image");
    assert!(!(req.schedule.is_some() && req.continuous), "scheduled and continuous");
});
