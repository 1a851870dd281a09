//! jobs-core: what the Toolforge jobs service means, without any I/O.
//!
//! Identity and subject parsing, run requests, labels, the Kubernetes objects a run becomes,
//! schedules, status, the views list and show report, quota arithmetic, and the wire types of
//! every API generation. No Kubernetes client, no HTTP server, no async runtime, no
//! filesystem: the gateway fetches and stores, the CLI sends and prints, and both speak
//! through the types here.

pub mod command;
pub mod identity;
pub mod images;
pub mod labels;
pub mod logs;
pub mod objects;
pub mod pem;
pub mod podlogs;
pub mod quantity;
pub mod quota;
pub mod request;
pub mod schedule;
pub mod slim;
pub mod status;
pub mod view;
pub mod wire;
