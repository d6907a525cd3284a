//! The data directory's format version: a marker written when a directory is first opened,
//! and the envelope versions of the values read at open, checked before anything is decoded.
//! A directory or value of another version is refused with
//! [`OpenError::UnsupportedVersion`], naming what was found and what this build reads.

use rocksdb::{IteratorMode, DB};

use super::{OpenError, CF_EVENTS, CF_KV, CF_LOG, CF_META, CF_RAFT};
use crate::codec::{ENVELOPE_VERSION, MAGIC};

/// The key of the directory's marker in the `meta` family: one raw byte, the envelope
/// version the directory is written in (raw, so that any build can read it).
pub(super) const FORMAT_KEY: &[u8] = b"format";

/// Checks the marker (writing it into a directory that has none: a new one, or one written
/// before the marker, which is version 1), then the envelope version of every value `open`
/// reads and of the first and last value of each family.
pub(super) fn check(db: &DB) -> Result<(), OpenError> {
    let path = db.path().display().to_string();
    let open_err = |e: rocksdb::Error| OpenError::Open {
        path: path.clone(),
        reason: e.to_string(),
    };
    let cf = |name: &str| {
        db.cf_handle(name).ok_or_else(|| OpenError::Corrupt {
            path: path.clone(),
            reason: format!("no column family {name}"),
        })
    };
    let meta = cf(CF_META)?;
    match db.get_cf(meta, FORMAT_KEY).map_err(open_err)? {
        Some(found) => match found.as_slice() {
            [v] if *v == ENVELOPE_VERSION => {}
            [v] => return Err(unsupported(&path, "a directory marker", *v)),
            other => {
                return Err(OpenError::Corrupt {
                    path: path.clone(),
                    reason: format!("the format marker is {} bytes, not 1", other.len()),
                })
            }
        },
        None => {
            let mut opts = rocksdb::WriteOptions::default();
            opts.set_sync(true);
            db.put_cf_opt(meta, FORMAT_KEY, [ENVELOPE_VERSION], &opts)
                .map_err(open_err)?;
        }
    }
    let singles: [(&str, &[u8]); 7] = [
        (CF_META, &b"meta"[..]),
        (CF_META, &b"applied"[..]),
        (CF_META, &b"membership"[..]),
        (CF_META, &b"snapshot"[..]),
        (CF_RAFT, &b"vote"[..]),
        (CF_RAFT, &b"committed"[..]),
        (CF_RAFT, &b"purged"[..]),
    ];
    for (family, key) in singles {
        if let Some(value) = db.get_cf(cf(family)?, key).map_err(open_err)? {
            let what = format!("the value {family}/{}", String::from_utf8_lossy(key));
            envelope(&path, &what, &value)?;
        }
    }
    for family in [CF_LOG, CF_KV, CF_EVENTS] {
        for (end, mode) in [("first", IteratorMode::Start), ("last", IteratorMode::End)] {
            if let Some(item) = db.iterator_cf(cf(family)?, mode).next() {
                let (_, value) = item.map_err(open_err)?;
                envelope(&path, &format!("the {end} value of {family}"), &value)?;
            }
        }
    }
    Ok(())
}

/// Refuses a value whose envelope names another version. (Other damage is left to the
/// decoder, which reports it when the value is read.)
fn envelope(path: &str, what: &str, value: &[u8]) -> Result<(), OpenError> {
    match value {
        [m0, m1, v, ..] if [*m0, *m1] == MAGIC && *v != ENVELOPE_VERSION => Err(unsupported(path, what, *v)),
        _ => Ok(()),
    }
}

fn unsupported(path: &str, what: &str, found: u8) -> OpenError {
    OpenError::UnsupportedVersion {
        path: path.to_string(),
        what: what.to_string(),
        found,
        supported: ENVELOPE_VERSION,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::propertystore::storage::Db;

    #[test]
    fn a_new_directory_is_marked_and_reopens() {
        let dir = tempfile::tempdir().unwrap();
        drop(Db::open(dir.path()).unwrap());
        let db = Db::open(dir.path()).unwrap();
        let marker = db.get_raw(CF_META, FORMAT_KEY).unwrap();
        assert_eq!(marker, Some(vec![ENVELOPE_VERSION]));
    }

    #[test]
    fn another_marker_or_value_version_is_refused_naming_both_versions() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(dir.path()).unwrap();
        db.db
            .put_cf(db.cf(CF_META), FORMAT_KEY, [ENVELOPE_VERSION + 1])
            .unwrap();
        let err = check(&db.db).unwrap_err();
        let text = err.to_string();
        assert!(
            matches!(err, OpenError::UnsupportedVersion { found, supported, .. }
                if found == ENVELOPE_VERSION + 1 && supported == ENVELOPE_VERSION),
            "{text}"
        );
        assert!(
            text.contains("format version 2") && text.contains("reads version 1"),
            "{text}"
        );

        db.db
            .put_cf(db.cf(CF_META), FORMAT_KEY, [ENVELOPE_VERSION])
            .unwrap();
        let mut value = crate::codec::encode(&7u64).unwrap();
        value[2] = 9;
        db.db.put_cf(db.cf(CF_KV), b"/a", &value).unwrap();
        let text = check(&db.db).unwrap_err().to_string();
        assert!(
            text.contains("value of kv") && text.contains("version 9"),
            "{text}"
        );
    }
}
