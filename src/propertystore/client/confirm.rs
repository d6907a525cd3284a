//! [`PropertyStore::confirm_majority`]: asks every replica at once whether a key still holds
//! a value, and decides from a majority of voters, with no leader (see
//! [`crate::propertystore::confirm`]). Never served from the cache and never redirected; a
//! silent replica does not delay a decision the others already make.

use std::net::SocketAddr;
use std::time::Duration;

use futures::stream::{FuturesUnordered, StreamExt};
use tokio::time::Instant;

use super::{ClientError, PropertyStore};
use crate::propertystore::confirm::{Confirmation, Decision, Tally};
use crate::propertystore::core::validate_key;
use crate::propertystore::protocol::{StoreRequest, StoreResponse};
use crate::transport::TransportError;

impl PropertyStore {
    /// Whether `path` holds exactly `value` as far as a majority of the store's voters know:
    /// `Ok(true)` once a majority of the voters of the newest membership among the answers
    /// confirmed (then no change of `path` committed before this call was made); `Ok(false)`
    /// as soon as a majority can no longer confirm (replicas whose applied state holds
    /// another value or none, that have a change of `path` not yet applied, or that cannot be
    /// reached count against it). Every configured replica is asked at once, and every voter
    /// their answers name; no leader is needed. Fails when no decision came within `timeout`
    /// ([`ClientError::Unavailable`]), when no replica answered, or with the store's refusal
    /// (an invalid path, a certificate that may not read `path`).
    pub async fn confirm_majority(
        &self,
        path: &str,
        value: &[u8],
        timeout: Duration,
    ) -> Result<bool, ClientError> {
        validate_key(path)?;
        let deadline = Instant::now() + timeout;
        let req = StoreRequest::ConfirmHeld {
            path: path.to_string(),
            value: value.to_vec(),
        };
        let mut tally = Tally::new(&self.inner.config.endpoints);
        let mut asks = FuturesUnordered::new();
        let mut last = String::from("no store endpoints configured");
        loop {
            for to in tally.to_ask() {
                let req = &req;
                asks.push(async move {
                    let wait = deadline.saturating_duration_since(Instant::now());
                    (to, self.send(to, req, wait).await)
                });
            }
            match tally.decision() {
                Decision::Confirmed => return Ok(true),
                Decision::Refuted => return Ok(false),
                Decision::Undecided => {}
            }
            if asks.is_empty() {
                // Everyone reachable answered and some voter's address is unknown: no
                // majority can be shown.
                return if tally.any_answer() {
                    Ok(false)
                } else {
                    Err(ClientError::Unavailable { reason: last })
                };
            }
            let Ok(Some((from, answer))) = tokio::time::timeout_at(deadline, asks.next()).await else {
                return Err(ClientError::Unavailable {
                    reason: format!("no majority decided within {timeout:?} (last problem: {last})"),
                });
            };
            match answer {
                Ok(StoreResponse::Confirmation(c)) => tally.answered(from, c),
                Ok(StoreResponse::PermissionDenied(d)) => {
                    return Err(ClientError::PermissionDenied(Box::new(d)))
                }
                Ok(StoreResponse::Error(e)) => return Err(ClientError::Store(e)),
                Ok(other) => {
                    last = format!("{from} answered {other:?}");
                    tally.failed(from);
                }
                Err(e) => {
                    last = e.to_string();
                    tally.failed(from);
                }
            }
        }
    }

    /// The one replica at `to`'s answer to a confirmation that `path` holds `value` (for
    /// diagnosis and tests; [`PropertyStore::confirm_majority`] decides).
    pub async fn confirm_at(
        &self,
        to: SocketAddr,
        path: &str,
        value: &[u8],
        timeout: Duration,
    ) -> Result<Confirmation, ClientError> {
        validate_key(path)?;
        let req = StoreRequest::ConfirmHeld {
            path: path.to_string(),
            value: value.to_vec(),
        };
        match self.send(to, &req, timeout).await {
            Ok(StoreResponse::Confirmation(c)) => Ok(c),
            Ok(StoreResponse::PermissionDenied(d)) => Err(ClientError::PermissionDenied(Box::new(d))),
            Ok(StoreResponse::Error(e)) => Err(ClientError::Store(e)),
            Ok(other) => Err(ClientError::Protocol {
                what: format!("{other:?}"),
            }),
            Err(TransportError::Authentication { peer, reason }) => {
                Err(ClientError::Authentication { peer, reason })
            }
            Err(e) => Err(ClientError::Unavailable {
                reason: e.to_string(),
            }),
        }
    }
}
