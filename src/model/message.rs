//! [`Message`]: Helix's message record, and a builder for state-transition messages.
//!
//! Every message is a record whose id is the message id and whose simpleFields carry
//! Helix's attributes (`MSG_ID`, `MSG_TYPE`, `MSG_STATE`, `SRC_NAME`, `TGT_NAME`,
//! `TGT_SESSION_ID`, `FROM_STATE`, `TO_STATE`, `PARTITION_NAME`, `RESOURCE_NAME`,
//! `CREATE_TIMESTAMP`, …). Time is an input: constructors take the creation time in
//! milliseconds since the epoch, so deciding code stays clock-free.
//!
//! ```text
//!   controller ── StateTransitionBuilder::build(now) ──▶ Message ──▶ participant
//!   participant ── set_msg_state(Read), set_execute_start_timestamp(now) ──▶ handler
//! ```

use std::collections::BTreeMap;
use std::fmt;

use super::record::{Record, RecordError};
use super::views::fields::*;

/// Helix's message categories (`MSG_TYPE`). Applications may define their own types.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MessageType {
    /// Move one replica from `FROM_STATE` to `TO_STATE`.
    StateTransition,
    /// Cancel a state transition in progress.
    StateTransitionCancellation,
    /// A message the controller fans out to instances matching criteria.
    SchedulerMsg,
    /// An application-defined message (its `MSG_SUBTYPE` says which).
    UserDefineMsg,
    /// A message to the controller.
    ControllerMsg,
    /// A reply to a message sent with a reply handler.
    TaskReply,
    /// A message that does nothing (used to wake a participant up).
    NoOp,
    /// A participant reports an error.
    ParticipantErrorReport,
    /// A participant's session changed.
    ParticipantSessionChange,
    /// A type Helix does not define (Helix accepts any string here).
    Custom(String),
}

impl MessageType {
    /// Parses a `MSG_TYPE` value. Known names are matched case-insensitively; other names
    /// made of letters, digits, `_`, `-` and `.` are custom types; anything else is refused.
    pub fn parse(value: &str) -> Option<Self> {
        let v = value.trim();
        let known = match v.to_ascii_uppercase().as_str() {
            "STATE_TRANSITION" => Some(Self::StateTransition),
            "STATE_TRANSITION_CANCELLATION" => Some(Self::StateTransitionCancellation),
            "SCHEDULER_MSG" => Some(Self::SchedulerMsg),
            "USER_DEFINE_MSG" => Some(Self::UserDefineMsg),
            "CONTROLLER_MSG" => Some(Self::ControllerMsg),
            "TASK_REPLY" => Some(Self::TaskReply),
            "NO_OP" => Some(Self::NoOp),
            "PARTICIPANT_ERROR_REPORT" => Some(Self::ParticipantErrorReport),
            "PARTICIPANT_SESSION_CHANGE" => Some(Self::ParticipantSessionChange),
            _ => None,
        };
        known.or_else(|| {
            let ok = !v.is_empty()
                && v.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
            ok.then(|| Self::Custom(v.to_string()))
        })
    }

    /// Helix's spelling.
    pub fn as_str(&self) -> &str {
        match self {
            Self::StateTransition => "STATE_TRANSITION",
            Self::StateTransitionCancellation => "STATE_TRANSITION_CANCELLATION",
            Self::SchedulerMsg => "SCHEDULER_MSG",
            Self::UserDefineMsg => "USER_DEFINE_MSG",
            Self::ControllerMsg => "CONTROLLER_MSG",
            Self::TaskReply => "TASK_REPLY",
            Self::NoOp => "NO_OP",
            Self::ParticipantErrorReport => "PARTICIPANT_ERROR_REPORT",
            Self::ParticipantSessionChange => "PARTICIPANT_SESSION_CHANGE",
            Self::Custom(s) => s,
        }
    }
}

impl fmt::Display for MessageType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a message is in its processing (`MSG_STATE`; Helix writes it in lower case).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageState {
    /// Sent, not yet picked up.
    New,
    /// Picked up by the recipient.
    Read,
    /// The recipient could not create a handler for it.
    Unprocessable,
}

impl MessageState {
    /// Parses a `MSG_STATE` value, case-insensitively.
    pub fn parse(value: &str) -> Option<Self> {
        match value.trim().to_ascii_lowercase().as_str() {
            "new" => Some(Self::New),
            "read" => Some(Self::Read),
            "unprocessable" => Some(Self::Unprocessable),
            _ => None,
        }
    }

    /// Helix's spelling (lower case).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::New => "new",
            Self::Read => "read",
            Self::Unprocessable => "unprocessable",
        }
    }
}

/// A message record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The underlying record (`id` is the message id).
    pub record: Record,
}

impl Message {
    /// Wraps a record.
    pub fn new(record: Record) -> Self {
        Message { record }
    }

    /// A fresh message like Helix's `new Message(type, id)`: `MSG_TYPE`, `MSG_ID`,
    /// `MSG_STATE` new and `CREATE_TIMESTAMP`.
    pub fn create(msg_type: &MessageType, id: &str, create_timestamp_ms: u64) -> Self {
        let mut r = Record::new(id);
        r.set_simple(MSG_TYPE, msg_type.as_str());
        r.set_simple(MSG_ID, id);
        r.set_simple(MSG_STATE, MessageState::New.as_str());
        r.set_simple(CREATE_TIMESTAMP, create_timestamp_ms);
        Message { record: r }
    }

    /// Starts a state-transition message with the given id.
    pub fn state_transition(id: impl Into<String>) -> StateTransitionBuilder {
        StateTransitionBuilder {
            id: id.into(),
            ..Default::default()
        }
    }

    /// A `TASK_REPLY` to this message, as Helix's `Message.createReplyMessage` builds it: the
    /// request's `CORRELATION_ID`, the result in mapField `MESSAGE_RESULT`, `TGT_SESSION_ID`
    /// `*`, sent by `from_instance` to the request's sender (`Controller` when a controller
    /// sent it).
    pub fn reply(
        &self,
        id: &str,
        from_instance: &str,
        result: BTreeMap<String, String>,
        create_timestamp_ms: u64,
    ) -> Message {
        let mut m = Message::create(&MessageType::TaskReply, id, create_timestamp_ms);
        if let Some(c) = self.correlation_id() {
            m.set_correlation_id(c);
        }
        m.record.map_fields.insert(MESSAGE_RESULT.to_string(), result);
        m.set_tgt_session_id("*");
        m.record.set_simple(SRC_NAME, from_instance);
        let from_controller = self
            .src_instance_type()
            .is_some_and(|t| t.eq_ignore_ascii_case("CONTROLLER"));
        let target = if from_controller {
            "Controller"
        } else {
            self.src_name().unwrap_or_default()
        };
        m.set_tgt_name(target);
        m
    }

    /// The result a `TASK_REPLY` carries (mapField `MESSAGE_RESULT`), if any.
    pub fn result(&self) -> Option<&BTreeMap<String, String>> {
        self.record.map(MESSAGE_RESULT)
    }

    /// `MSG_ID`, else the record's id.
    pub fn id(&self) -> &str {
        self.record
            .simple(MSG_ID)
            .filter(|v| !v.is_empty())
            .unwrap_or(&self.record.id)
    }

    /// `MSG_TYPE` (required).
    pub fn msg_type(&self) -> Result<MessageType, RecordError> {
        let v = self.required(MSG_TYPE)?;
        MessageType::parse(v).ok_or_else(|| {
            RecordError::invalid_field(
                &self.record,
                MSG_TYPE,
                v,
                "expected a message type such as STATE_TRANSITION, USER_DEFINE_MSG, TASK_REPLY or NO_OP",
            )
        })
    }

    /// `MSG_SUBTYPE`, if set.
    pub fn msg_subtype(&self) -> Option<&str> {
        self.record.simple(MSG_SUBTYPE)
    }

    /// Sets `MSG_SUBTYPE`.
    pub fn set_msg_subtype(&mut self, subtype: &str) {
        self.record.set_simple(MSG_SUBTYPE, subtype);
    }

    /// `MSG_STATE` (a message without one is new, as in Helix).
    pub fn msg_state(&self) -> Result<MessageState, RecordError> {
        match self.record.simple(MSG_STATE).filter(|v| !v.trim().is_empty()) {
            None => Ok(MessageState::New),
            Some(v) => MessageState::parse(v).ok_or_else(|| {
                RecordError::invalid_field(&self.record, MSG_STATE, v, "expected new, read or unprocessable")
            }),
        }
    }

    /// Sets `MSG_STATE`.
    pub fn set_msg_state(&mut self, state: MessageState) {
        self.record.set_simple(MSG_STATE, state.as_str());
    }

    /// `SRC_NAME`: the sending instance (or controller), if set.
    pub fn src_name(&self) -> Option<&str> {
        self.record.simple(SRC_NAME)
    }

    /// `TGT_NAME`: the target instance, if set.
    pub fn tgt_name(&self) -> Option<&str> {
        self.record.simple(TGT_NAME)
    }

    /// Sets `TGT_NAME`.
    pub fn set_tgt_name(&mut self, name: &str) {
        self.record.set_simple(TGT_NAME, name);
    }

    /// `SRC_SESSION_ID`, if set.
    pub fn src_session_id(&self) -> Option<&str> {
        self.record.simple(SRC_SESSION_ID)
    }

    /// `TGT_SESSION_ID`: the target's session the message is meant for, if set.
    pub fn tgt_session_id(&self) -> Option<&str> {
        self.record.simple(TGT_SESSION_ID)
    }

    /// Sets `TGT_SESSION_ID`.
    pub fn set_tgt_session_id(&mut self, session_id: &str) {
        self.record.set_simple(TGT_SESSION_ID, session_id);
    }

    /// `EXE_SESSION_ID`: the session that executes the message, if set.
    pub fn exe_session_id(&self) -> Option<&str> {
        self.record.simple(EXE_SESSION_ID)
    }

    /// Sets `EXE_SESSION_ID`.
    pub fn set_exe_session_id(&mut self, session_id: &str) {
        self.record.set_simple(EXE_SESSION_ID, session_id);
    }

    /// `SRC_INSTANCE_TYPE` (`CONTROLLER`, `PARTICIPANT`, …), if set.
    pub fn src_instance_type(&self) -> Option<&str> {
        self.record.simple(SRC_INSTANCE_TYPE)
    }

    /// `FROM_STATE`, if set.
    pub fn from_state(&self) -> Option<&str> {
        self.record.simple(FROM_STATE)
    }

    /// `TO_STATE`, if set.
    pub fn to_state(&self) -> Option<&str> {
        self.record.simple(TO_STATE)
    }

    /// `PARTITION_NAME`, if set.
    pub fn partition_name(&self) -> Option<&str> {
        self.record.simple(PARTITION_NAME)
    }

    /// `RESOURCE_NAME`, if set.
    pub fn resource_name(&self) -> Option<&str> {
        self.record.simple(RESOURCE_NAME)
    }

    /// `STATE_MODEL_DEF`, if set.
    pub fn state_model_def(&self) -> Option<&str> {
        self.record.simple(STATE_MODEL_DEF)
    }

    /// `STATE_MODEL_FACTORY_NAME`, if set.
    pub fn state_model_factory_name(&self) -> Option<&str> {
        self.record.simple(STATE_MODEL_FACTORY_NAME)
    }

    /// `BUCKET_SIZE` (0 when absent).
    pub fn bucket_size(&self) -> Result<usize, RecordError> {
        Ok(self.record.simple_parsed(BUCKET_SIZE)?.unwrap_or(0))
    }

    /// `CORRELATION_ID`: ties a reply to its request, if set.
    pub fn correlation_id(&self) -> Option<&str> {
        self.record.simple(CORRELATION_ID)
    }

    /// Sets `CORRELATION_ID`.
    pub fn set_correlation_id(&mut self, id: &str) {
        self.record.set_simple(CORRELATION_ID, id);
    }

    /// `PARENT_MSG_ID` (group messages), if set.
    pub fn parent_msg_id(&self) -> Option<&str> {
        self.record.simple(PARENT_MSG_ID)
    }

    /// `CREATE_TIMESTAMP` in milliseconds since the epoch (0 when absent, as in Helix).
    pub fn create_timestamp_ms(&self) -> Result<u64, RecordError> {
        Ok(self.millis(CREATE_TIMESTAMP)?.unwrap_or(0))
    }

    /// `READ_TIMESTAMP`, if set.
    pub fn read_timestamp_ms(&self) -> Result<Option<u64>, RecordError> {
        self.millis(READ_TIMESTAMP)
    }

    /// Sets `READ_TIMESTAMP`.
    pub fn set_read_timestamp_ms(&mut self, ms: u64) {
        self.record.set_simple(READ_TIMESTAMP, ms);
    }

    /// `EXECUTE_START_TIMESTAMP`, if set.
    pub fn execute_start_timestamp_ms(&self) -> Result<Option<u64>, RecordError> {
        self.millis(EXECUTE_START_TIMESTAMP)
    }

    /// Sets `EXECUTE_START_TIMESTAMP`.
    pub fn set_execute_start_timestamp_ms(&mut self, ms: u64) {
        self.record.set_simple(EXECUTE_START_TIMESTAMP, ms);
    }

    /// `TIMEOUT` in milliseconds; `None` when absent or negative (Helix's -1: no timeout).
    pub fn timeout_ms(&self) -> Result<Option<u64>, RecordError> {
        Ok(self
            .record
            .simple_parsed::<i64>(TIMEOUT)?
            .and_then(|v| u64::try_from(v).ok()))
    }

    /// Sets `TIMEOUT`; `None` writes Helix's -1.
    pub fn set_timeout_ms(&mut self, timeout: Option<u64>) {
        match timeout {
            Some(ms) => self.record.set_simple(TIMEOUT, ms),
            None => self.record.set_simple(TIMEOUT, -1),
        }
    }

    /// `RETRY_COUNT` (0 when absent).
    pub fn retry_count(&self) -> Result<u32, RecordError> {
        Ok(self.record.simple_parsed(RETRY_COUNT)?.unwrap_or(0))
    }

    /// Sets `RETRY_COUNT`.
    pub fn set_retry_count(&mut self, count: u32) {
        self.record.set_simple(RETRY_COUNT, count);
    }

    /// Checks the fields every message needs (`MSG_TYPE`, `MSG_STATE`, the numbers), and for
    /// a state transition what Helix's handler needs: target, session, resource, partition,
    /// state model, and two different states.
    pub fn validate(&self) -> Result<(), RecordError> {
        let msg_type = self.msg_type()?;
        self.msg_state()?;
        self.create_timestamp_ms()?;
        self.read_timestamp_ms()?;
        self.execute_start_timestamp_ms()?;
        self.timeout_ms()?;
        self.retry_count()?;
        self.bucket_size()?;
        if msg_type == MessageType::StateTransition {
            for field in [
                TGT_NAME,
                TGT_SESSION_ID,
                RESOURCE_NAME,
                PARTITION_NAME,
                STATE_MODEL_DEF,
                FROM_STATE,
                TO_STATE,
            ] {
                self.required(field)?;
            }
            let (from, to) = (self.required(FROM_STATE)?, self.required(TO_STATE)?);
            if from == to {
                return Err(RecordError::invalid_field(
                    &self.record,
                    TO_STATE,
                    to,
                    "a transition must change the state",
                ));
            }
        }
        Ok(())
    }

    fn required(&self, field: &str) -> Result<&str, RecordError> {
        self.record
            .simple(field)
            .filter(|v| !v.trim().is_empty())
            .ok_or_else(|| RecordError::missing_field(&self.record, field))
    }

    fn millis(&self, field: &str) -> Result<Option<u64>, RecordError> {
        match self.record.simple(field).map(str::trim) {
            None | Some("") => Ok(None),
            Some(v) => v.parse::<u64>().map(Some).map_err(|_| {
                RecordError::invalid_field(&self.record, field, v, "expected milliseconds since the epoch")
            }),
        }
    }
}

/// Builds a `STATE_TRANSITION` message; [`StateTransitionBuilder::build`] checks that every
/// field the participant needs is there.
#[derive(Debug, Clone, Default)]
pub struct StateTransitionBuilder {
    id: String,
    src: Option<(String, String)>,
    tgt: Option<(String, String)>,
    resource: Option<String>,
    partition: Option<String>,
    state_model: Option<String>,
    factory: Option<String>,
    transition: Option<(String, String)>,
    bucket_size: usize,
    timeout_ms: Option<u64>,
    retry_count: u32,
    correlation_id: Option<String>,
}

impl StateTransitionBuilder {
    /// The sender (controller instance name) and its session.
    pub fn source(mut self, name: &str, session_id: &str) -> Self {
        self.src = Some((name.to_string(), session_id.to_string()));
        self
    }

    /// The target participant and the session the transition is meant for.
    pub fn target(mut self, instance: &str, session_id: &str) -> Self {
        self.tgt = Some((instance.to_string(), session_id.to_string()));
        self
    }

    /// The resource and partition.
    pub fn replica(mut self, resource: &str, partition: &str) -> Self {
        self.resource = Some(resource.to_string());
        self.partition = Some(partition.to_string());
        self
    }

    /// The state model (`STATE_MODEL_DEF`).
    pub fn state_model(mut self, state_model: &str) -> Self {
        self.state_model = Some(state_model.to_string());
        self
    }

    /// The state model factory (`STATE_MODEL_FACTORY_NAME`; `DEFAULT` unless set).
    pub fn factory(mut self, factory: &str) -> Self {
        self.factory = Some(factory.to_string());
        self
    }

    /// The transition, `from` → `to`.
    pub fn transition(mut self, from: &str, to: &str) -> Self {
        self.transition = Some((from.to_string(), to.to_string()));
        self
    }

    /// `BUCKET_SIZE` (0 unless set).
    pub fn bucket_size(mut self, size: usize) -> Self {
        self.bucket_size = size;
        self
    }

    /// `TIMEOUT` in milliseconds (no timeout unless set).
    pub fn timeout_ms(mut self, ms: u64) -> Self {
        self.timeout_ms = Some(ms);
        self
    }

    /// `RETRY_COUNT` (0 unless set).
    pub fn retry_count(mut self, count: u32) -> Self {
        self.retry_count = count;
        self
    }

    /// `CORRELATION_ID`.
    pub fn correlation_id(mut self, id: &str) -> Self {
        self.correlation_id = Some(id.to_string());
        self
    }

    /// The message, created at `create_timestamp_ms`; an error names the first missing or
    /// wrong field.
    pub fn build(self, create_timestamp_ms: u64) -> Result<Message, RecordError> {
        let mut m = Message::create(&MessageType::StateTransition, &self.id, create_timestamp_ms);
        if self.id.trim().is_empty() {
            return Err(RecordError::missing_field(&m.record, MSG_ID));
        }
        let r = &mut m.record;
        if let Some((name, session)) = &self.src {
            r.set_simple(SRC_NAME, name);
            r.set_simple(SRC_SESSION_ID, session);
        }
        if let Some((name, session)) = &self.tgt {
            r.set_simple(TGT_NAME, name);
            r.set_simple(TGT_SESSION_ID, session);
        }
        if let (Some(res), Some(part)) = (&self.resource, &self.partition) {
            r.set_simple(RESOURCE_NAME, res);
            r.set_simple(PARTITION_NAME, part);
        }
        if let Some(sm) = &self.state_model {
            r.set_simple(STATE_MODEL_DEF, sm);
        }
        r.set_simple(
            STATE_MODEL_FACTORY_NAME,
            self.factory.as_deref().unwrap_or("DEFAULT"),
        );
        if let Some((from, to)) = &self.transition {
            r.set_simple(FROM_STATE, from);
            r.set_simple(TO_STATE, to);
        }
        r.set_simple(BUCKET_SIZE, self.bucket_size);
        if let Some(ms) = self.timeout_ms {
            r.set_simple(TIMEOUT, ms);
        }
        if self.retry_count > 0 {
            r.set_simple(RETRY_COUNT, self.retry_count);
        }
        if let Some(c) = &self.correlation_id {
            r.set_simple(CORRELATION_ID, c);
        }
        m.validate()?;
        Ok(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn transition() -> StateTransitionBuilder {
        Message::state_transition("m-1")
            .source("controller_1", "c#3")
            .target("localhost_12913", "localhost_12913#7")
            .replica("myDB", "myDB_0")
            .state_model("MasterSlave")
            .transition("SLAVE", "MASTER")
    }

    #[test]
    fn builds_a_helix_state_transition() {
        let m = transition().timeout_ms(30_000).build(1_700_000_000_000).unwrap();
        let r = &m.record;
        assert_eq!(r.id, "m-1");
        assert_eq!(r.simple(MSG_ID), Some("m-1"));
        assert_eq!(r.simple(MSG_TYPE), Some("STATE_TRANSITION"));
        assert_eq!(r.simple(MSG_STATE), Some("new"));
        assert_eq!(r.simple(SRC_NAME), Some("controller_1"));
        assert_eq!(r.simple(TGT_SESSION_ID), Some("localhost_12913#7"));
        assert_eq!(r.simple(STATE_MODEL_FACTORY_NAME), Some("DEFAULT"));
        assert_eq!(m.msg_type().unwrap(), MessageType::StateTransition);
        assert_eq!((m.from_state(), m.to_state()), (Some("SLAVE"), Some("MASTER")));
        assert_eq!(m.create_timestamp_ms().unwrap(), 1_700_000_000_000);
        assert_eq!(m.timeout_ms().unwrap(), Some(30_000));
        assert_eq!(m.retry_count().unwrap(), 0);
        // Round trip through Helix's JSON.
        let back = Message::new(Record::from_json(&r.to_helix_json()).unwrap());
        assert_eq!(back, m);
    }

    #[test]
    fn builder_refuses_missing_or_wrong_fields() {
        let err = Message::state_transition("m-2").build(0).unwrap_err();
        assert!(
            matches!(&err, RecordError::MissingField { field, .. } if field == TGT_NAME),
            "{err}"
        );
        let err = transition()
            .transition("MASTER", "MASTER")
            .build(0)
            .unwrap_err()
            .to_string();
        assert!(err.contains("TO_STATE") && err.contains("must change"), "{err}");
        let err = Message::state_transition(" ").build(0).unwrap_err();
        assert!(
            matches!(&err, RecordError::MissingField { field, .. } if field == MSG_ID),
            "{err}"
        );
    }

    #[test]
    fn message_state_and_type_parse_like_helix() {
        let mut m = Message::create(&MessageType::UserDefineMsg, "u-1", 5);
        m.set_msg_subtype("REQUEST_BOOTSTRAP_URL");
        m.validate().unwrap();
        m.record.set_simple(MSG_STATE, "READ");
        assert_eq!(m.msg_state().unwrap(), MessageState::Read);
        m.set_msg_state(MessageState::Unprocessable);
        assert_eq!(m.record.simple(MSG_STATE), Some("unprocessable"));
        m.record.set_simple(MSG_STATE, "lost");
        let err = m.msg_state().unwrap_err().to_string();
        assert!(
            err.contains("MSG_STATE") && err.contains("new, read or unprocessable"),
            "{err}"
        );
        m.record.set_simple(MSG_TYPE, "no_op");
        assert_eq!(m.msg_type().unwrap(), MessageType::NoOp);
        m.record.set_simple(MSG_TYPE, "MY_APP_MSG");
        assert_eq!(m.msg_type().unwrap(), MessageType::Custom("MY_APP_MSG".into()));
        m.record.set_simple(MSG_TYPE, "not a type!");
        assert!(m.msg_type().unwrap_err().to_string().contains("MSG_TYPE"));
    }

    #[test]
    fn replies_go_back_to_the_sender_with_the_correlation_id() {
        let mut req = Message::create(&MessageType::UserDefineMsg, "req-1", 1);
        req.record.set_simple(SRC_NAME, "localhost_12913");
        req.set_correlation_id("corr-9");
        let result = BTreeMap::from([("url".to_string(), "s3://backup".to_string())]);
        let reply = req.reply("rep-1", "localhost_12914", result.clone(), 2);
        reply.validate().unwrap();
        assert_eq!(reply.msg_type().unwrap(), MessageType::TaskReply);
        assert_eq!(reply.correlation_id(), Some("corr-9"));
        assert_eq!(reply.tgt_name(), Some("localhost_12913"));
        assert_eq!(reply.src_name(), Some("localhost_12914"));
        assert_eq!(reply.tgt_session_id(), Some("*"));
        assert_eq!(reply.result(), Some(&result));
        req.record.set_simple(SRC_INSTANCE_TYPE, "CONTROLLER");
        assert_eq!(
            req.reply("rep-2", "n", BTreeMap::new(), 3).tgt_name(),
            Some("Controller")
        );
    }

    #[test]
    fn wrong_numbers_name_the_field() {
        let mut m = transition().build(1).unwrap();
        m.record.set_simple(CREATE_TIMESTAMP, "noon");
        let err = m.validate().unwrap_err().to_string();
        assert!(err.contains("CREATE_TIMESTAMP") && err.contains("noon"), "{err}");
        m.record.set_simple(CREATE_TIMESTAMP, 1);
        m.record.set_simple(RETRY_COUNT, "-2");
        assert!(m.validate().unwrap_err().to_string().contains("RETRY_COUNT"));
        m.record.set_simple(RETRY_COUNT, 2);
        m.set_timeout_ms(None);
        assert_eq!(m.record.simple(TIMEOUT), Some("-1"));
        assert_eq!(m.timeout_ms().unwrap(), None);
        m.validate().unwrap();
    }
}
