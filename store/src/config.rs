use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use serde::Deserialize;

/// Where ClickHouse is and how to reach it; the `[clickhouse]` table of both binaries' configs.
#[derive(Debug, Clone, Deserialize)]
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
    pub request_timeout_ms: u64,
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
    pub fn request_timeout_ms() -> u64 {
        30_000
    }
}

impl Default for ClickHouseConfig {
    fn default() -> Self {
        Self {
            url: defaults::url(),
            user: defaults::user(),
            password_env: None,
            database_prefix: defaults::database_prefix(),
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

/// Reads and parses a TOML file into `T`; validation is the caller's next step.
pub fn load_toml<T: serde::de::DeserializeOwned>(path: &Path, program: &'static str) -> Result<T, LoadError> {
    let text = std::fs::read_to_string(path).map_err(|source| LoadError::Read { path: path.to_owned(), source })?;
    toml::from_str(&text).map_err(|e| LoadError::Parse { path: path.to_owned(), program, message: e.to_string() })
}

/// `Ok(())` when there are no problems, else [`LoadError::Invalid`].
pub fn check(path: &Path, problems: Vec<ConfigProblem>) -> Result<(), LoadError> {
    if problems.is_empty() { Ok(()) } else { Err(LoadError::Invalid { path: path.to_owned(), problems }) }
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
        if let Some(var) = &self.password_env
            && std::env::var_os(var).is_none()
        {
            problems
                .push(ConfigProblem::new("clickhouse.password_env", format!("environment variable {var} is not set")));
        }
        if self.request_timeout_ms == 0 {
            problems.push(ConfigProblem::new("clickhouse.request_timeout_ms", "must be above 0"));
        }
    }

    /// The database names for this configuration. Call after [`Self::validate`].
    pub fn databases(&self) -> Databases {
        Databases::new(&self.database_prefix).expect("database_prefix is validated before use")
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
        Duration::from_millis(self.request_timeout_ms)
    }
}

use crate::Databases;
