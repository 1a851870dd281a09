//! Job status computation: the OLD `status_short`/`status_long` strings (spec §4.1, §4.2)
//! and the NEW structured status object (spec §4.3).
//!
//! Everything here is pure: callers fetch the Kubernetes objects and pass them in.
//!
//! The parts, by what they answer:
//!
//! - `facts`: what the pods and events say (times, durations, quota types, `FailedCreate`
//!   events, job counts, container states, pod phase), read by both renderings;
//! - `legacy`: the OLD `status_short` / `status_long` strings of the release 13/14 clients;
//! - `v2`: the NEW [`StatusV2`] object.
//!
//! `facts` imports neither rendering, and `legacy` and `v2` do not import each other; the
//! paths callers use (`status::job_status_short`, `status::StatusV2`, ...) are the
//! re-exports below.

mod facts;
mod legacy;
#[cfg(test)]
mod test_fixtures;
mod v2;

pub use facts::{format_duration, quota_types};
pub use legacy::{
    cronjob_status_short, deployment_status_short, is_manual_run, job_status_short,
    legacy_status_short, rc_status_short, status_long, FAILS_TO_RUN, LEGACY_FAILS_TO_START,
};
pub use v2::{
    continuous_status_v2, oneoff_status_v2, pod_status_v2, scheduled_status_v2, StatusV2,
};
