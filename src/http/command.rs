//! helix-rest's write commands (`POST …?command=NAME`) and their JSON bodies, parsed
//! without I/O: an unknown command or a malformed body is a 400 with the accepted names.

use serde::Deserialize;

use super::error::ApiError;

/// `POST /admin/v2/clusters/{c}?command=…`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClusterCommand {
    /// Resume a paused cluster.
    Enable,
    /// Pause the cluster (no transitions are sent).
    Disable,
    /// Maintenance on; the body (text or `{"reason": …}`) is the reason.
    EnableMaintenanceMode,
    /// Maintenance off.
    DisableMaintenanceMode,
}

/// `POST /admin/v2/clusters/{c}/instances/{i}?command=…`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InstanceCommand {
    /// `HELIX_ENABLED=true`.
    Enable,
    /// `HELIX_ENABLED=false`.
    Disable,
    /// Reset ERROR replicas named by the body (`{"resource", "partitions"}`; no partitions:
    /// every ERROR replica of the instance).
    Reset,
    /// Enable partitions named by the body.
    EnablePartitions,
    /// Disable partitions named by the body.
    DisablePartitions,
    /// Add the body's `instanceTags`.
    AddInstanceTag,
    /// Remove the body's `instanceTags`.
    RemoveInstanceTag,
}

/// `POST /admin/v2/clusters/{c}/resources/{r}?command=…`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResourceCommand {
    /// `HELIX_ENABLED=true` in the ideal state.
    Enable,
    /// `HELIX_ENABLED=false` in the ideal state.
    Disable,
    /// helix-admin's `--rebalance` with `?replicas=N` (and `&instanceGroupTag=T`).
    Rebalance,
    /// Reset every ERROR replica of the resource.
    Reset,
}

const CLUSTER: &[(&str, ClusterCommand)] = &[
    ("enable", ClusterCommand::Enable),
    ("disable", ClusterCommand::Disable),
    ("enableMaintenanceMode", ClusterCommand::EnableMaintenanceMode),
    ("disableMaintenanceMode", ClusterCommand::DisableMaintenanceMode),
];

const INSTANCE: &[(&str, InstanceCommand)] = &[
    ("enable", InstanceCommand::Enable),
    ("disable", InstanceCommand::Disable),
    ("reset", InstanceCommand::Reset),
    ("enablePartitions", InstanceCommand::EnablePartitions),
    ("disablePartitions", InstanceCommand::DisablePartitions),
    ("addInstanceTag", InstanceCommand::AddInstanceTag),
    ("removeInstanceTag", InstanceCommand::RemoveInstanceTag),
];

const RESOURCE: &[(&str, ResourceCommand)] = &[
    ("enable", ResourceCommand::Enable),
    ("disable", ResourceCommand::Disable),
    ("rebalance", ResourceCommand::Rebalance),
    ("reset", ResourceCommand::Reset),
];

fn lookup<T: Copy>(what: &str, name: Option<&str>, table: &[(&str, T)]) -> Result<T, ApiError> {
    let accepted = || table.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ");
    let Some(name) = name else {
        return Err(ApiError::bad(format!(
            "a {what} write needs ?command= (one of: {})",
            accepted()
        )));
    };
    table
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, c)| *c)
        .ok_or_else(|| {
            ApiError::bad(format!(
                "unknown {what} command {name:?} (one of: {})",
                accepted()
            ))
        })
}

impl ClusterCommand {
    /// Parses `?command=`.
    pub fn parse(name: Option<&str>) -> Result<Self, ApiError> {
        lookup("cluster", name, CLUSTER)
    }
}

impl InstanceCommand {
    /// Parses `?command=`.
    pub fn parse(name: Option<&str>) -> Result<Self, ApiError> {
        lookup("instance", name, INSTANCE)
    }
}

impl ResourceCommand {
    /// Parses `?command=`.
    pub fn parse(name: Option<&str>) -> Result<Self, ApiError> {
        lookup("resource", name, RESOURCE)
    }
}

/// The body of `reset`, `enablePartitions` and `disablePartitions`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartitionsBody {
    /// The resource.
    pub resource: String,
    /// The partitions (may be empty for `reset`: every ERROR replica of the resource).
    #[serde(default)]
    pub partitions: Vec<String>,
}

/// The body of `addInstanceTag` and `removeInstanceTag`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TagsBody {
    /// The tags.
    #[serde(rename = "instanceTags")]
    pub instance_tags: Vec<String>,
}

/// Parses a JSON body into `T`, or a 400 that says what is wrong with it.
pub fn body<T: serde::de::DeserializeOwned>(text: &str, shape: &str) -> Result<T, ApiError> {
    if text.trim().is_empty() {
        return Err(ApiError::bad(format!("this command needs a JSON body: {shape}")));
    }
    serde_json::from_str(text).map_err(|e| ApiError::bad(format!("body: {e} (expected {shape})")))
}

/// The maintenance reason: a JSON string, `{"reason": …}`, or plain text (Helix takes the
/// body as the reason); empty when there is no body.
pub fn maintenance_reason(text: &str) -> String {
    let t = text.trim();
    match serde_json::from_str::<serde_json::Value>(t) {
        Ok(serde_json::Value::String(s)) => s,
        Ok(serde_json::Value::Object(o)) => {
            o.get("reason").and_then(|v| v.as_str()).unwrap_or("").to_string()
        }
        _ => t.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_parse_by_helix_names_and_unknown_ones_list_the_accepted() {
        assert_eq!(
            InstanceCommand::parse(Some("disable")),
            Ok(InstanceCommand::Disable)
        );
        assert_eq!(
            ClusterCommand::parse(Some("enableMaintenanceMode")),
            Ok(ClusterCommand::EnableMaintenanceMode)
        );
        assert_eq!(
            ResourceCommand::parse(Some("rebalance")),
            Ok(ResourceCommand::Rebalance)
        );
        let err = InstanceCommand::parse(Some("explode")).unwrap_err();
        assert!(err.to_string().contains("explode") && err.to_string().contains("enablePartitions"));
        assert!(ClusterCommand::parse(None)
            .unwrap_err()
            .to_string()
            .contains("?command="));
    }

    #[test]
    fn bodies_are_checked_and_bad_ones_say_what_was_expected() {
        let b: PartitionsBody = body(r#"{"resource":"db","partitions":["db_0"]}"#, "x").unwrap();
        assert_eq!(b.partitions, vec!["db_0".to_string()]);
        assert!(body::<PartitionsBody>("", "{resource}")
            .unwrap_err()
            .to_string()
            .contains("{resource}"));
        assert!(body::<PartitionsBody>(r#"{"resorce":"db"}"#, "x").is_err());
        assert!(body::<TagsBody>("[1,2", "x").is_err());
    }

    #[test]
    fn the_maintenance_reason_is_taken_from_text_or_json() {
        assert_eq!(maintenance_reason("upgrade"), "upgrade");
        assert_eq!(maintenance_reason(r#"{"reason":"disk"}"#), "disk");
        assert_eq!(maintenance_reason(r#""quoted""#), "quoted");
        assert_eq!(maintenance_reason(""), "");
    }
}
