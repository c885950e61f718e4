//! The aggregator's typed configuration, validated as a whole before any I/O.

use std::path::Path;

use serde::Deserialize;
use store::{ClickHouseConfig, ConfigProblem, LoadError};

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub clickhouse: ClickHouseConfig,
    #[serde(default)]
    pub salts: SaltsConfig,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SaltsConfig {
    /// Length of one salt period, in seconds; periods start at multiples of it since the Unix
    /// epoch (so the default is one UTC day). Must divide a day or be whole days.
    pub rotation_period_s: u32,
}

impl Default for SaltsConfig {
    fn default() -> Self {
        Self { rotation_period_s: 86_400 }
    }
}

impl Config {
    pub fn load(path: &Path) -> Result<Self, LoadError> {
        let config: Config = store::load_toml(path, "aggregator")?;
        store::check_config(path, config.problems())?;
        Ok(config)
    }

    pub fn problems(&self) -> Vec<ConfigProblem> {
        let mut problems = Vec::new();
        self.clickhouse.validate(&mut problems);
        let period = self.salts.rotation_period_s;
        let fits_a_day = period >= 3_600 && (86_400 % period == 0 || period % 86_400 == 0);
        if !fits_a_day || period > 7 * 86_400 {
            problems.push(ConfigProblem::new(
                "salts.rotation_period_s",
                "must be at least 3600, divide 86400 or be whole days, and at most 7 days",
            ));
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
    fn rejects_periods_that_do_not_tile_days() {
        let c: Config = toml::from_str("[salts]\nrotation_period_s = 7000\n").unwrap();
        assert_eq!(c.problems()[0].key, "salts.rotation_period_s");
    }
}
