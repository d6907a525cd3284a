//! Application messages on [`crate::transport::Service::APP_MESSAGES`], and their
//! Helix-shaped store record (for persistent messages, under the recipient's `MESSAGES`).
//!
//! One request per recipient: `Deliver{message, wait}`. With `wait`, the answer is the
//! handler's reply (or its error); without, the recipient answers `Accepted` as soon as it
//! has taken the message and runs the handler afterwards.

use serde::{Deserialize, Serialize};

use super::MessagingError;
use crate::model::fields::*;
use crate::model::{Message, MessageType, Record};

/// The simple field that carries the body (JSON text) in the store record.
pub const BODY_FIELD: &str = "STRAND_BODY";
/// The simple field with the absolute expiry (ms since the epoch).
pub const EXPIRY_FIELD: &str = "STRAND_EXPIRY_MS";
/// The simple field with the cluster (a controller serves several).
pub const CLUSTER_FIELD: &str = "STRAND_CLUSTER";
/// The simple field marking a persistent message.
pub const PERSISTENT_FIELD: &str = "STRAND_PERSISTENT";
/// Helix's partition-state field of a criteria-addressed message.
pub const PARTITION_STATE_FIELD: &str = "PARTITION_STATE";

/// One copy of a message, for one recipient.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppMessage {
    /// Unique per recipient copy: `<send id>-<n>`.
    pub id: String,
    /// The send's id, shared by every copy (`CORRELATION_ID`).
    pub correlation_id: String,
    /// The cluster.
    pub cluster: String,
    /// `MSG_TYPE`.
    pub msg_type: String,
    /// `MSG_SUBTYPE`.
    pub subtype: Option<String>,
    /// `SRC_NAME`.
    pub src_name: String,
    /// `SRC_INSTANCE_TYPE`: PARTICIPANT, CONTROLLER, SPECTATOR or ADMIN.
    pub src_type: String,
    /// `TGT_NAME`.
    pub tgt_name: String,
    /// `TGT_SESSION_ID`: a session, or `*` for any.
    pub tgt_session: String,
    /// `RESOURCE_NAME`, when the criteria named one.
    pub resource: Option<String>,
    /// `PARTITION_NAME`, when the criteria named one.
    pub partition: Option<String>,
    /// `PARTITION_STATE`, when the criteria named one.
    pub partition_state: Option<String>,
    /// The body, JSON text.
    pub body: String,
    /// `CREATE_TIMESTAMP`, ms.
    pub created_ms: u64,
    /// After this (ms since the epoch) the message must not run.
    pub expiry_ms: Option<u64>,
    /// Also kept in the store until handled.
    pub persistent: bool,
    /// `RETRY_COUNT`: which attempt this is (0 first).
    pub retry: u32,
}

/// A request on the application-messages service.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum AppRequest {
    /// Deliver a message; `wait`: answer with the handler's reply.
    Deliver {
        /// The message.
        message: AppMessage,
        /// Whether the sender waits for the handler.
        wait: bool,
    },
}

/// The answer to an [`AppRequest`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum AppAnswer {
    /// Taken; the handler runs afterwards.
    Accepted,
    /// The handler's reply (JSON text).
    Reply(String),
    /// The handler failed, or the message was refused (why).
    Failed(String),
}

fn opt(r: &Record, k: &str) -> Option<String> {
    r.simple(k).filter(|v| !v.is_empty()).map(str::to_string)
}

impl AppMessage {
    /// Helix's record shape: `MSG_ID`, `MSG_TYPE`, `MSG_SUBTYPE`, `MSG_STATE` new,
    /// `SRC_NAME`, `SRC_INSTANCE_TYPE`, `TGT_NAME`, `TGT_SESSION_ID`, `CREATE_TIMESTAMP`,
    /// `CORRELATION_ID`, `RESOURCE_NAME`, `PARTITION_NAME`, `RETRY_COUNT`, plus strand's
    /// body, expiry and cluster fields.
    pub fn to_record(&self) -> Record {
        let t = MessageType::parse(&self.msg_type).unwrap_or(MessageType::UserDefineMsg);
        let mut m = Message::create(&t, &self.id, self.created_ms);
        if let Some(s) = &self.subtype {
            m.set_msg_subtype(s);
        }
        m.set_correlation_id(&self.correlation_id);
        m.set_tgt_name(&self.tgt_name);
        m.set_tgt_session_id(&self.tgt_session);
        m.set_retry_count(self.retry);
        let r = &mut m.record;
        r.set_simple(SRC_NAME, &self.src_name);
        r.set_simple(SRC_INSTANCE_TYPE, &self.src_type);
        for (k, v) in [
            (RESOURCE_NAME, &self.resource),
            (PARTITION_NAME, &self.partition),
            (PARTITION_STATE_FIELD, &self.partition_state),
        ] {
            if let Some(v) = v {
                r.set_simple(k, v);
            }
        }
        r.set_simple(BODY_FIELD, &self.body);
        r.set_simple(CLUSTER_FIELD, &self.cluster);
        if let Some(e) = self.expiry_ms {
            r.set_simple(EXPIRY_FIELD, e);
        }
        if self.persistent {
            r.set_simple(PERSISTENT_FIELD, "true");
        }
        m.record
    }

    /// Reads a message record back (a persistent message found in the store).
    pub fn from_record(r: &Record) -> Result<AppMessage, MessagingError> {
        let bad = |reason: String| MessagingError::BadMessage {
            reason: format!("message {}: {reason}", r.id),
        };
        let need = |k: &str| opt(r, k).ok_or_else(|| bad(format!("no {k}")));
        let num = |k: &str| -> Result<Option<u64>, MessagingError> {
            opt(r, k)
                .map(|v| {
                    v.parse::<u64>()
                        .map_err(|_| bad(format!("{k} {v:?} is not a number")))
                })
                .transpose()
        };
        let msg_type = need(MSG_TYPE)?;
        let body = opt(r, BODY_FIELD).unwrap_or_else(|| "null".into());
        check_body(&body)?;
        Ok(AppMessage {
            id: opt(r, MSG_ID).unwrap_or_else(|| r.id.clone()),
            correlation_id: opt(r, CORRELATION_ID).unwrap_or_else(|| r.id.clone()),
            cluster: opt(r, CLUSTER_FIELD).unwrap_or_default(),
            msg_type,
            subtype: opt(r, MSG_SUBTYPE),
            src_name: opt(r, SRC_NAME).unwrap_or_default(),
            src_type: opt(r, SRC_INSTANCE_TYPE).unwrap_or_else(|| "PARTICIPANT".into()),
            tgt_name: need(TGT_NAME)?,
            tgt_session: opt(r, TGT_SESSION_ID).unwrap_or_else(|| "*".into()),
            resource: opt(r, RESOURCE_NAME),
            partition: opt(r, PARTITION_NAME),
            partition_state: opt(r, PARTITION_STATE_FIELD),
            body,
            created_ms: num(CREATE_TIMESTAMP)?.unwrap_or(0),
            expiry_ms: num(EXPIRY_FIELD)?,
            persistent: opt(r, PERSISTENT_FIELD).is_some_and(|v| v == "true"),
            retry: num(RETRY_COUNT)?.unwrap_or(0) as u32,
        })
    }
}

/// Checks that a body is JSON; the error says where it is not.
pub fn check_body(body: &str) -> Result<(), MessagingError> {
    serde_json::from_str::<serde_json::Value>(body)
        .map(|_| ())
        .map_err(|e| MessagingError::BadMessage {
            reason: format!("the body is not JSON: {e}"),
        })
}

/// Checks a message type: Helix's names or letters, digits, `_`, `-`, `.`.
pub fn check_type(t: &str) -> Result<(), MessagingError> {
    if MessageType::parse(t).is_none() {
        return Err(MessagingError::BadMessage {
            reason: format!("message type {t:?}: use letters, digits, '_', '-' or '.'"),
        });
    }
    if t.eq_ignore_ascii_case("STATE_TRANSITION") {
        return Err(MessagingError::BadMessage {
            reason: "STATE_TRANSITION messages come from the controller only".into(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> AppMessage {
        AppMessage {
            id: "abc-0".into(),
            correlation_id: "abc".into(),
            cluster: "C".into(),
            msg_type: "ECHO".into(),
            subtype: Some("v1".into()),
            src_name: "n0".into(),
            src_type: "PARTICIPANT".into(),
            tgt_name: "n1".into(),
            tgt_session: "1a".into(),
            resource: Some("TestDB".into()),
            partition: Some("TestDB_3".into()),
            partition_state: None,
            body: "{\"k\":[1,2]}".into(),
            created_ms: 12,
            expiry_ms: Some(99),
            persistent: true,
            retry: 1,
        }
    }

    #[test]
    fn the_store_record_has_helix_fields_and_reads_back() {
        let m = sample();
        let r = m.to_record();
        assert_eq!(r.id, "abc-0");
        assert_eq!(r.simple(MSG_TYPE), Some("ECHO"));
        assert_eq!(r.simple(MSG_SUBTYPE), Some("v1"));
        assert_eq!(r.simple(MSG_STATE), Some("new"));
        assert_eq!(r.simple(TGT_NAME), Some("n1"));
        assert_eq!(r.simple(TGT_SESSION_ID), Some("1a"));
        assert_eq!(r.simple(CORRELATION_ID), Some("abc"));
        assert_eq!(r.simple(PARTITION_NAME), Some("TestDB_3"));
        assert_eq!(AppMessage::from_record(&r).unwrap(), m);
        let back = Record::from_json(&r.to_helix_json()).unwrap();
        assert_eq!(AppMessage::from_record(&back).unwrap(), m);
    }

    #[test]
    fn bad_records_bodies_and_types_are_clear_errors() {
        let mut r = sample().to_record();
        r.simple_fields.remove(TGT_NAME);
        assert!(AppMessage::from_record(&r)
            .unwrap_err()
            .to_string()
            .contains("no TGT_NAME"));
        let mut r = sample().to_record();
        r.set_simple(BODY_FIELD, "{oops");
        assert!(AppMessage::from_record(&r)
            .unwrap_err()
            .to_string()
            .contains("not JSON"));
        let mut r = sample().to_record();
        r.set_simple(EXPIRY_FIELD, "soon");
        assert!(AppMessage::from_record(&r)
            .unwrap_err()
            .to_string()
            .contains("not a number"));
        assert!(check_body("[1, 2").is_err());
        assert!(check_body("\"text\"").is_ok());
        assert!(check_type("ECHO").is_ok());
        assert!(check_type("has space")
            .unwrap_err()
            .to_string()
            .contains("letters"));
        assert!(check_type("state_transition").is_err());
    }
}
