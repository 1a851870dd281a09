//! jobs-gateway: the Toolforge jobs API, acting on Kubernetes as the calling tool.

pub mod api;
pub mod cli;
pub mod config;
pub mod credentials;
pub mod home;
pub mod identity;
pub mod jobs;
pub mod limits;
pub mod memory;
pub mod metrics;
pub mod server;
