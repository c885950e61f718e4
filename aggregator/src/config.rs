//! The aggregator's typed configuration, validated as a whole before any I/O.

use std::{
    num::NonZeroU32,
    path::{Path, PathBuf},
};

use serde::{Deserialize, Serialize};
use store::{ClickHouseConfig, ConfigProblem, LoadError, Seconds};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub clickhouse: ClickHouseConfig,
    #[serde(default)]
    pub salts: SaltsConfig,
    #[serde(default)]
    pub retention: RetentionConfig,
    #[serde(default)]
    pub run: RunConfig,
    #[serde(default)]
    pub privacy: PrivacyConfig,
    #[serde(default)]
    pub cluster: ClusterConfig,
}

/// The nodes of the cluster (`[clickhouse] cluster`), which the aggregator reaches one by one
/// for the operations ClickHouse 18.16 cannot forward ([`crate::Partitions`]).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterConfig {
    /// The HTTP URL of every node, as `[clickhouse] url` is written; required on a cluster.
    pub nodes: Vec<String>,
}

/// Data-subject requests and the analysts' minimum group size.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PrivacyConfig {
    /// Rollup groups (a page, a channel, a city, ... on one day, or one hour) with fewer
    /// distinct visitors than this are left out of what analysts see (k-anonymity's k).
    pub min_group_size: u32,
    /// Days of rollups recomputed on every pass (today and the days before it).
    pub rollup_days: u16,
    /// File with the secret (at least 32 bytes); takes precedence over `cookie_key_env`.
    pub cookie_key_file: Option<PathBuf>,
    /// Environment variable with the secret.
    pub cookie_key_env: String,
}

impl Default for PrivacyConfig {
    fn default() -> Self {
        Self {
            min_group_size: 5,
            rollup_days: 2,
            cookie_key_file: None,
            cookie_key_env: "WEBSTATS_COOKIE_KEY".to_owned(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SaltsConfig {
    /// Length of one salt period, in seconds: whole days, 1 to 7. Periods start at multiples
    /// of it since the Unix epoch, so the default is one UTC day.
    pub rotation_period_s: u32,
    /// How long a salt is kept after its period ends, in seconds; then it is deleted from
    /// ClickHouse and nobody can recompute that period's visitor ids. The default keeps
    /// today's and yesterday's salts only.
    pub grace_period_s: u32,
}

impl Default for SaltsConfig {
    fn default() -> Self {
        Self { rotation_period_s: 86_400, grace_period_s: 86_400 }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetentionConfig {
    /// Days of audience events kept (whole daily partitions are dropped after that):
    /// about 13 months by default.
    pub audience_days: NonZeroU32,
    /// Days of troubleshooting events kept.
    pub troubleshooting_days: NonZeroU32,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        Self {
            audience_days: NonZeroU32::new(396).expect("non-zero"),
            troubleshooting_days: NonZeroU32::new(14).expect("non-zero"),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RunConfig {
    /// `aggregator run`: seconds between passes of salt rotation and retention.
    pub interval_s: Seconds,
}

impl Default for RunConfig {
    fn default() -> Self {
        Self { interval_s: Seconds::new(300) }
    }
}

impl Config {
    pub fn load(path: &Path) -> Result<Self, LoadError> {
        store::load_toml(path, "aggregator", |config: &mut Config| {
            if let Some(file) = &mut config.privacy.cookie_key_file
                && file.is_relative()
            {
                *file = path.parent().unwrap_or(Path::new(".")).join(&*file);
            }
            config.problems()
        })
    }

    /// Where `DROP PARTITION` goes: `client`'s server, or each node of the cluster, as the same
    /// user.
    pub fn partitions(&self, client: &clickhouse::Client) -> crate::Partitions {
        let nodes = self
            .cluster
            .nodes
            .iter()
            .map(|url| {
                ClickHouseConfig { url: url.clone(), ..self.clickhouse.clone() }.client(clickhouse::Compression::None)
            })
            .collect();
        crate::Partitions::new(client.clone(), nodes)
    }

    pub fn problems(&self) -> Vec<ConfigProblem> {
        let mut problems = Vec::new();
        self.clickhouse.validate(&mut problems);
        match (self.clickhouse.cluster(), self.cluster.nodes.is_empty()) {
            (Some(_), true) => {
                problems.push(ConfigProblem::new("cluster.nodes", "a cluster needs the URL of every node"))
            }
            (None, false) => problems.push(ConfigProblem::new("cluster.nodes", "set only with [clickhouse] cluster")),
            _ => {}
        }
        for url in &self.cluster.nodes {
            let mut node = Vec::new();
            ClickHouseConfig { url: url.clone(), ..ClickHouseConfig::default() }.validate(&mut node);
            for problem in node.into_iter().filter(|p| p.key == "clickhouse.url") {
                problems.push(ConfigProblem::new("cluster.nodes", format!("{url:?}: {}", problem.message)));
            }
        }
        let period = self.salts.rotation_period_s;
        // Whole days: salts are partitioned by the day their period starts, and deleting a
        // salt drops its partition, which must hold no other period.
        if period == 0 || !period.is_multiple_of(86_400) || period > 7 * 86_400 {
            problems.push(ConfigProblem::new("salts.rotation_period_s", "must be whole days (86400 x 1 to 7)"));
        }
        if self.salts.grace_period_s > 31 * 86_400 {
            problems.push(ConfigProblem::new("salts.grace_period_s", "must be at most 31 days"));
        }
        if self.privacy.min_group_size < 2 {
            problems.push(ConfigProblem::new("privacy.min_group_size", "must be at least 2"));
        }
        if !(1..=31).contains(&self.privacy.rollup_days) {
            problems.push(ConfigProblem::new("privacy.rollup_days", "must be between 1 and 31"));
        }
        if self.run.interval_s.get() > 3_600 {
            problems.push(ConfigProblem::new("run.interval_s", "must be at most 3600"));
        }
        problems
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        let c: Config = toml::from_str("").unwrap();
        assert!(c.problems().is_empty());
        assert_eq!(c.salts.rotation_period_s, 86_400);
    }

    #[test]
    fn rejects_periods_that_are_not_whole_days() {
        for bad in [0, 3_600, 7_000, 8 * 86_400] {
            let c: Config = toml::from_str(&format!("[salts]\nrotation_period_s = {bad}\n")).unwrap();
            assert_eq!(c.problems()[0].key, "salts.rotation_period_s", "{bad}");
        }
    }

    #[test]
    fn reports_every_bad_lifecycle_value() {
        let text = "[retention]\naudience_days = 0\ntroubleshooting_days = 0\n[run]\ninterval_s = 0\n\
                    [privacy]\nmin_group_size = 1\n";
        let (config, mut problems) = store::parse_toml::<Config>(text).unwrap();
        problems.extend(config.unwrap().problems());
        let keys: Vec<_> = problems.into_iter().map(|p| p.key).collect();
        assert_eq!(
            keys,
            ["retention.audience_days", "retention.troubleshooting_days", "run.interval_s", "privacy.min_group_size"]
        );
    }

    #[test]
    fn the_reference_lists_every_key_and_no_other() {
        let keys = store::reference::keys(&serde_json::to_value(Config::default()).unwrap());
        let reference = include_str!("../../docs/configuration.md");
        assert_eq!(store::reference::documented(reference, "Aggregator"), keys, "docs/configuration.md, Aggregator");
    }
}
