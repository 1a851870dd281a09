//! Jobs: what users ask for, the Kubernetes objects it becomes, and how they read back.

pub mod command;
pub mod images;
pub mod labels;
pub mod logs;
pub mod objects;
pub mod podlogs;
pub mod quantity;
pub mod quota;
pub mod request;
pub mod runtime;
pub mod schedule;
pub mod slim;
pub mod status;
pub mod view;
