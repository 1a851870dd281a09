//! jobs-gateway: the Toolforge jobs API, acting on Kubernetes as the calling tool.
//!
//! HTTP, authentication, credentials, the Kubernetes runtime, limits, metrics and the server.
//! What jobs mean (requests, objects, status, views, wire types) is in [`jobs_core`].

pub mod api;
pub mod apiconn;
pub mod config;
pub mod credentials;
pub mod filewatch;
pub mod home;
pub mod limits;
pub mod logfiles;
pub mod memory;
pub mod metrics;
pub mod runtime;
pub mod server;
pub mod watchcache;
pub mod writes;
