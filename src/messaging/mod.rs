//! Criteria-addressed messaging (`send`, `send_and_wait`) on top of [`crate::transport`].
//!
//! Not built yet: it arrives with the messaging issue. Message records already live in
//! [`crate::model`].
