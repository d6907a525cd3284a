//! The data model: Helix's `ZNRecord` ([`Record`]) and typed views over it.
//!
//! Every piece of cluster metadata (ideal states, external views, current states, configs,
//! state model definitions, messages) is a [`Record`]: an `id` plus `simpleFields`,
//! `listFields` and `mapFields`. The typed views in this module read and write Helix's own
//! field names, so a Helix user can read, export and import strand's records.

mod record;
mod views;

pub use record::{Record, RecordError};
pub use views::*;
