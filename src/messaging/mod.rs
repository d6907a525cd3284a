//! Criteria-addressed messaging (Helix's `ClusterMessagingService`): `send`,
//! `send_and_wait`, handlers by message type, persistent messages.
//!
//! ```text
//!  sender (participant, controller, spectator, admin)          recipient
//!   criteria ─► resolve (pure) over the watched ClusterView      inbox: Service::APP_MESSAGES
//!     │          (LIVEINSTANCES STRAND_ADDR, CONTROLLER/LEADER)     accept (pure): target, cluster
//!     │                                                            (leader only), session, expiry,
//!     ├─ persistent: INSTANCES/<i>/MESSAGES/<id> first             at most once by id (`Seen`)
//!     └─ one QUIC request per target, all in parallel ───────────► handler by (type, subtype)
//!          Tally (pure): replies as they arrive, failures,  ◄───── reply / error / accepted
//!          retries of undelivered copies, timeouts                  persistent copy deleted
//!  store copy of a persistent message ─► participant's MESSAGES watch ─► same accept + handler
//! ```
//!
//! [`criteria`], [`resolve`], [`outcome`], [`accept`] and [`wire`] decide and are unit-tested
//! table by table; [`view`] and [`service`] are the shells.

pub mod accept;
pub mod criteria;
mod metrics;
pub mod outcome;
pub mod resolve;
pub mod service;
pub mod view;
pub mod wire;

pub use criteria::{Criteria, DataSource, Like, RecipientType};
pub use outcome::{Failure, Reply, SendResult};
pub use resolve::{ClusterView, Target};
pub use service::{HandlerFn, MessageHandler, Messaging, MessagingBuilder, Outgoing};
pub use wire::AppMessage;

/// Why a send could not be made, or a message was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MessagingError {
    /// The criteria text is malformed or asks for something impossible.
    #[error("bad criteria: {reason}")]
    BadCriteria {
        /// What is wrong.
        reason: String,
    },
    /// The message (type, body, record) is malformed.
    #[error("bad message: {reason}")]
    BadMessage {
        /// What is wrong.
        reason: String,
    },
    /// A controller-addressed message, and no controller leads the cluster.
    #[error("no controller leads cluster {cluster}")]
    NoLeader {
        /// The cluster.
        cluster: String,
    },
    /// The cluster's records could not be read, or a persistent copy could not be written
    /// (nothing was sent).
    #[error("store: {reason}")]
    Store {
        /// What failed.
        reason: String,
    },
    /// The endpoint cannot receive (another service holds the inbox).
    #[error("transport: {reason}")]
    Transport {
        /// What failed.
        reason: String,
    },
}
