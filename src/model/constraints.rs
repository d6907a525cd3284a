//! [`ClusterConstraints`]: Helix's message and state constraints, as typed [`ConstraintItem`]s.
//!
//! The record lives at `CONFIGS/CONSTRAINT/<type>` (`MESSAGE_CONSTRAINT` or
//! `STATE_CONSTRAINT`); its id is the type, and each mapField is one constraint:
//!
//! ```text
//!   "constraint1" : { "MESSAGE_TYPE" : "STATE_TRANSITION", "INSTANCE" : ".*",
//!                     "CONSTRAINT_VALUE" : "10" }
//! ```
//!
//! Attribute values are regular expressions (or plain values) that a message's or state's
//! attributes are matched against by the rebalance engine; `CONSTRAINT_VALUE` is a number,
//! `ANY` (no limit), `N` (the number of live candidates) or `R` (the replica count).

use std::collections::BTreeMap;
use std::fmt;

use super::record::{Record, RecordError};
use super::views::fields::CONSTRAINT_VALUE;

/// What a constraints record constrains (its id).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ConstraintType {
    /// Bounds on the number of replicas in a state (`STATE_CONSTRAINT`).
    StateConstraint,
    /// Bounds on the number of messages in flight (`MESSAGE_CONSTRAINT`).
    MessageConstraint,
}

impl ConstraintType {
    /// Parses Helix's spelling (case-insensitive).
    pub fn parse(value: &str) -> Option<Self> {
        match value.trim().to_ascii_uppercase().as_str() {
            "STATE_CONSTRAINT" => Some(Self::StateConstraint),
            "MESSAGE_CONSTRAINT" => Some(Self::MessageConstraint),
            _ => None,
        }
    }

    /// Helix's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::StateConstraint => "STATE_CONSTRAINT",
            Self::MessageConstraint => "MESSAGE_CONSTRAINT",
        }
    }
}

/// An attribute a constraint item is keyed on (Helix's `ConstraintAttribute`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ConstraintAttribute {
    /// A state of the state model (`STATE`).
    State,
    /// A state model name (`STATE_MODEL`).
    StateModel,
    /// A message type (`MESSAGE_TYPE`), e.g. `STATE_TRANSITION`.
    MessageType,
    /// A transition (`TRANSITION`), written `FROM-TO`, e.g. `OFFLINE-SLAVE`.
    Transition,
    /// A resource name (`RESOURCE`).
    Resource,
    /// A partition name (`PARTITION`).
    Partition,
    /// An instance name (`INSTANCE`).
    Instance,
    /// The bound itself (`CONSTRAINT_VALUE`); kept in [`ConstraintItem::value`], never in
    /// [`ConstraintItem::attributes`].
    ConstraintValue,
}

impl ConstraintAttribute {
    /// Every attribute, in Helix's order.
    pub const ALL: [ConstraintAttribute; 8] = [
        Self::State,
        Self::StateModel,
        Self::MessageType,
        Self::Transition,
        Self::Resource,
        Self::Partition,
        Self::Instance,
        Self::ConstraintValue,
    ];

    /// Parses Helix's spelling (case-insensitive).
    pub fn parse(value: &str) -> Option<Self> {
        let v = value.trim();
        Self::ALL.into_iter().find(|a| a.as_str().eq_ignore_ascii_case(v))
    }

    /// Helix's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::State => "STATE",
            Self::StateModel => "STATE_MODEL",
            Self::MessageType => "MESSAGE_TYPE",
            Self::Transition => "TRANSITION",
            Self::Resource => "RESOURCE",
            Self::Partition => "PARTITION",
            Self::Instance => "INSTANCE",
            Self::ConstraintValue => "CONSTRAINT_VALUE",
        }
    }
}

impl fmt::Display for ConstraintAttribute {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A constraint's bound (`CONSTRAINT_VALUE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConstraintValue {
    /// At most this many.
    Count(usize),
    /// No limit (`ANY`).
    Any,
    /// As many as there are live candidate instances (`N`).
    N,
    /// As many as the resource's replica count (`R`).
    R,
}

impl ConstraintValue {
    /// Parses a number, `ANY`, `N` or `R` (letters case-insensitive).
    pub fn parse(value: &str) -> Option<Self> {
        let v = value.trim();
        match v.to_ascii_uppercase().as_str() {
            "ANY" => Some(Self::Any),
            "N" => Some(Self::N),
            "R" => Some(Self::R),
            _ => v.parse().ok().map(Self::Count),
        }
    }

    /// The bound as a number, given the live candidates and the replica count; `None` for
    /// `ANY`.
    pub fn resolve(self, live_candidates: usize, replicas: usize) -> Option<usize> {
        match self {
            Self::Count(n) => Some(n),
            Self::Any => None,
            Self::N => Some(live_candidates),
            Self::R => Some(replicas),
        }
    }
}

impl fmt::Display for ConstraintValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Count(n) => write!(f, "{n}"),
            Self::Any => f.write_str("ANY"),
            Self::N => f.write_str("N"),
            Self::R => f.write_str("R"),
        }
    }
}

/// One constraint: attribute → regular expression (or plain value), and the bound.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConstraintItem {
    /// The attributes the item applies to (never [`ConstraintAttribute::ConstraintValue`]).
    pub attributes: BTreeMap<ConstraintAttribute, String>,
    /// The bound.
    pub value: ConstraintValue,
}

impl ConstraintItem {
    /// An item with the given attributes and bound.
    pub fn new(
        attributes: impl IntoIterator<Item = (ConstraintAttribute, String)>,
        value: ConstraintValue,
    ) -> Self {
        let attributes = attributes
            .into_iter()
            .filter(|(a, _)| *a != ConstraintAttribute::ConstraintValue)
            .collect();
        ConstraintItem { attributes, value }
    }

    /// Reads the mapField `id` of `record`. Errors name `<id>.<attribute>`: an unknown
    /// attribute, a bad `CONSTRAINT_VALUE`, a missing one, or no attribute at all.
    pub fn from_map(record: &Record, id: &str, map: &BTreeMap<String, String>) -> Result<Self, RecordError> {
        let mut attributes = BTreeMap::new();
        let mut value = None;
        for (key, v) in map {
            let field = format!("{id}.{key}");
            let attr = ConstraintAttribute::parse(key).ok_or_else(|| {
                RecordError::invalid_field(
                    record,
                    &field,
                    v,
                    "unknown constraint attribute (expected STATE, STATE_MODEL, MESSAGE_TYPE, TRANSITION, \
                     RESOURCE, PARTITION, INSTANCE or CONSTRAINT_VALUE)",
                )
            })?;
            if attr == ConstraintAttribute::ConstraintValue {
                value = Some(ConstraintValue::parse(v).ok_or_else(|| {
                    RecordError::invalid_field(
                        record,
                        &field,
                        v,
                        "expected a non-negative number, ANY, N or R",
                    )
                })?);
            } else {
                attributes.insert(attr, v.clone());
            }
        }
        let value =
            value.ok_or_else(|| RecordError::missing_field(record, &format!("{id}.{CONSTRAINT_VALUE}")))?;
        if attributes.is_empty() {
            let field = format!("{id}.{CONSTRAINT_VALUE}");
            return Err(RecordError::invalid_field(
                record,
                &field,
                &value.to_string(),
                "the constraint names no attribute",
            ));
        }
        Ok(ConstraintItem { attributes, value })
    }

    /// The item as Helix stores it: attribute → value, plus `CONSTRAINT_VALUE`.
    pub fn to_map(&self) -> BTreeMap<String, String> {
        let mut map: BTreeMap<String, String> = self
            .attributes
            .iter()
            .map(|(a, v)| (a.as_str().to_string(), v.clone()))
            .collect();
        map.insert(CONSTRAINT_VALUE.to_string(), self.value.to_string());
        map
    }

    /// The value (regex) the item gives an attribute, if any.
    pub fn attribute(&self, attribute: ConstraintAttribute) -> Option<&str> {
        self.attributes.get(&attribute).map(String::as_str)
    }
}

/// A constraints record (`CONFIGS/CONSTRAINT/MESSAGE_CONSTRAINT` or `…/STATE_CONSTRAINT`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterConstraints {
    /// The underlying record (`id` is the constraint type).
    pub record: Record,
}

impl ClusterConstraints {
    /// Wraps a record.
    pub fn new(record: Record) -> Self {
        ClusterConstraints { record }
    }

    /// An empty constraints record of the given type.
    pub fn create(constraint_type: ConstraintType) -> Self {
        ClusterConstraints {
            record: Record::new(constraint_type.as_str()),
        }
    }

    /// The constraint type, from the record's id.
    pub fn constraint_type(&self) -> Result<ConstraintType, RecordError> {
        ConstraintType::parse(&self.record.id).ok_or_else(|| {
            RecordError::invalid_field(
                &self.record,
                "id",
                &self.record.id,
                "expected MESSAGE_CONSTRAINT or STATE_CONSTRAINT",
            )
        })
    }

    /// Every item, by constraint id; the first invalid item is an error.
    pub fn items(&self) -> Result<BTreeMap<String, ConstraintItem>, RecordError> {
        self.record
            .map_fields
            .iter()
            .map(|(id, map)| Ok((id.clone(), ConstraintItem::from_map(&self.record, id, map)?)))
            .collect()
    }

    /// One item, if present.
    pub fn item(&self, id: &str) -> Option<Result<ConstraintItem, RecordError>> {
        self.record
            .map(id)
            .map(|map| ConstraintItem::from_map(&self.record, id, map))
    }

    /// Adds or replaces an item.
    pub fn set_item(&mut self, id: &str, item: &ConstraintItem) {
        self.record.map_fields.insert(id.to_string(), item.to_map());
    }

    /// Removes an item; returns whether it was there.
    pub fn remove_item(&mut self, id: &str) -> bool {
        self.record.map_fields.remove(id).is_some()
    }

    /// Checks the type and every item.
    pub fn validate(&self) -> Result<(), RecordError> {
        self.constraint_type()?;
        self.items().map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::test_util::map;
    use ConstraintAttribute as A;

    #[test]
    fn parses_helix_message_constraints() {
        let mut r = Record::new("MESSAGE_CONSTRAINT");
        r.map_fields.insert(
            "constraint1".into(),
            map(&[
                ("MESSAGE_TYPE", "STATE_TRANSITION"),
                ("INSTANCE", ".*"),
                ("CONSTRAINT_VALUE", "10"),
            ]),
        );
        r.map_fields.insert(
            "offlineSlave".into(),
            map(&[
                ("TRANSITION", "OFFLINE-SLAVE"),
                ("RESOURCE", "myDB"),
                ("CONSTRAINT_VALUE", "ANY"),
            ]),
        );
        let c = ClusterConstraints::new(r);
        c.validate().unwrap();
        assert_eq!(c.constraint_type().unwrap(), ConstraintType::MessageConstraint);
        let items = c.items().unwrap();
        assert_eq!(items["constraint1"].value, ConstraintValue::Count(10));
        assert_eq!(items["constraint1"].attribute(A::Instance), Some(".*"));
        assert_eq!(items["offlineSlave"].value, ConstraintValue::Any);
        assert_eq!(
            items["offlineSlave"].attribute(A::Transition),
            Some("OFFLINE-SLAVE")
        );
    }

    #[test]
    fn state_constraints_with_n_and_r_round_trip() {
        let mut c = ClusterConstraints::create(ConstraintType::StateConstraint);
        let item = ConstraintItem::new(
            [
                (A::StateModel, "MasterSlave".to_string()),
                (A::State, "MASTER".to_string()),
            ],
            ConstraintValue::N,
        );
        c.set_item("masters", &item);
        c.set_item(
            "slaves",
            &ConstraintItem::new([(A::State, "SLAVE".to_string())], ConstraintValue::R),
        );
        assert_eq!(c.record.map("masters").unwrap()["CONSTRAINT_VALUE"], "N");
        let back = ClusterConstraints::new(Record::from_json(&c.record.to_helix_json()).unwrap());
        assert_eq!(back.items().unwrap()["masters"], item);
        assert_eq!(ConstraintValue::N.resolve(5, 3), Some(5));
        assert_eq!(ConstraintValue::R.resolve(5, 3), Some(3));
        assert_eq!(ConstraintValue::Any.resolve(5, 3), None);
        assert!(c.remove_item("slaves"));
        assert_eq!(c.items().unwrap().len(), 1);
    }

    #[test]
    fn wrong_items_name_the_field_and_reason() {
        let mut c = ClusterConstraints::create(ConstraintType::MessageConstraint);
        c.record.map_fields.insert(
            "c1".into(),
            map(&[("INSTANCE", ".*"), ("CONSTRAINT_VALUE", "lots")]),
        );
        let err = c.validate().unwrap_err().to_string();
        assert!(
            err.contains("c1.CONSTRAINT_VALUE") && err.contains("ANY, N or R"),
            "{err}"
        );

        c.record
            .map_fields
            .insert("c1".into(), map(&[("HOST", "a"), ("CONSTRAINT_VALUE", "1")]));
        let err = c.validate().unwrap_err().to_string();
        assert!(
            err.contains("c1.HOST") && err.contains("unknown constraint attribute"),
            "{err}"
        );

        c.record.map_fields.insert("c1".into(), map(&[("INSTANCE", "a")]));
        let err = c.validate().unwrap_err();
        assert!(
            matches!(&err, RecordError::MissingField { field, .. } if field == "c1.CONSTRAINT_VALUE"),
            "{err}"
        );

        c.record
            .map_fields
            .insert("c1".into(), map(&[("CONSTRAINT_VALUE", "1")]));
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .contains("names no attribute"));

        let bad = ClusterConstraints::new(Record::new("SPEED_LIMIT"));
        assert!(bad
            .validate()
            .unwrap_err()
            .to_string()
            .contains("MESSAGE_CONSTRAINT or STATE_CONSTRAINT"));
    }
}
