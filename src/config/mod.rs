//! Scoped configuration (cluster, participant, resource, partition) with change
//! notifications, and the application property store — Helix's `ConfigAccessor` and
//! `HelixPropertyStore`.
//!
//! ```text
//!   ConfigAccessor ── get/set/remove ──► admin::Admin (guarded transactions of
//!        │                                 /<C>/CONFIGS/{CLUSTER,PARTICIPANT,RESOURCE}/…)
//!        └── subscribe(filter, start) ──► ConfigSubscription: store watch ─► fold (pure:
//!                                           records as of the last event) ─► diff (pure:
//!                                           key-level changes with old and new values)
//!   AppPropertyStore ── /a/b ─► app_path (pure: /<C>/PROPERTYSTORE/a/b, cannot escape)
//!                      get (moka cache, read-your-writes) · set · create · update (CAS loop)
//!                      · children · remove · watch / listen on a path or subtree
//! ```
//!
//! Files: `diff` (one record's key-level changes; filters), `fold` (the subscription's
//! state), `subscription` (the async shell over the store's watch), `accessor`
//! ([`ConfigAccessor`], typed views), `app_path` and `property_store` (the application
//! store), `error` ([`ConfigError`]).

mod accessor;
pub mod app_path;
pub mod diff;
mod error;
pub mod fold;
mod property_store;
mod subscription;

pub use self::accessor::ConfigAccessor;
pub use self::diff::{ConfigChange, ConfigFilter};
pub use self::error::ConfigError;
pub use self::property_store::{
    AppChange, AppEvent, AppPropertyStore, AppValue, AppWatch, ListenerHandle, UPDATE_ATTEMPTS,
};
pub use self::subscription::{ConfigStart, ConfigSubscription};
pub use crate::admin::{parse_key_values, parse_keys, ConfigScope, ConfigScopeType};
