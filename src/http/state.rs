//! What every handler shares: the admin API, whether writes are allowed, this process's
//! gossip view and its readiness checks.

use std::sync::Arc;

use super::error::ApiError;
use super::health::ReadyCheck;
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
    membership: Option<MembershipView>,
    checks: Vec<ReadyCheck>,
}

impl AppState {
    /// A state over `admin`; `read_only` refuses every write (and the dashboard shows no
    /// action buttons).
    pub fn new(
        admin: Admin,
        read_only: bool,
        membership: Option<MembershipView>,
        checks: Vec<ReadyCheck>,
    ) -> Self {
        AppState {
            inner: Arc::new(Inner {
                admin,
                read_only,
                membership,
                checks,
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
        self.inner.membership.as_ref()
    }

    /// The readiness checks of this process's roles.
    pub fn checks(&self) -> &[ReadyCheck] {
        &self.inner.checks
    }
}
