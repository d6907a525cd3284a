//! The STORE service: one task per request (at most `ReplicaConfig::max_requests` at once), checked
//! against the caller's certificate roles, dispatched to [`super::reads`], [`super::writes`]
//! and [`super::admin`], and recorded in the audit log when administrative. Also who leads,
//! as the other files ask it.

use std::sync::Arc;

use openraft::ServerState;

use super::admin::{add_replica, remove_replica, status};
use super::confirm::confirm_held;
use super::reads::{read, watch_events};
use super::writes::write;
use super::Shared;
use crate::authz;
use crate::codec;
use crate::propertystore::audit::{self};
use crate::propertystore::core::Position;
use crate::propertystore::protocol::{
    StoreRequest, StoreResponse, BAD_REQUEST, MAX_AUDIT_ENTRIES, MAX_WRITES_PER_REQUEST,
};
use crate::propertystore::{ReplicaId, StoreRaft};
use crate::telemetry::marks::{self, Stage};
use crate::transport::{Incoming, Peer, Responder};

/// Serves STORE requests, at most `limit` at once (watch long-polls included;
/// [`super::ReplicaConfig::max_requests`]). Past it the service stops taking requests from
/// its inbox, the inbox fills, and the transport holds new streams back: requests wait, in
/// arrival order, instead of growing the task count without bound.
pub(super) async fn serve_store(shared: Arc<Shared>, mut inbox: crate::transport::Inbox, limit: usize) {
    let slots = Arc::new(tokio::sync::Semaphore::new(limit.max(1)));
    while let Some(incoming) = inbox.recv().await {
        let Incoming::Request { from, body, reply } = incoming else {
            continue;
        };
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let shared = shared.clone();
        tokio::spawn(async move {
            handle(shared, from, body, reply).await;
            drop(slot);
        });
    }
}

fn leader_of(raft: &StoreRaft) -> Option<(ReplicaId, String)> {
    let m = raft.metrics();
    let m = m.borrow();
    let id = m.current_leader?;
    let addr = m
        .membership_config
        .membership()
        .get_node(&id)
        .map(|n| n.addr.clone())?;
    Some((id, addr))
}

/// Whether this replica leads and may act as the leader: not while its disk is stalled.
pub(super) fn is_leader(shared: &Shared) -> bool {
    if *shared.disk_stalled.borrow() {
        return false;
    }
    let m = shared.raft.metrics();
    let m = m.borrow();
    m.current_leader == Some(shared.id) && m.state == ServerState::Leader
}

/// The answer of a replica that does not lead (or may not: a leader with a stalled disk
/// names no leader, so that clients look for the next one).
pub(super) fn not_leader(shared: &Shared) -> StoreResponse {
    StoreResponse::NotLeader {
        leader: leader_of(&shared.raft).filter(|(id, _)| *id != shared.id),
    }
}

async fn handle(shared: Arc<Shared>, from: Peer, body: bytes::Bytes, reply: Responder) {
    let req: StoreRequest = match codec::decode(&body) {
        Ok(r) => r,
        Err(e) => return reply.refuse(format!("{BAD_REQUEST}: {e}")),
    };
    // Every request is checked against the caller's verified certificate before anything
    // is done; a `Writes` frame write by write below.
    if let Err(denied) = authz::check_request(from.roles, &from.name, &req) {
        tracing::warn!(peer = %from.name, roles = %from.roles, "{denied}");
        return reply.ok_typed(&StoreResponse::PermissionDenied(denied));
    }
    // Administrative writes are recorded once answered (see `crate::propertystore::audit`).
    let audited = (authz::administers(from.roles)
        && matches!(
            req,
            StoreRequest::Write(_)
                | StoreRequest::Writes(_)
                | StoreRequest::AddReplica { .. }
                | StoreRequest::RemoveReplica { .. }
        ))
    .then(|| req.clone());
    if matches!(req, StoreRequest::Write(_) | StoreRequest::Writes(_)) {
        marks::mark(Stage::StoreRecv, 0);
    }
    let resp = match req {
        StoreRequest::Write(cmd) => write(&shared, cmd).await,
        StoreRequest::Get { path, mode } => {
            let get = || {
                crate::propertystore::core::validate_path(&path)?;
                let revision = shared.db.meta()?.revision;
                Ok((shared.db.get(&path)?, revision))
            };
            match read(&shared, mode, get).await {
                Ok((record, revision)) => StoreResponse::Value { record, revision },
                Err(r) => r,
            }
        }
        StoreRequest::Children { path, mode } => {
            let children = || {
                crate::propertystore::core::validate_path(&path)?;
                let revision = shared.db.meta()?.revision;
                Ok((shared.db.children(&path)?, revision))
            };
            match read(&shared, mode, children).await {
                Ok((names, revision)) => StoreResponse::Children { names, revision },
                Err(r) => r,
            }
        }
        StoreRequest::Range { prefix, mode } => {
            let range = || {
                crate::propertystore::core::validate_path(&prefix)?;
                shared.db.range(&prefix, shared.max_reply)
            };
            match read(&shared, mode, range).await {
                Ok((entries, revision)) => StoreResponse::Range { entries, revision },
                Err(r) => r,
            }
        }
        StoreRequest::Watch {
            prefix,
            from,
            max,
            wait_ms,
        } => match watch_events(&shared, prefix, Position::at(from), max, wait_ms, false).await {
            Ok((events, next)) => StoreResponse::Events {
                events,
                next: next.revision,
            },
            Err(e) => StoreResponse::Error(e),
        },
        StoreRequest::WatchPage {
            prefix,
            from,
            max,
            wait_ms,
        } => match watch_events(&shared, prefix, from, max, wait_ms, true).await {
            Ok((events, next)) => StoreResponse::EventPage { events, next },
            Err(e) => StoreResponse::Error(e),
        },
        StoreRequest::Status => status(&shared).await,
        StoreRequest::ConfirmHeld { path, value } => confirm_held(&shared, &path, &value),
        StoreRequest::Audit { cluster, max } => {
            StoreResponse::Audit(shared.audit.read(&cluster, max.min(MAX_AUDIT_ENTRIES) as usize))
        }
        StoreRequest::AddReplica { id, addr } => add_replica(&shared, id, addr).await,
        StoreRequest::RemoveReplica { id } => remove_replica(&shared, id).await,
        StoreRequest::Writes(cmds) => {
            if cmds.len() > MAX_WRITES_PER_REQUEST {
                return reply.refuse(format!(
                    "{BAD_REQUEST}: {} writes in one frame, at most {MAX_WRITES_PER_REQUEST}",
                    cmds.len()
                ));
            }
            if !is_leader(&shared) {
                let answer = not_leader(&shared);
                return reply.ok_typed(&StoreResponse::Many(
                    cmds.iter().map(|_| answer.clone()).collect(),
                ));
            }
            // Queued for the write batcher in order; they usually share one log entry. (The
            // frame is answered when its last write is: writes that fail at once wait too.)
            let answers = futures::future::join_all(cmds.into_iter().map(|cmd| {
                let checked = authz::check_command(from.roles, &from.name, &cmd);
                let shared = &shared;
                async move {
                    match checked {
                        Ok(()) => write(shared, cmd).await,
                        Err(denied) => StoreResponse::PermissionDenied(denied),
                    }
                }
            }));
            StoreResponse::Many(answers.await)
        }
    };
    if let Some(req) = audited {
        let now = crate::clock::unix_ms();
        let entries = audit::entries(&from.name, from.roles, &req, &resp, now);
        if !entries.is_empty() {
            // File I/O off the runtime's threads; the answer does not wait for it.
            // One flush at a time is scheduled; under load it writes many entries at once.
            if shared.audit.record(entries) {
                if shared.audit_inline {
                    shared.audit.flush();
                } else {
                    let log = shared.audit.clone();
                    tokio::task::spawn_blocking(move || log.flush());
                }
            }
        }
    }
    reply.ok_typed(&resp);
}
