//! Health: alert rules (`ALERTS`) and stats (`STATS`) an operator adds and removes, and
//! what the leading controller made of the participants' reports (`PERSISTENTSTATS`,
//! `ALERT_STATUS`, `ALERT_HISTORY`), read back for `strand admin health` and `alert ls`.
//!
//! A rule is stored under its canonical text (`AVG(latency_ms)[RESOURCE=*] > 50`), so the
//! same rule written differently is one rule; removing accepts any spelling of it.

use serde::Serialize;

use crate::health::records::{self, HistoryEntry};
use crate::health::{Rule, StatSpec};
use crate::model::{Layout, Record};

use super::records::Guard;
use super::{layout, Admin, AdminError};

const RULE_KIND: &str = "alert rule";
const STAT_KIND: &str = "stat";

/// One aggregate, as `strand admin health` prints it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AggregateRow {
    /// The stat spec (`AVG(latency_ms)`).
    pub stat: String,
    /// The group (`RESOURCE=db`).
    pub scope: String,
    /// The value.
    pub value: f64,
    /// Samples (SUM/AVG) or observations (EXPONENTIAL/WINDOW) behind it.
    pub count: u64,
    /// When it last changed (ms since the Unix epoch).
    pub updated_ms: u64,
}

/// One (rule, group) that fires.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FiringRow {
    /// The rule.
    pub rule: String,
    /// The group.
    pub scope: String,
    /// The aggregate's latest value.
    pub value: f64,
    /// Since when (ms since the Unix epoch).
    pub since_ms: u64,
}

/// A configured alert rule and what of it fires.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AlertInfo {
    /// The rule's text.
    pub rule: String,
    /// Why the stored text is not a rule (a record edited by hand), if it is not.
    pub invalid: Option<String>,
    /// Its groups that fire.
    pub firing: Vec<FiringRow>,
}

/// Everything `strand admin health` shows.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HealthOverview {
    /// The cluster.
    pub cluster: String,
    /// The aggregates.
    pub aggregates: Vec<AggregateRow>,
    /// The alert rules with what fires.
    pub alerts: Vec<AlertInfo>,
    /// The configured stats (the rules' are aggregated too).
    pub stats: Vec<String>,
    /// The last alert transitions, oldest first.
    pub history: Vec<HistoryEntry>,
}

fn parse_rule(text: &str) -> Result<Rule, AdminError> {
    Rule::parse(text).map_err(|e| AdminError::invalid("alert rule", e.to_string()))
}

fn parse_stat(text: &str) -> Result<StatSpec, AdminError> {
    StatSpec::parse(text).map_err(|e| AdminError::invalid("stat", e.to_string()))
}

/// The keys an entry may be stored under: its canonical text first, then as given.
fn spellings(given: &str, canonical: Option<String>) -> Vec<String> {
    let mut keys: Vec<String> = canonical.into_iter().collect();
    keys.push(given.trim().to_string());
    keys
}

impl Admin {
    async fn add_health_key(&self, l: &Layout, path: &str, kind: &str, key: &str) -> Result<(), AdminError> {
        let now = self.now_ms();
        let exists = || AdminError::HealthKeyExists {
            cluster: l.cluster().to_string(),
            kind: kind.to_string(),
            key: key.to_string(),
        };
        let id = path.rsplit('/').next().unwrap_or(path).to_string();
        self.update(
            path,
            || vec![Guard::cluster(l)],
            |current| {
                let mut r = current.unwrap_or_else(|| Record::new(id.clone()));
                if !records::add_key(&mut r, key, now) {
                    return Err(exists());
                }
                Ok(Some(r))
            },
        )
        .await
        .map(drop)
    }

    async fn remove_health_key(
        &self,
        l: &Layout,
        path: &str,
        kind: &str,
        keys: &[String],
    ) -> Result<(), AdminError> {
        let missing = || AdminError::HealthKeyNotFound {
            cluster: l.cluster().to_string(),
            kind: kind.to_string(),
            key: keys.first().cloned().unwrap_or_default(),
        };
        let result = self
            .update_existing(
                path,
                || vec![Guard::cluster(l)],
                missing,
                |r| {
                    let removed = keys.iter().any(|k| r.map_fields.remove(k).is_some());
                    if removed {
                        Ok(true)
                    } else {
                        Err(missing())
                    }
                },
            )
            .await;
        match result {
            Err(AdminError::HealthKeyNotFound { .. }) => {
                self.require_cluster(l).await?;
                result.map(drop)
            }
            other => other.map(drop),
        }
    }

    /// Adds an alert rule (`AVG(latency_ms)[RESOURCE=*] > 50`); returns it parsed. The
    /// leading controller evaluates it from its next tick on.
    pub async fn add_alert(&self, cluster: &str, rule: &str) -> Result<Rule, AdminError> {
        let l = layout(cluster)?;
        let parsed = parse_rule(rule)?;
        self.add_health_key(&l, &l.alerts(), RULE_KIND, &parsed.text())
            .await?;
        Ok(parsed)
    }

    /// Adds a stat to aggregate besides the rules' (`WINDOW(5)(latency_ms)`; Helix's
    /// `--addStat`).
    pub async fn add_stat(&self, cluster: &str, stat: &str) -> Result<StatSpec, AdminError> {
        let l = layout(cluster)?;
        let spec = parse_stat(stat)?;
        self.add_health_key(&l, &l.stats(), STAT_KIND, &spec.to_string())
            .await?;
        Ok(spec)
    }

    /// Removes an alert rule, given in any spelling that parses to it (or exactly as
    /// stored); what it fired clears at the controller's next tick.
    pub async fn remove_alert(&self, cluster: &str, rule: &str) -> Result<(), AdminError> {
        let l = layout(cluster)?;
        let keys = spellings(rule, Rule::parse(rule).ok().map(|r| r.text()));
        self.remove_health_key(&l, &l.alerts(), RULE_KIND, &keys).await
    }

    /// Removes a stat (Helix's `--dropStat`), in any spelling.
    pub async fn remove_stat(&self, cluster: &str, stat: &str) -> Result<(), AdminError> {
        let l = layout(cluster)?;
        let keys = spellings(stat, StatSpec::parse(stat).ok().map(|s| s.to_string()));
        self.remove_health_key(&l, &l.stats(), STAT_KIND, &keys).await
    }

    /// The alert rules and what of each fires.
    pub async fn list_alerts(&self, cluster: &str) -> Result<Vec<AlertInfo>, AdminError> {
        Ok(self.health(cluster).await?.alerts)
    }

    /// The aggregates, rules, stats and recent alert transitions of a cluster.
    pub async fn health(&self, cluster: &str) -> Result<HealthOverview, AdminError> {
        let l = layout(cluster)?;
        self.require_cluster(&l).await?;
        let alerts = self.record(&l.alerts()).await?;
        let stats = self.record(&l.stats()).await?;
        let aggregates = self.record(&l.persistent_stats()).await?;
        let status = self.record(&l.alert_status()).await?;
        let history = self.record(&l.alert_history()).await?;
        Ok(overview(
            cluster,
            alerts.as_ref(),
            stats.as_ref(),
            aggregates.as_ref(),
            status.as_ref(),
            history.as_ref(),
        ))
    }
}

/// A firing (rule, group) as shown.
pub(crate) fn firing_row(f: &crate::health::Firing) -> FiringRow {
    FiringRow {
        rule: f.rule.clone(),
        scope: f.group.to_string(),
        value: f.value,
        since_ms: f.since_ms,
    }
}

/// The overview from the five records (pure).
fn overview(
    cluster: &str,
    alerts: Option<&Record>,
    stats: Option<&Record>,
    aggregates: Option<&Record>,
    status: Option<&Record>,
    history: Option<&Record>,
) -> HealthOverview {
    let aggregates = records::decode_aggregates(aggregates)
        .entries
        .into_iter()
        .map(|((spec, group), a)| AggregateRow {
            stat: spec.to_string(),
            scope: group.to_string(),
            value: a.value,
            count: a.count,
            updated_ms: a.updated_ms,
        })
        .collect();
    let status = records::decode_status(status);
    let alerts = records::rules(alerts)
        .into_iter()
        .map(|r| {
            let (rule, invalid) = match r {
                Ok(r) => (r.text(), None),
                Err((text, e)) => (text, Some(e.to_string())),
            };
            let firing = status
                .firing
                .values()
                .filter(|f| f.rule == rule)
                .map(firing_row)
                .collect();
            AlertInfo {
                rule,
                invalid,
                firing,
            }
        })
        .collect();
    HealthOverview {
        cluster: cluster.to_string(),
        aggregates,
        alerts,
        stats: records::stats(stats).iter().map(ToString::to_string).collect(),
        history: records::history(history),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::decide::{decide, Inputs, State};
    use crate::health::report::{Report, Sample};
    use crate::health::Scope;

    #[test]
    fn the_overview_shows_aggregates_rules_with_what_fires_and_history() {
        let mut alerts = Record::new("ALERTS");
        records::add_key(&mut alerts, "AVG(lat)[RESOURCE=*] > 50", 1);
        records::add_key(&mut alerts, "AVG(lat)[INSTANCE=*] > 500", 1);
        records::add_key(&mut alerts, "broken", 1);
        let rules: Vec<Rule> = records::rules(Some(&alerts))
            .into_iter()
            .filter_map(Result::ok)
            .collect();
        let d = decide(
            &Inputs {
                reports: vec![Report {
                    instance: "i1".into(),
                    samples: vec![Sample {
                        stat: "lat".into(),
                        scope: Scope::resource("db"),
                        value: 80.0,
                        count: 1,
                        updated_ms: 5,
                    }],
                }],
                rules,
                stats: vec![],
                now_ms: 5,
            },
            &State::default(),
        );
        let o = overview(
            "C",
            Some(&alerts),
            None,
            d.writes.aggregates.as_ref(),
            d.writes.status.as_ref(),
            d.writes.history.as_ref(),
        );
        assert_eq!(o.aggregates.len(), 2);
        assert!(o
            .aggregates
            .iter()
            .any(|a| a.scope == "RESOURCE=db" && a.value == 80.0));
        let fires = o
            .alerts
            .iter()
            .find(|a| a.rule == "AVG(lat)[RESOURCE=*] > 50")
            .unwrap();
        assert_eq!(fires.firing.len(), 1);
        assert_eq!(fires.firing[0].scope, "RESOURCE=db");
        let quiet = o
            .alerts
            .iter()
            .find(|a| a.rule == "AVG(lat)[INSTANCE=*] > 500")
            .unwrap();
        assert!(quiet.firing.is_empty() && quiet.invalid.is_none());
        assert!(o.alerts.iter().any(|a| a.rule == "broken" && a.invalid.is_some()));
        assert_eq!(o.history.len(), 1);
        assert_eq!(o.history[0].event, "FIRED");
    }
}
