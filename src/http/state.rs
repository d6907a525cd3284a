//! What every handler shares: the admin API, whether writes are allowed, this process's
//! gossip view, its readiness checks and the clusters' recent events.

use std::sync::Arc;

use super::error::ApiError;
use super::health::{self, ReadyCheck};
use super::journal::Journals;
use super::metrics::{self, Collector};
use crate::admin::Admin;
use crate::membership::MembershipView;

/// The handlers' shared state. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    admin: Admin,
    read_only: bool,
    observed: Observed,
    journals: Journals,
}

/// What the server observes of its process's roles: the gossip view (if the process takes
/// part in the gossip), each role's readiness check and metrics collector.
#[derive(Clone, Default)]
pub struct Observed {
    /// This process's gossip view.
    pub membership: Option<MembershipView>,
    /// Readiness checks, one per role.
    pub checks: Vec<ReadyCheck>,
    /// Metrics collectors, run on each scrape.
    pub collectors: Vec<Collector>,
}

impl Observed {
    /// A controller of `clusters`.
    pub fn controller(c: &crate::controller::Controller, clusters: &[String]) -> Self {
        let view = c.membership().view();
        Observed {
            membership: Some(view.clone()),
            checks: vec![health::controller_check(c, clusters)],
            collectors: vec![
                metrics::controller_collector(c, clusters),
                metrics::membership_collector(view),
            ],
        }
    }

    /// A participant (starts the task that counts its transitions).
    pub fn participant(p: &crate::participant::Participant) -> Self {
        let view = p.membership().view();
        Observed {
            membership: Some(view.clone()),
            checks: vec![health::participant_check(p)],
            collectors: vec![
                metrics::participant_collector(p),
                metrics::membership_collector(view),
            ],
        }
    }

    /// A store replica.
    pub fn store(s: &crate::propertystore::StoreServer) -> Self {
        Observed {
            membership: None,
            checks: vec![health::store_check(s)],
            collectors: vec![metrics::store_collector(s)],
        }
    }
}

impl AppState {
    /// A state over `admin`; `read_only` refuses every write (and the dashboard shows no
    /// action buttons).
    pub fn new(admin: Admin, read_only: bool, observed: Observed) -> Self {
        let journals = Journals::new(admin.clone(), observed.membership.clone());
        AppState {
            inner: Arc::new(Inner {
                admin,
                read_only,
                observed,
                journals,
            }),
        }
    }

    /// The admin API.
    pub fn admin(&self) -> &Admin {
        &self.inner.admin
    }

    /// Fails with [`ApiError::ReadOnly`] on a read-only server.
    pub fn writable(&self) -> Result<(), ApiError> {
        if self.inner.read_only {
            Err(ApiError::ReadOnly)
        } else {
            Ok(())
        }
    }

    /// Whether writes are refused.
    pub fn read_only(&self) -> bool {
        self.inner.read_only
    }

    /// This process's gossip view, if it takes part in the gossip.
    pub fn membership(&self) -> Option<&MembershipView> {
        self.inner.observed.membership.as_ref()
    }

    /// The readiness checks of this process's roles.
    pub fn checks(&self) -> &[ReadyCheck] {
        &self.inner.observed.checks
    }

    /// The metrics collectors of this process's roles.
    pub fn collectors(&self) -> &[Collector] {
        &self.inner.observed.collectors
    }

    /// The clusters' recent events (their recorders stop when the last clone of this state
    /// is dropped).
    pub fn journals(&self) -> &Journals {
        &self.inner.journals
    }
}
