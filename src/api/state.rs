//! What every request shares.

use std::sync::Arc;

use axum::extract::FromRef;

use super::guard::LoadLimits;
use super::podlogs::FollowSlots;
use crate::config::{Config, ContinuousKind, HomeMount};
use crate::credentials::CredentialStore;
use crate::filewatch::Current;
use crate::limits::{JobQuotas, RateLimits};
use crate::watchcache::WatchCache;
use jobs_core::images::ImageCatalog;
use jobs_core::labels::ContinuousComponent;

/// Shared by every request.
#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub credentials: Arc<CredentialStore>,
    /// The image list: built in, or the file's current version.
    pub catalog: Current<ImageCatalog>,
    pub rate_limits: Arc<RateLimits>,
    pub quotas: Arc<JobQuotas>,
    pub load: LoadLimits,
    /// Set when a shutdown begins: readiness fails so that traffic moves elsewhere.
    pub draining: Arc<std::sync::atomic::AtomicBool>,
    /// Becomes `true` when the listeners stop: open-ended replies (followed logs) end.
    pub stopping: Arc<tokio::sync::watch::Sender<bool>>,
    /// Followed log streams open per tool.
    pub follows: FollowSlots,
    /// Warm reads from watches, when `JOBS_GATEWAY_WATCH_CACHE=on`.
    pub watch: Option<Arc<WatchCache>>,
}

impl AppState {
    pub fn images(&self) -> Arc<ImageCatalog> {
        self.catalog.get()
    }

    pub fn continuous_component(&self) -> ContinuousComponent {
        match self.config.continuous_kind {
            ContinuousKind::ReplicationController => ContinuousComponent::ReplicationControllers,
            ContinuousKind::Deployment => ContinuousComponent::Deployments,
        }
    }

    /// The home root, when job pods mount it themselves (`JOBS_GATEWAY_HOME_MOUNT=hostpath`).
    pub fn home_root_mount(&self) -> Option<&str> {
        match self.config.home_mount {
            HomeMount::HostPath => self.config.home_root.to_str(),
            HomeMount::None => None,
        }
    }

    pub fn home_of(&self, tool: &str) -> String {
        self.config.home_root.join(tool).display().to_string()
    }
}

/// The body limit of [`super::guard::LimitedBody`] comes from the state.
impl FromRef<AppState> for LoadLimits {
    fn from_ref(state: &AppState) -> Self {
        state.load.clone()
    }
}
