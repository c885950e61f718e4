use std::{
    num::NonZeroU64,
    path::{Path, PathBuf},
    time::Duration,
};

use serde::{Deserialize, Serialize};

/// A positive number of milliseconds: the value of a `*_ms` key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "u64", into = "u64")]
pub struct Millis(NonZeroU64);

/// A positive number of seconds: the value of a `*_s` key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "u64", into = "u64")]
pub struct Seconds(NonZeroU64);

macro_rules! duration_unit {
    ($unit:ident, $from:path) => {
        impl $unit {
            /// `n`, which must not be 0 (checked at compile time in a `const`).
            pub const fn new(n: u64) -> Self {
                match NonZeroU64::new(n) {
                    Some(n) => Self(n),
                    None => panic!("a duration must be above 0"),
                }
            }

            pub fn get(self) -> u64 {
                self.0.get()
            }

            pub fn duration(self) -> Duration {
                $from(self.0.get())
            }
        }

        impl TryFrom<u64> for $unit {
            type Error = &'static str;

            fn try_from(n: u64) -> Result<Self, Self::Error> {
                NonZeroU64::new(n).map(Self).ok_or("must be above 0")
            }
        }

        impl From<$unit> for u64 {
            fn from(d: $unit) -> u64 {
                d.get()
            }
        }
    };
}

duration_unit!(Millis, Duration::from_millis);
duration_unit!(Seconds, Duration::from_secs);

/// Where ClickHouse is and how to reach it; the `[clickhouse]` table of both binaries' configs.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClickHouseConfig {
    /// Base URL of the ClickHouse HTTP interface.
    #[serde(default = "defaults::url")]
    pub url: String,
    /// ClickHouse user name.
    #[serde(default = "defaults::user")]
    pub user: String,
    /// Name of an environment variable holding the password (passwords never live in the file).
    #[serde(default)]
    pub password_env: Option<String>,
    /// Prefix of the database names (`<prefix>_audience`, `_troubleshooting`, `_meta`, `_admin`,
    /// `_ingest`, `_stage`, `_rollups`) and of the role users. Lower-case letters, digits, `_`.
    #[serde(default = "defaults::database_prefix")]
    pub database_prefix: String,
    /// Time limit for one request to ClickHouse, in milliseconds.
    #[serde(default = "defaults::request_timeout_ms")]
    pub request_timeout_ms: Millis,
    /// The ClickHouse cluster (a `remote_servers` entry) the installation runs on; empty for
    /// one server. On a cluster the event stores are sharded and replicated and everything
    /// else is replicated on every node ([`crate::cluster`]).
    #[serde(default)]
    pub cluster: String,
}

mod defaults {
    pub fn url() -> String {
        "http://127.0.0.1:18123".to_owned()
    }
    pub fn user() -> String {
        "admin".to_owned()
    }
    pub fn database_prefix() -> String {
        "webstats".to_owned()
    }
    pub fn request_timeout_ms() -> super::Millis {
        super::Millis::new(30_000)
    }
}

impl Default for ClickHouseConfig {
    fn default() -> Self {
        Self {
            url: defaults::url(),
            user: defaults::user(),
            password_env: None,
            database_prefix: defaults::database_prefix(),
            cluster: String::new(),
            request_timeout_ms: defaults::request_timeout_ms(),
        }
    }
}

/// One bad configuration value: the key that holds it and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    pub key: String,
    pub message: String,
}

impl ConfigProblem {
    pub fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self { key: key.into(), message: message.into() }
    }
}

impl std::fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.key, self.message)
    }
}

/// Why a configuration file could not be used. Both binaries load TOML through
/// [`load_toml`] and report problems through [`LoadError::Invalid`].
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read config file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("config file {path} is not a valid {program} configuration: {message}")]
    Parse { path: PathBuf, program: &'static str, message: String },
    #[error("config file {path} has {} problem(s):\n  {}", .problems.len(),
        .problems.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n  "))]
    Invalid { path: PathBuf, problems: Vec<ConfigProblem> },
}

/// Reads a TOML file into `T` and `check`s it: every problem at once, those of values that do
/// not fit their types (see [`parse_toml`]) and those `check` finds in the rest.
pub fn load_toml<T: serde::de::DeserializeOwned>(
    path: &Path,
    program: &'static str,
    check: impl FnOnce(&mut T) -> Vec<ConfigProblem>,
) -> Result<T, LoadError> {
    let text = std::fs::read_to_string(path).map_err(|source| LoadError::Read { path: path.to_owned(), source })?;
    let invalid = |problems| LoadError::Invalid { path: path.to_owned(), problems };
    match parse_toml::<T>(&text) {
        Err(message) => Err(LoadError::Parse { path: path.to_owned(), program, message }),
        Ok((None, problems)) => Err(invalid(problems)),
        Ok((Some(mut value), mut problems)) => {
            problems.extend(check(&mut value));
            if problems.is_empty() { Ok(value) } else { Err(invalid(problems)) }
        }
    }
}

/// Parses TOML into `T`, whose field types carry their constraints (non-zero numbers,
/// durations), and reports every value that does not fit at once: each round finds the first
/// bad key (its path, through `serde_path_to_error`), records it, removes it so that its
/// default applies, and parses again. The value comes back when every bad key could be
/// removed; a missing required key ends the rounds. `Err` is a TOML syntax error.
pub fn parse_toml<T: serde::de::DeserializeOwned>(text: &str) -> Result<(Option<T>, Vec<ConfigProblem>), String> {
    let table: toml::Table = text.parse().map_err(|e: toml::de::Error| e.to_string())?;
    let mut table = toml::Value::Table(table);
    let mut problems = Vec::new();
    loop {
        match serde_path_to_error::deserialize::<_, T>(table.clone()) {
            Ok(value) => return Ok((Some(value), problems)),
            Err(error) => {
                // toml adds "in `key`" on later lines: the path says it better.
                let message = error.inner().to_string().lines().next().unwrap_or_default().to_owned();
                let path = error.path().to_string();
                let segments: Vec<_> = error.path().iter().collect();
                let removed = remove(&mut table, &segments);
                let missing =
                    message.strip_prefix("missing field `").and_then(|m| m.strip_suffix('`')).map(str::to_owned);
                let stop = missing.is_some() || !removed;
                match missing {
                    Some(field) => problems.push(ConfigProblem::new(format!("{path}.{field}"), "is required")),
                    None => problems.push(ConfigProblem::new(path, message)),
                }
                if stop {
                    return Ok((None, problems));
                }
            }
        }
    }
}

/// Removes the value at the end of `path` from `value`; whether there was one.
fn remove(value: &mut toml::Value, path: &[&serde_path_to_error::Segment]) -> bool {
    use serde_path_to_error::Segment;
    use toml::Value;
    match path {
        [] => false,
        [last] => match (last, value) {
            (Segment::Map { key }, Value::Table(table)) => table.remove(key.as_str()).is_some(),
            (Segment::Seq { index }, Value::Array(array)) if *index < array.len() => {
                array.remove(*index);
                true
            }
            _ => false,
        },
        [first, rest @ ..] => {
            let child = match (first, value) {
                (Segment::Map { key }, Value::Table(table)) => table.get_mut(key.as_str()),
                (Segment::Seq { index }, Value::Array(array)) => array.get_mut(*index),
                _ => None,
            };
            child.is_some_and(|child| remove(child, rest))
        }
    }
}

/// The secret behind cookie pseudonyms, from `file` or else the variable `env`, white space
/// trimmed. The one reader of the key, for the collector (hashing) and the aggregator
/// (data-subject requests) alike. Errors name the config key to fix.
pub fn read_cookie_key(file: Option<&Path>, env: &str) -> Result<Vec<u8>, ConfigProblem> {
    let material = match file {
        Some(path) => std::fs::read(path).map_err(|e| {
            ConfigProblem::new("privacy.cookie_key_file", format!("cannot read {}: {e}", path.display()))
        })?,
        None => std::env::var(env)
            .map_err(|_| {
                ConfigProblem::new("privacy.cookie_key_file", format!("set cookie_key_file or the {env} variable"))
            })?
            .into_bytes(),
    };
    let material = material.trim_ascii().to_vec();
    if material.len() < crate::pseudonym::MIN_COOKIE_KEY_BYTES {
        return Err(ConfigProblem::new(
            "privacy.cookie_key_file",
            "the cookie key must be at least 32 bytes (surrounding white space does not count)",
        ));
    }
    Ok(material)
}

impl ClickHouseConfig {
    /// Reports every bad value under `[clickhouse]`; reads the password variable, nothing else.
    pub fn validate(&self, problems: &mut Vec<ConfigProblem>) {
        match url::Url::parse(&self.url) {
            Ok(u) if matches!(u.scheme(), "http" | "https") => {}
            Ok(_) => problems.push(ConfigProblem::new("clickhouse.url", "must be an http:// or https:// URL")),
            Err(e) => problems.push(ConfigProblem::new("clickhouse.url", format!("not a URL: {e}"))),
        }
        if let Err(e) = crate::Databases::new(&self.database_prefix) {
            problems.push(ConfigProblem::new("clickhouse.database_prefix", e.to_string()));
        }
        let identifier = |s: &str| {
            s.starts_with(|c: char| c.is_ascii_alphabetic())
                && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        };
        if !self.cluster.is_empty() && !identifier(&self.cluster) {
            problems.push(ConfigProblem::new(
                "clickhouse.cluster",
                "must be a cluster name: letters, digits and _, starting with a letter",
            ));
        }
        if let Some(var) = &self.password_env
            && std::env::var_os(var).is_none()
        {
            problems
                .push(ConfigProblem::new("clickhouse.password_env", format!("environment variable {var} is not set")));
        }
    }

    /// The cluster the installation runs on, if any.
    pub fn cluster(&self) -> Option<&str> {
        (!self.cluster.is_empty()).then_some(self.cluster.as_str())
    }

    /// The database names for this configuration. Call after [`Self::validate`].
    pub fn databases(&self) -> Databases {
        Databases::new(&self.database_prefix)
            .expect("database_prefix is validated before use")
            .on_cluster(self.cluster())
    }

    /// A client with schema validation off (ClickHouse 18.16 cannot describe tables the way
    /// the crate expects) and the given compression.
    #[cfg(feature = "clickhouse")]
    pub fn client(&self, compression: clickhouse::Compression) -> clickhouse::Client {
        let mut client = clickhouse::Client::default()
            .with_url(&self.url)
            .with_user(&self.user)
            .with_validation(false)
            .with_compression(compression);
        if let Some(password) = self.password_env.as_ref().and_then(|v| std::env::var(v).ok()) {
            client = client.with_password(password);
        }
        client
    }

    /// The same server and databases as another user.
    pub fn as_user(&self, user: &str, password_env: Option<&str>) -> ClickHouseConfig {
        ClickHouseConfig { user: user.to_owned(), password_env: password_env.map(str::to_owned), ..self.clone() }
    }

    pub fn request_timeout(&self) -> Duration {
        self.request_timeout_ms.duration()
    }
}

use crate::Databases;
