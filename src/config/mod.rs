//! Scoped configuration (cluster, participant, resource, partition) with change
//! notifications, stored as Helix-shaped records in the property store.
//!
//! Not built yet: it arrives on top of the property store (issue 4). The record types it
//! will read and write already live in [`crate::model`].
