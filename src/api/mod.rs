//! The HTTP API: routes, shared state, authentication per listener.
//!
//! Modules import their siblings, never this one: `state` holds what requests share,
//! `routes` puts the handlers of `handlers` (release 13/14) and `v1` (16.x) together.

pub mod auth;
pub mod error;
pub mod filelogs;
pub mod guard;
pub mod handlers;
pub mod openapi;
pub mod podlogs;
pub mod routes;
pub mod state;
pub mod v1;

pub use routes::{router, served_routes};
pub use state::AppState;
