//! Application property store paths: `/a/b` in the application's view is
//! `/<cluster>/PROPERTYSTORE/a/b` in the store, and nothing an application names can land
//! outside that folder. Pure.

use super::ConfigError;

/// The longest application path accepted (the store's own limit leaves room for the prefix).
pub const MAX_APP_PATH_LEN: usize = 512;

fn bad(path: &str, reason: &str) -> ConfigError {
    ConfigError::InvalidPath {
        path: path.chars().take(80).collect(),
        reason: reason.to_string(),
    }
}

/// Checks an application path: `/` or `/seg[/seg…]`, no empty, `.` or `..` segments, no
/// control characters or backslashes.
pub fn validate_app_path(path: &str) -> Result<(), ConfigError> {
    if path.len() > MAX_APP_PATH_LEN {
        return Err(bad(
            path,
            &format!("{} bytes, the limit is {MAX_APP_PATH_LEN}", path.len()),
        ));
    }
    if !path.starts_with('/') {
        return Err(bad(
            path,
            "an application path starts with '/' (e.g. /myapp/settings)",
        ));
    }
    if path == "/" {
        return Ok(());
    }
    if path.ends_with('/') {
        return Err(bad(path, "an application path does not end with '/'"));
    }
    for segment in path[1..].split('/') {
        if segment.is_empty() {
            return Err(bad(path, "empty segment ('//')"));
        }
        if segment == "." || segment == ".." {
            return Err(bad(
                path,
                "'.' and '..' are not allowed: paths cannot leave the property store",
            ));
        }
        if segment.chars().any(|c| c.is_control() || c == '\\') {
            return Err(bad(path, "control characters and '\\' are not allowed"));
        }
    }
    Ok(())
}

/// Maps application paths to store keys under one root (`/<cluster>/PROPERTYSTORE`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppRoot {
    root: String,
}

impl AppRoot {
    /// The root of `cluster`'s application property store.
    pub fn new(cluster: &str) -> Self {
        AppRoot {
            root: crate::model::Layout::new(cluster).property_store(),
        }
    }

    /// The store key of an application path (validated).
    pub fn key(&self, path: &str) -> Result<String, ConfigError> {
        validate_app_path(path)?;
        Ok(if path == "/" {
            self.root.clone()
        } else {
            format!("{}{path}", self.root)
        })
    }

    /// The application path of a store key, if the key is in this store.
    pub fn app_path(&self, key: &str) -> Option<String> {
        let rest = key.strip_prefix(&self.root)?;
        if rest.is_empty() {
            Some("/".into())
        } else if rest.starts_with('/') {
            Some(rest.to_string())
        } else {
            None
        }
    }

    /// Whether a store key is `path`'s key (or, with `subtree`, one of its descendants).
    pub fn covers(&self, path_key: &str, subtree: bool, key: &str) -> bool {
        key == path_key
            || (subtree
                && key
                    .strip_prefix(path_key)
                    .is_some_and(|rest| rest.starts_with('/') || path_key.ends_with('/')))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn application_paths_map_under_the_clusters_property_store() {
        let root = AppRoot::new("C");
        assert_eq!(root.key("/").unwrap(), "/C/PROPERTYSTORE");
        assert_eq!(root.key("/app/x").unwrap(), "/C/PROPERTYSTORE/app/x");
        assert_eq!(root.app_path("/C/PROPERTYSTORE/app/x").as_deref(), Some("/app/x"));
        assert_eq!(root.app_path("/C/PROPERTYSTORE").as_deref(), Some("/"));
        assert_eq!(root.app_path("/C/PROPERTYSTOREX/a"), None);
        assert_eq!(root.app_path("/C/CONFIGS/CLUSTER/C"), None);
    }

    #[test]
    fn paths_that_could_escape_or_are_malformed_are_refused_with_a_reason() {
        for (bad, why) in [
            ("", "starts with '/'"),
            ("app/x", "starts with '/'"),
            ("/app/", "does not end with '/'"),
            ("/a//b", "empty segment"),
            ("/..", "cannot leave"),
            ("/a/../../CONFIGS", "cannot leave"),
            ("/a/./b", "cannot leave"),
            ("/a\\b", "'\\'"),
            ("/a\nb", "control"),
        ] {
            let e = validate_app_path(bad).unwrap_err();
            assert!(e.is_usage());
            assert!(e.to_string().contains(why), "{bad:?}: {e}");
        }
        assert!(validate_app_path(&format!("/{}", "a".repeat(600))).is_err());
        assert!(validate_app_path("/a/b.c/..d").is_ok());
    }

    #[test]
    fn a_subtree_covers_descendants_but_not_siblings_with_a_common_prefix() {
        let root = AppRoot::new("C");
        let k = root.key("/a").unwrap();
        assert!(root.covers(&k, false, "/C/PROPERTYSTORE/a"));
        assert!(!root.covers(&k, false, "/C/PROPERTYSTORE/a/b"));
        assert!(root.covers(&k, true, "/C/PROPERTYSTORE/a/b"));
        assert!(!root.covers(&k, true, "/C/PROPERTYSTORE/ab"));
    }
}
