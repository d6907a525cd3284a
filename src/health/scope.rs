//! Where a sample was measured ([`Scope`]) and the groups aggregates are kept for
//! ([`Group`]): a sample of instance `i` about partition `p` of resource `r` counts for
//! `INSTANCE=i`, `RESOURCE=r` and `RESOURCE=r,PARTITION=p`.

use std::fmt;

use super::HealthError;

/// What a sample is about, besides the instance that reports it.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Scope {
    /// The resource, if the sample is about one.
    pub resource: Option<String>,
    /// The partition (of `resource`), if the sample is about one.
    pub partition: Option<String>,
}

impl Scope {
    /// The instance as a whole.
    pub fn instance() -> Self {
        Scope::default()
    }

    /// One resource on the instance.
    pub fn resource(resource: impl Into<String>) -> Self {
        Scope {
            resource: Some(resource.into()),
            partition: None,
        }
    }

    /// One partition of a resource on the instance.
    pub fn partition(resource: impl Into<String>, partition: impl Into<String>) -> Self {
        Scope {
            resource: Some(resource.into()),
            partition: Some(partition.into()),
        }
    }

    /// Checks the names: single path segments without `,`, `=`, `[`, `]`, `*`, spaces or
    /// control characters; a partition needs its resource.
    pub fn validate(&self) -> Result<(), HealthError> {
        if self.partition.is_some() && self.resource.is_none() {
            return Err(HealthError::invalid("scope", "a partition needs its resource"));
        }
        for (kind, name) in [("resource", &self.resource), ("partition", &self.partition)] {
            if let Some(n) = name {
                validate_scope_name(kind, n)?;
            }
        }
        Ok(())
    }

    /// The groups a sample of `instance` in this scope counts for.
    pub fn groups(&self, instance: &str) -> Vec<Group> {
        let mut out = vec![Group::Instance(instance.to_string())];
        if let Some(r) = &self.resource {
            out.push(Group::Resource(r.clone()));
            if let Some(p) = &self.partition {
                out.push(Group::Partition {
                    resource: r.clone(),
                    partition: p.clone(),
                });
            }
        }
        out
    }
}

/// Checks an instance, resource or partition name as it appears in a scope.
pub fn validate_scope_name(kind: &str, name: &str) -> Result<(), HealthError> {
    let bad = |reason: &str| HealthError::invalid(format!("{kind} name {name:?}"), reason);
    if name.is_empty() {
        return Err(bad("cannot be empty"));
    }
    if name.len() > 255 {
        return Err(bad("has at most 255 bytes"));
    }
    if name
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '/' | ',' | '=' | '[' | ']' | '*'))
    {
        return Err(bad(
            "cannot contain spaces, control characters or any of / , = [ ] *",
        ));
    }
    Ok(())
}

/// What a group is of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum GroupKind {
    /// One instance (every sample it reports).
    Instance,
    /// One resource (every instance's samples about it).
    Resource,
    /// One partition (every instance's samples about it).
    Partition,
}

/// The unit an aggregate is kept for.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Group {
    /// `INSTANCE=i`.
    Instance(String),
    /// `RESOURCE=r`.
    Resource(String),
    /// `RESOURCE=r,PARTITION=p`.
    Partition {
        /// The resource.
        resource: String,
        /// The partition.
        partition: String,
    },
}

impl Group {
    /// What it is a group of.
    pub fn kind(&self) -> GroupKind {
        match self {
            Group::Instance(_) => GroupKind::Instance,
            Group::Resource(_) => GroupKind::Resource,
            Group::Partition { .. } => GroupKind::Partition,
        }
    }

    /// Parses what [`fmt::Display`] prints.
    pub fn parse(text: &str) -> Option<Group> {
        if let Some(i) = text.strip_prefix("INSTANCE=") {
            return (!i.is_empty()).then(|| Group::Instance(i.to_string()));
        }
        let rest = text.strip_prefix("RESOURCE=")?;
        match rest.split_once(",PARTITION=") {
            Some((r, p)) if !r.is_empty() && !p.is_empty() => Some(Group::Partition {
                resource: r.to_string(),
                partition: p.to_string(),
            }),
            Some(_) => None,
            None => (!rest.is_empty()).then(|| Group::Resource(rest.to_string())),
        }
    }
}

impl fmt::Display for Group {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Group::Instance(i) => write!(f, "INSTANCE={i}"),
            Group::Resource(r) => write!(f, "RESOURCE={r}"),
            Group::Partition { resource, partition } => {
                write!(f, "RESOURCE={resource},PARTITION={partition}")
            }
        }
    }
}

/// Whether `name` matches `pattern`, where `*` stands for any run of characters
/// (possibly empty) and everything else for itself.
pub fn wildcard_match(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    // Greedy matching with backtracking to the last star: linear in practice.
    let (mut pi, mut ni) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ni));
            pi += 1;
        } else if pi < p.len() && p[pi] == n[ni] {
            pi += 1;
            ni += 1;
        } else if let Some((sp, sn)) = star {
            pi = sp + 1;
            ni = sn + 1;
            star = Some((sp, sn + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_partition_sample_counts_for_its_instance_resource_and_partition() {
        let g = Scope::partition("db", "db_3").groups("i1");
        assert_eq!(
            g,
            vec![
                Group::Instance("i1".into()),
                Group::Resource("db".into()),
                Group::Partition {
                    resource: "db".into(),
                    partition: "db_3".into()
                }
            ]
        );
        assert_eq!(Scope::instance().groups("i1"), vec![Group::Instance("i1".into())]);
    }

    #[test]
    fn groups_print_and_parse_back() {
        for g in [
            Group::Instance("localhost_12913".into()),
            Group::Resource("db".into()),
            Group::Partition {
                resource: "db".into(),
                partition: "db_0".into(),
            },
        ] {
            assert_eq!(Group::parse(&g.to_string()), Some(g.clone()), "{g}");
        }
        for bad in ["", "INSTANCE=", "RESOURCE=", "RESOURCE=a,PARTITION=", "HOST=x"] {
            assert_eq!(Group::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn wildcards_match_runs_of_characters() {
        assert!(wildcard_match("*", ""));
        assert!(wildcard_match("*", "anything"));
        assert!(wildcard_match("db_*", "db_12"));
        assert!(!wildcard_match("db_*", "xdb_12"));
        assert!(wildcard_match("*_1*", "db_12"));
        assert!(wildcard_match("a*b*c", "aXXbYYc"));
        assert!(!wildcard_match("a*b*c", "aXXbYY"));
        assert!(wildcard_match("localhost_12913", "localhost_12913"));
        assert!(!wildcard_match("localhost_1291", "localhost_12913"));
    }

    #[test]
    fn scope_names_are_checked() {
        assert!(Scope::partition("db", "db_1").validate().is_ok());
        assert!(Scope {
            resource: None,
            partition: Some("p".into())
        }
        .validate()
        .is_err());
        for bad in ["", "a,b", "a=b", "a b", "x*", "a/b"] {
            assert!(Scope::resource(bad).validate().is_err(), "{bad:?}");
        }
    }
}
