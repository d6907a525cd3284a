//! [`Record`]: Helix's `ZNRecord`, with Helix's exact JSON shape and pretty-printing.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

/// A Helix-shaped record: `{"id", "simpleFields", "listFields", "mapFields"}`.
///
/// Keys are kept sorted (Helix stores them in `TreeMap`s), which makes the JSON output
/// deterministic and identical to Helix's.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Record {
    /// The record's id, usually the name of what it describes (`myDB`, `localhost_12913`).
    pub id: String,
    /// Scalar fields (`NUM_PARTITIONS`, `REPLICAS`, …).
    #[serde(default)]
    pub simple_fields: BTreeMap<String, String>,
    /// Ordered lists (preference lists, state priority lists, …).
    #[serde(default)]
    pub list_fields: BTreeMap<String, Vec<String>>,
    /// Nested maps (partition → {instance → state}, …).
    #[serde(default)]
    pub map_fields: BTreeMap<String, BTreeMap<String, String>>,
}

/// Why a record could not be read or a field could not be interpreted.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum RecordError {
    /// The text is not a JSON record.
    #[error("not a valid record: {reason}")]
    Json {
        /// The parser's description, with line and column.
        reason: String,
    },
    /// A field holds a value of the wrong kind.
    #[error("record '{record}': field {field} = '{value}' is invalid: {reason}")]
    InvalidField {
        /// The record's id.
        record: String,
        /// The field's name.
        field: String,
        /// The value found.
        value: String,
        /// What was expected.
        reason: String,
    },
    /// A required field is absent.
    #[error("record '{record}': required field {field} is missing")]
    MissingField {
        /// The record's id.
        record: String,
        /// The field's name.
        field: String,
    },
}

impl RecordError {
    /// An [`RecordError::InvalidField`] for `field` of `record`.
    pub fn invalid_field(record: &Record, field: &str, value: &str, reason: impl Into<String>) -> Self {
        RecordError::InvalidField {
            record: record.id.clone(),
            field: field.to_string(),
            value: value.to_string(),
            reason: reason.into(),
        }
    }

    /// A [`RecordError::MissingField`] for `field` of `record`.
    pub fn missing_field(record: &Record, field: &str) -> Self {
        RecordError::MissingField {
            record: record.id.clone(),
            field: field.to_string(),
        }
    }
}

impl Record {
    /// An empty record with the given id.
    pub fn new(id: impl Into<String>) -> Self {
        Record {
            id: id.into(),
            ..Default::default()
        }
    }

    /// Parses a record from JSON (Helix's shape; unknown top-level fields are ignored).
    pub fn from_json(text: &str) -> Result<Self, RecordError> {
        serde_json::from_str(text).map_err(|e| RecordError::Json {
            reason: e.to_string(),
        })
    }

    /// The bytes a record is stored as in the property store: Helix's pretty JSON, so
    /// `strand admin get` shows what zkCli shows.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.to_helix_json().into_bytes()
    }

    /// A record from a store value; `Ok(None)` for an empty value (a directory key, as
    /// `addCluster` writes them).
    pub fn from_stored(value: &[u8]) -> Result<Option<Self>, RecordError> {
        if value.iter().all(u8::is_ascii_whitespace) {
            return Ok(None);
        }
        let text = std::str::from_utf8(value).map_err(|e| RecordError::Json {
            reason: format!("not UTF-8: {e}"),
        })?;
        Self::from_json(text).map(Some)
    }

    /// Parses a record from a JSON value.
    pub fn from_value(value: serde_json::Value) -> Result<Self, RecordError> {
        serde_json::from_value(value).map_err(|e| RecordError::Json {
            reason: e.to_string(),
        })
    }

    /// The record as a JSON value.
    pub fn to_value(&self) -> serde_json::Value {
        let mut obj = serde_json::Map::new();
        obj.insert("id".into(), self.id.clone().into());
        obj.insert(
            "mapFields".into(),
            serde_json::to_value(&self.map_fields).unwrap_or_default(),
        );
        obj.insert(
            "listFields".into(),
            serde_json::to_value(&self.list_fields).unwrap_or_default(),
        );
        obj.insert(
            "simpleFields".into(),
            serde_json::to_value(&self.simple_fields).unwrap_or_default(),
        );
        serde_json::Value::Object(obj)
    }

    /// Pretty-prints the record exactly as Helix (Jackson's default pretty printer) does:
    /// `id`, `mapFields`, `listFields`, `simpleFields`, sorted keys, `"k" : v`, lists on
    /// one line (`[ "a", "b" ]`), empty maps as `{` newline `}`.
    pub fn to_helix_json(&self) -> String {
        let mut out = String::with_capacity(256);
        out.push_str("{\n  \"id\" : ");
        push_str_lit(&mut out, &self.id);
        out.push_str(",\n  \"mapFields\" : {");
        push_entries(&mut out, self.map_fields.iter(), 4, |out, inner| {
            out.push('{');
            push_entries(out, inner.iter(), 6, |out, v| push_str_lit(out, v));
        });
        out.push_str(",\n  \"listFields\" : {");
        push_entries(&mut out, self.list_fields.iter(), 4, |out, list| {
            if list.is_empty() {
                out.push_str("[ ]");
                return;
            }
            out.push_str("[ ");
            for (i, v) in list.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                push_str_lit(out, v);
            }
            out.push_str(" ]");
        });
        out.push_str(",\n  \"simpleFields\" : {");
        push_entries(&mut out, self.simple_fields.iter(), 4, |out, v| {
            push_str_lit(out, v)
        });
        out.push_str("\n}");
        out
    }

    /// A simple field.
    pub fn simple(&self, key: &str) -> Option<&str> {
        self.simple_fields.get(key).map(String::as_str)
    }

    /// Sets a simple field.
    pub fn set_simple(&mut self, key: impl Into<String>, value: impl ToString) {
        self.simple_fields.insert(key.into(), value.to_string());
    }

    /// A simple field parsed as a number; `Ok(None)` when absent or empty.
    pub fn simple_parsed<T: std::str::FromStr>(&self, key: &str) -> Result<Option<T>, RecordError> {
        match self.simple(key).map(str::trim) {
            None | Some("") => Ok(None),
            Some(v) => v.parse().map(Some).map_err(|_| RecordError::InvalidField {
                record: self.id.clone(),
                field: key.to_string(),
                value: v.to_string(),
                reason: format!(
                    "expected {}",
                    std::any::type_name::<T>()
                        .rsplit("::")
                        .next()
                        .unwrap_or("a number")
                ),
            }),
        }
    }

    /// A simple field read as a boolean (`true`/`false`, case-insensitive); `Ok(None)` when absent.
    pub fn simple_bool(&self, key: &str) -> Result<Option<bool>, RecordError> {
        match self.simple(key).map(str::trim) {
            None | Some("") => Ok(None),
            Some(v) if v.eq_ignore_ascii_case("true") => Ok(Some(true)),
            Some(v) if v.eq_ignore_ascii_case("false") => Ok(Some(false)),
            Some(v) => Err(RecordError::InvalidField {
                record: self.id.clone(),
                field: key.to_string(),
                value: v.to_string(),
                reason: "expected true or false".into(),
            }),
        }
    }

    /// A list field.
    pub fn list(&self, key: &str) -> Option<&[String]> {
        self.list_fields.get(key).map(Vec::as_slice)
    }

    /// A map field.
    pub fn map(&self, key: &str) -> Option<&BTreeMap<String, String>> {
        self.map_fields.get(key)
    }
}

/// A JSON string literal escaped as Jackson escapes it: `\"`, `\\`, the short escapes
/// `\b \t \n \f \r`, other control characters as `\u00XX` with upper-case hex.
fn push_str_lit(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{8}' => out.push_str("\\b"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\u{c}' => out.push_str("\\f"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04X}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

fn push_entries<'a, V: 'a>(
    out: &mut String,
    entries: impl Iterator<Item = (&'a String, &'a V)>,
    indent: usize,
    mut value: impl FnMut(&mut String, &V),
) {
    let mut any = false;
    for (k, v) in entries {
        out.push_str(if any { ",\n" } else { "\n" });
        any = true;
        out.extend(std::iter::repeat_n(' ', indent));
        push_str_lit(out, k);
        out.push_str(" : ");
        value(out, v);
    }
    out.push('\n');
    out.extend(std::iter::repeat_n(' ', indent - 2));
    out.push('}');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_record_prints_like_helix() {
        let r = Record::new("myDB");
        assert_eq!(
            r.to_helix_json(),
            "{\n  \"id\" : \"myDB\",\n  \"mapFields\" : {\n  },\n  \"listFields\" : {\n  },\n  \"simpleFields\" : {\n  }\n}"
        );
    }

    #[test]
    fn full_record_round_trips() {
        let mut r = Record::new("myDB");
        r.set_simple("NUM_PARTITIONS", 6);
        r.list_fields
            .insert("myDB_0".into(), vec!["a".into(), "b".into()]);
        r.list_fields.insert("empty".into(), vec![]);
        r.map_fields
            .entry("myDB_0".into())
            .or_default()
            .insert("a".into(), "MASTER".into());
        let text = r.to_helix_json();
        assert!(text.contains("\"myDB_0\" : [ \"a\", \"b\" ]"));
        assert!(text.contains("\"empty\" : [ ]"));
        assert_eq!(Record::from_json(&text).unwrap(), r);
    }

    #[test]
    fn strings_are_escaped_as_jackson_escapes_them() {
        let mut r = Record::new("a\"b\\c");
        r.set_simple("k", "line\nnext\ttab\u{1f}end\u{8}");
        let text = r.to_helix_json();
        assert!(text.contains(r#""id" : "a\"b\\c""#), "{text}");
        assert!(text.contains(r#""k" : "line\nnext\ttab\u001Fend\b""#), "{text}");
        assert_eq!(Record::from_json(&text).unwrap(), r);
    }

    #[test]
    fn bad_numbers_name_the_field() {
        let mut r = Record::new("myDB");
        r.set_simple("NUM_PARTITIONS", "six");
        let err = r.simple_parsed::<u32>("NUM_PARTITIONS").unwrap_err();
        assert!(err.to_string().contains("NUM_PARTITIONS"), "{err}");
    }
}
