//! The answer to a confirmation ([`crate::propertystore::confirm`]): served by this replica
//! alone, leader or not, from one consistent read of its storage and the membership its
//! Raft node knows.

use super::Shared;
use crate::propertystore::confirm::{self, Confirmation, Voters, MAX_CONFIRM_SCAN};
use crate::propertystore::core::validate_key;
use crate::propertystore::protocol::StoreResponse;

/// This replica's [`Confirmation`] that `path` holds `value`.
pub(super) fn confirm_held(shared: &Shared, path: &str, value: &[u8]) -> StoreResponse {
    if let Err(e) = validate_key(path) {
        return StoreResponse::Error(e);
    }
    let voters = voters(shared);
    let verdict = match shared.db.held_view(path, MAX_CONFIRM_SCAN) {
        Ok(view) => confirm::decide(view.record.as_ref(), value, view.scan, voters.contains(shared.id)),
        Err(e) => confirm::Verdict::Unsure {
            reason: format!("cannot read the store: {e}"),
        },
    };
    StoreResponse::Confirmation(Confirmation {
        replica: shared.id,
        verdict,
        voters,
    })
}

/// The membership this replica's Raft node uses now (its log's latest, committed or not).
fn voters(shared: &Shared) -> Voters {
    let m = shared.raft.metrics();
    let m = m.borrow();
    let stored = &m.membership_config;
    let membership = stored.membership();
    let configs: Vec<Vec<u64>> = membership
        .get_joint_config()
        .iter()
        .map(|c| c.iter().copied().collect())
        .collect();
    let addrs = membership
        .voter_ids()
        .filter_map(|id| membership.get_node(&id).map(|n| (id, n.addr.clone())))
        .collect();
    Voters {
        log_id: *stored.log_id(),
        configs,
        addrs,
    }
}
