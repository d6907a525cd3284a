//! The property store: openraft with a RocksDB log and state machine, revisions, watches,
//! transactions and a moka write-through cache (issue 4).
//!
//! Not built yet. Paths mirror Helix's znodes (`/MYCLUSTER/IDEALSTATES/myDB`).
