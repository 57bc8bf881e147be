//! The broker's configuration: a TOML file, environment variables and
//! command-line flags, merged into one [`Config`].
//!
//! Every option is all three: a key in the file, a `QUIVER_*` variable and a
//! `--flag`. For each option the first of these that sets it wins:
//!
//! 1. the flag (`--listen 0.0.0.0:7400`),
//! 2. the environment (`QUIVER_LISTEN=0.0.0.0:7400`),
//! 3. the file (`listen = "0.0.0.0:7400"`, from `--config FILE` or
//!    `QUIVER_CONFIG`),
//! 4. the built-in default.
//!
//! [`Settings`] is one layer (each option set or not): clap fills one from
//! the flags and the environment (clap itself puts a flag before its
//! variable), and serde fills one from the file. [`Settings::or`] stacks two
//! layers and [`Config::resolve`] applies the defaults and checks the result.
//!
//! The file's keys are the flags' names with `_` for `-` (`data_dir`,
//! `max_connections`, ...); a key the broker does not know is an error that
//! names it. [`Config::to_toml`] writes a file that loads back to the same
//! configuration (`quiver serve --print-config`).

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::broker::{BrokerConfig, DEFAULT_DATA_DIR, DEFAULT_LISTEN};
use crate::kafka::{Advertised, KafkaConfig};
use crate::storage::{DEFAULT_CACHE_BYTES, DEFAULT_RESERVE_BYTES, RetentionDefaults};
use crate::wasm::WasmLimits;
use crate::wasm::limits;

/// The default address of the HTTP port (`/health`, `/ready`, `/metrics`).
pub const DEFAULT_HTTP: &str = "127.0.0.1:7401";

/// The default address of the Kafka listener (Kafka's own default port).
pub const DEFAULT_KAFKA_LISTEN: &str = "127.0.0.1:9092";

/// Partitions of a topic a Kafka client's Metadata request creates, unless
/// configured (Kafka's `num.partitions`).
pub const DEFAULT_PARTITIONS: u32 = 1;

/// A config file larger than this is refused before it is parsed.
pub const MAX_CONFIG_FILE_BYTES: u64 = 1024 * 1024;

/// The largest `max_connections` accepted.
pub const MAX_CONNECTIONS_CEILING: usize = 1 << 20;

/// The largest `cache_mb` accepted (1 TiB).
pub const MAX_CACHE_MB: usize = 1 << 20;

/// The largest `max_transforms` and `max_fetch_instances` accepted (each
/// transform is a thread).
pub const MAX_WASM_COUNT: usize = 10_000;

/// The largest `max_compiles` accepted.
pub const MAX_COMPILES_CEILING: usize = 256;

/// The largest `guest_memory_mb` accepted (1 PiB: no real bound, only a
/// guard against overflow).
pub const MAX_GUEST_MEMORY_MB: u64 = 1 << 30;

/// One mebibyte, in bytes.
const MIB: u64 = 1024 * 1024;

/// How log lines are written to standard error.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

impl fmt::Display for LogFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Text => "text",
            Self::Json => "json",
        })
    }
}

/// Where a port listens (HTTP, Kafka), or `off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Listen {
    /// No HTTP port.
    Off,
    /// Listen on this address (port 0 picks a free port).
    On(SocketAddr),
}

impl Listen {
    /// The address, unless off.
    pub fn addr(self) -> Option<SocketAddr> {
        match self {
            Self::Off => None,
            Self::On(addr) => Some(addr),
        }
    }
}

impl FromStr for Listen {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.eq_ignore_ascii_case("off") {
            return Ok(Self::Off);
        }
        s.parse()
            .map(Self::On)
            .map_err(|_| format!("{s:?} is neither an IP:PORT address nor `off`"))
    }
}

impl TryFrom<String> for Listen {
    type Error = String;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<Listen> for String {
    fn from(http: Listen) -> Self {
        http.to_string()
    }
}

impl fmt::Display for Listen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Off => f.write_str("off"),
            Self::On(addr) => addr.fmt(f),
        }
    }
}

/// One layer of settings: each option set or not.
///
/// The same struct is the config file's schema (serde) and the `serve`
/// command's flags and variables (clap).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, clap::Args)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Where the database and the generated certificate live
    /// [default: ./quiver-data].
    #[arg(long, env = "QUIVER_DATA_DIR", value_name = "DIR")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
    /// Address to listen on (UDP, QUIC); port 0 picks a free port
    /// [default: 127.0.0.1:7400].
    #[arg(long, env = "QUIVER_LISTEN", value_name = "ADDR")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listen: Option<SocketAddr>,
    /// PEM certificate chain; without it a self-signed one is generated
    /// in the data directory (tls/cert.pem) and reused.
    #[arg(long, env = "QUIVER_TLS_CERT", value_name = "FILE")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for --tls-cert.
    #[arg(long, env = "QUIVER_TLS_KEY", value_name = "FILE")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_key: Option<PathBuf>,
    /// Page cache for stored data, in MiB; bounds the broker's memory use
    /// [default: 256].
    #[arg(long, env = "QUIVER_CACHE_MB", value_name = "MIB")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_mb: Option<usize>,
    /// Space kept in reserve beside the database, in MiB: released when
    /// the disk fills so that deletes and retention can still free space
    /// [default: 64].
    #[arg(long, env = "QUIVER_RESERVE_MB", value_name = "MIB")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reserve_mb: Option<u64>,
    /// Largest size of the database plus the reserve, in MiB; past it,
    /// produce is refused as on a full disk [default: none, the disk's size].
    #[arg(long, env = "QUIVER_MAX_STORAGE_MB", value_name = "MIB")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_storage_mb: Option<u64>,
    /// HTTP port for /health, /ready and /metrics (TCP, plain HTTP/1.1), or
    /// `off` [default: 127.0.0.1:7401].
    #[arg(long, env = "QUIVER_HTTP", value_name = "ADDR|off")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<Listen>,
    /// Kafka-protocol listener (plaintext TCP), so Kafka clients can
    /// connect, or `off` [default: 127.0.0.1:9092].
    #[arg(long, env = "QUIVER_KAFKA_LISTEN", value_name = "ADDR|off")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kafka_listen: Option<Listen>,
    /// Kafka-protocol listener with TLS (the broker's certificate), or
    /// `off`; its clients are told its own address [default: off].
    #[arg(long, env = "QUIVER_KAFKA_TLS_LISTEN", value_name = "ADDR|off")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kafka_tls_listen: Option<Listen>,
    /// The HOST:PORT Kafka clients are told to connect to (in Metadata)
    /// [default: the Kafka listen address].
    #[arg(long, env = "QUIVER_KAFKA_ADVERTISE", value_name = "HOST:PORT")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kafka_advertise: Option<Advertised>,
    /// Whether a Kafka client's Metadata request for a missing topic
    /// creates it, as Kafka's `auto.create.topics.enable` [default: true].
    #[arg(long, env = "QUIVER_AUTO_CREATE_TOPICS", value_name = "BOOL")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_create_topics: Option<bool>,
    /// Partitions of an automatically created topic [default: 1].
    #[arg(long, env = "QUIVER_DEFAULT_PARTITIONS", value_name = "N")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_partitions: Option<u32>,
    /// Log line format on standard error [default: text].
    #[arg(long, env = "QUIVER_LOG_FORMAT", value_name = "FORMAT")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_format: Option<LogFormat>,
    /// Concurrent client connections, at most; more are refused
    /// [default: 1024].
    #[arg(long, env = "QUIVER_MAX_CONNECTIONS", value_name = "N")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_connections: Option<usize>,
    /// Concurrent connections from one client IP address, at most; more
    /// are refused [default: 256].
    #[arg(long, env = "QUIVER_MAX_CONNECTIONS_PER_IP", value_name = "N")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_connections_per_ip: Option<usize>,
    /// Default retention time, in milliseconds, for topics created without
    /// their own [default: none, keep forever].
    #[arg(long, env = "QUIVER_DEFAULT_RETENTION_MS", value_name = "MS")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention_ms: Option<u64>,
    /// Default retention size per partition, in bytes, for topics created
    /// without their own [default: none, no limit].
    #[arg(long, env = "QUIVER_DEFAULT_RETENTION_BYTES", value_name = "BYTES")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention_bytes: Option<u64>,
    /// Deployed transforms, at most; more deploys are refused [default: 64].
    #[arg(long, env = "QUIVER_MAX_TRANSFORMS", value_name = "N")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_transforms: Option<usize>,
    /// Guest memory all deployed transforms may use together, in MiB (the
    /// sum of their --memory-mb); a deploy past it is refused
    /// [default: 4096].
    #[arg(long, env = "QUIVER_GUEST_MEMORY_MB", value_name = "MIB")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guest_memory_mb: Option<u64>,
    /// Fetch-time module instances alive at once, at most; a fetch that
    /// needs another is refused as busy (consumers retry) [default: 32].
    #[arg(long, env = "QUIVER_MAX_FETCH_INSTANCES", value_name = "N")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_fetch_instances: Option<usize>,
    /// Module compilations (upload, deploy, upgrade) at once, at most; up
    /// to 8 more wait their turn, further ones are refused as busy
    /// [default: 2].
    #[arg(long, env = "QUIVER_MAX_COMPILES", value_name = "N")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_compiles: Option<usize>,
}

impl Settings {
    /// Each option from `self` if set there, else from `lower`.
    #[must_use]
    pub fn or(self, lower: Settings) -> Settings {
        Settings {
            data_dir: self.data_dir.or(lower.data_dir),
            listen: self.listen.or(lower.listen),
            tls_cert: self.tls_cert.or(lower.tls_cert),
            tls_key: self.tls_key.or(lower.tls_key),
            cache_mb: self.cache_mb.or(lower.cache_mb),
            reserve_mb: self.reserve_mb.or(lower.reserve_mb),
            max_storage_mb: self.max_storage_mb.or(lower.max_storage_mb),
            http: self.http.or(lower.http),
            kafka_listen: self.kafka_listen.or(lower.kafka_listen),
            kafka_tls_listen: self.kafka_tls_listen.or(lower.kafka_tls_listen),
            kafka_advertise: self.kafka_advertise.or(lower.kafka_advertise),
            auto_create_topics: self.auto_create_topics.or(lower.auto_create_topics),
            default_partitions: self.default_partitions.or(lower.default_partitions),
            log_format: self.log_format.or(lower.log_format),
            max_connections: self.max_connections.or(lower.max_connections),
            max_connections_per_ip: self.max_connections_per_ip.or(lower.max_connections_per_ip),
            retention_ms: self.retention_ms.or(lower.retention_ms),
            retention_bytes: self.retention_bytes.or(lower.retention_bytes),
            max_transforms: self.max_transforms.or(lower.max_transforms),
            guest_memory_mb: self.guest_memory_mb.or(lower.guest_memory_mb),
            max_fetch_instances: self.max_fetch_instances.or(lower.max_fetch_instances),
            max_compiles: self.max_compiles.or(lower.max_compiles),
        }
    }

    /// Parses a config file's text; `path` only names it in errors.
    pub fn from_toml(text: &str, path: &Path) -> Result<Settings, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            message: describe_toml_error(text, &e),
        })
    }

    /// Reads and parses a config file.
    pub fn from_file(path: &Path) -> Result<Settings, ConfigError> {
        let read_error = |error| ConfigError::Read {
            path: path.to_owned(),
            error,
        };
        let file = std::fs::File::open(path).map_err(read_error)?;
        let size = file.metadata().map_err(read_error)?.len();
        if size > MAX_CONFIG_FILE_BYTES {
            return Err(ConfigError::TooLarge {
                path: path.to_owned(),
                size,
            });
        }
        let mut text = String::new();
        std::io::Read::read_to_string(
            &mut std::io::Read::take(file, MAX_CONFIG_FILE_BYTES),
            &mut text,
        )
        .map_err(read_error)?;
        Self::from_toml(&text, path)
    }
}

/// The effective configuration: every option decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Where the database and generated certificate live.
    pub data_dir: PathBuf,
    /// The QUIC listen address.
    pub listen: SocketAddr,
    /// The user's certificate chain (PEM), with `tls_key`.
    pub tls_cert: Option<PathBuf>,
    /// The user's private key (PEM), with `tls_cert`.
    pub tls_key: Option<PathBuf>,
    /// redb page cache, in MiB.
    pub cache_mb: usize,
    /// The space reserve, in MiB.
    pub reserve_mb: u64,
    /// The limit on the database plus the reserve, in MiB, if any.
    pub max_storage_mb: Option<u64>,
    /// The HTTP port, or off.
    pub http: Listen,
    /// The Kafka listener, or off.
    pub kafka_listen: Listen,
    /// The Kafka listener with TLS, or off.
    pub kafka_tls_listen: Listen,
    /// The address Metadata hands to Kafka clients, if not the listen one.
    pub kafka_advertise: Option<Advertised>,
    /// Whether Metadata creates missing topics a client asks for.
    pub auto_create_topics: bool,
    /// Partitions of an automatically created topic.
    pub default_partitions: u32,
    /// The log line format.
    pub log_format: LogFormat,
    /// Concurrent client connections, at most.
    pub max_connections: usize,
    /// Concurrent connections from one client IP address, at most.
    pub max_connections_per_ip: usize,
    /// Default `retention.ms` for topics without their own.
    pub retention_ms: Option<u64>,
    /// Default `retention.bytes` for topics without their own.
    pub retention_bytes: Option<u64>,
    /// Deployed transforms, at most.
    pub max_transforms: usize,
    /// Guest memory of all deployed transforms together, in MiB.
    pub guest_memory_mb: u64,
    /// Fetch-time module instances alive at once, at most.
    pub max_fetch_instances: usize,
    /// Module compilations at once, at most.
    pub max_compiles: usize,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from(DEFAULT_DATA_DIR),
            listen: parse_default(DEFAULT_LISTEN),
            tls_cert: None,
            tls_key: None,
            cache_mb: DEFAULT_CACHE_BYTES / (1024 * 1024),
            reserve_mb: DEFAULT_RESERVE_BYTES / (1024 * 1024),
            max_storage_mb: None,
            http: Listen::On(parse_default(DEFAULT_HTTP)),
            kafka_listen: Listen::On(parse_default(DEFAULT_KAFKA_LISTEN)),
            kafka_tls_listen: Listen::Off,
            kafka_advertise: None,
            auto_create_topics: true,
            default_partitions: DEFAULT_PARTITIONS,
            log_format: LogFormat::Text,
            max_connections: quiver_proto::limits::MAX_CONNECTIONS,
            max_connections_per_ip: crate::server::MAX_CONNECTIONS_PER_IP,
            retention_ms: None,
            retention_bytes: None,
            max_transforms: limits::DEFAULT_MAX_TRANSFORMS,
            guest_memory_mb: limits::DEFAULT_GUEST_MEMORY_BYTES / MIB,
            max_fetch_instances: limits::DEFAULT_MAX_FETCH_INSTANCES,
            max_compiles: limits::DEFAULT_MAX_COMPILES,
        }
    }
}

fn parse_default(addr: &str) -> SocketAddr {
    addr.parse()
        .expect("the built-in default addresses are valid")
}

impl Config {
    /// Merges the flag-and-environment layer over the file named by
    /// `config_file` (if any), then the defaults.
    pub fn load(
        flags_and_env: Settings,
        config_file: Option<&Path>,
    ) -> Result<Config, ConfigError> {
        let file = match config_file {
            Some(path) => Settings::from_file(path)?,
            None => Settings::default(),
        };
        Self::resolve(flags_and_env.or(file))
    }

    /// Applies the defaults to what `settings` leaves unset, and checks the
    /// result.
    pub fn resolve(settings: Settings) -> Result<Config, ConfigError> {
        let defaults = Config::default();
        let config = Config {
            data_dir: settings.data_dir.unwrap_or(defaults.data_dir),
            listen: settings.listen.unwrap_or(defaults.listen),
            tls_cert: settings.tls_cert,
            tls_key: settings.tls_key,
            cache_mb: settings.cache_mb.unwrap_or(defaults.cache_mb),
            reserve_mb: settings.reserve_mb.unwrap_or(defaults.reserve_mb),
            max_storage_mb: settings.max_storage_mb,
            http: settings.http.unwrap_or(defaults.http),
            kafka_listen: settings.kafka_listen.unwrap_or(defaults.kafka_listen),
            kafka_tls_listen: settings
                .kafka_tls_listen
                .unwrap_or(defaults.kafka_tls_listen),
            kafka_advertise: settings.kafka_advertise,
            auto_create_topics: settings
                .auto_create_topics
                .unwrap_or(defaults.auto_create_topics),
            default_partitions: settings
                .default_partitions
                .unwrap_or(defaults.default_partitions),
            log_format: settings.log_format.unwrap_or(defaults.log_format),
            max_connections: settings.max_connections.unwrap_or(defaults.max_connections),
            max_connections_per_ip: settings
                .max_connections_per_ip
                .unwrap_or(defaults.max_connections_per_ip),
            retention_ms: settings.retention_ms,
            retention_bytes: settings.retention_bytes,
            max_transforms: settings.max_transforms.unwrap_or(defaults.max_transforms),
            guest_memory_mb: settings.guest_memory_mb.unwrap_or(defaults.guest_memory_mb),
            max_fetch_instances: settings
                .max_fetch_instances
                .unwrap_or(defaults.max_fetch_instances),
            max_compiles: settings.max_compiles.unwrap_or(defaults.max_compiles),
        };
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if self.tls_cert.is_some() != self.tls_key.is_some() {
            return Err(ConfigError::Invalid(
                "tls_cert and tls_key go together: set both or neither".into(),
            ));
        }
        // The TLS port is part of the Kafka listener; asked for alone it would
        // silently not run.
        if self.kafka_tls_listen.addr().is_some() && self.kafka_listen.addr().is_none() {
            return Err(ConfigError::Invalid(
                "kafka_tls_listen needs the Kafka listener, but kafka_listen is off: \
                 set both (e.g. --kafka-listen 127.0.0.1:9092 --kafka-tls-listen 0.0.0.0:9093)"
                    .into(),
            ));
        }
        if self.max_connections == 0 || self.max_connections > MAX_CONNECTIONS_CEILING {
            return Err(ConfigError::Invalid(format!(
                "max_connections is {}; it must be 1 to {MAX_CONNECTIONS_CEILING}",
                self.max_connections
            )));
        }
        if self.max_connections_per_ip == 0 {
            return Err(ConfigError::Invalid(
                "max_connections_per_ip is 0; it must be at least 1".into(),
            ));
        }
        for (name, value, ceiling) in [
            ("max_transforms", self.max_transforms, MAX_WASM_COUNT),
            (
                "max_fetch_instances",
                self.max_fetch_instances,
                MAX_WASM_COUNT,
            ),
            ("max_compiles", self.max_compiles, MAX_COMPILES_CEILING),
        ] {
            if value == 0 || value > ceiling {
                return Err(ConfigError::Invalid(format!(
                    "{name} is {value}; it must be 1 to {ceiling}"
                )));
            }
        }
        if self.guest_memory_mb == 0 || self.guest_memory_mb > MAX_GUEST_MEMORY_MB {
            return Err(ConfigError::Invalid(format!(
                "guest_memory_mb is {}; it must be 1 to {MAX_GUEST_MEMORY_MB}",
                self.guest_memory_mb
            )));
        }
        if !(1..=quiver_proto::limits::MAX_PARTITIONS_PER_TOPIC).contains(&self.default_partitions)
        {
            return Err(ConfigError::Invalid(format!(
                "default_partitions is {}; it must be 1 to {}",
                self.default_partitions,
                quiver_proto::limits::MAX_PARTITIONS_PER_TOPIC
            )));
        }
        if self.cache_mb == 0 || self.cache_mb > MAX_CACHE_MB {
            return Err(ConfigError::Invalid(format!(
                "cache_mb is {}; it must be 1 to {MAX_CACHE_MB}",
                self.cache_mb
            )));
        }
        if let Some(max) = self.max_storage_mb
            && max <= self.reserve_mb
        {
            return Err(ConfigError::Invalid(format!(
                "max_storage_mb ({max}) must be above reserve_mb ({}), which it includes",
                self.reserve_mb
            )));
        }
        Ok(())
    }

    /// Every option as a layer (unset optional ones stay unset).
    pub fn to_settings(&self) -> Settings {
        Settings {
            data_dir: Some(self.data_dir.clone()),
            listen: Some(self.listen),
            tls_cert: self.tls_cert.clone(),
            tls_key: self.tls_key.clone(),
            cache_mb: Some(self.cache_mb),
            reserve_mb: Some(self.reserve_mb),
            max_storage_mb: self.max_storage_mb,
            http: Some(self.http),
            kafka_listen: Some(self.kafka_listen),
            kafka_tls_listen: Some(self.kafka_tls_listen),
            kafka_advertise: self.kafka_advertise.clone(),
            auto_create_topics: Some(self.auto_create_topics),
            default_partitions: Some(self.default_partitions),
            log_format: Some(self.log_format),
            max_connections: Some(self.max_connections),
            max_connections_per_ip: Some(self.max_connections_per_ip),
            retention_ms: self.retention_ms,
            retention_bytes: self.retention_bytes,
            max_transforms: Some(self.max_transforms),
            guest_memory_mb: Some(self.guest_memory_mb),
            max_fetch_instances: Some(self.max_fetch_instances),
            max_compiles: Some(self.max_compiles),
        }
    }

    /// The configuration as a TOML config file.
    pub fn to_toml(&self) -> Result<String, ConfigError> {
        toml::to_string(&self.to_settings()).map_err(|e| ConfigError::Render(e.to_string()))
    }

    /// What [`Broker::start`](crate::Broker::start) needs.
    pub fn broker_config(&self) -> BrokerConfig {
        let mut config = BrokerConfig::new(&self.data_dir, self.listen);
        config.tls_cert.clone_from(&self.tls_cert);
        config.tls_key.clone_from(&self.tls_key);
        config.storage.cache_bytes = self.cache_mb.saturating_mul(1024 * 1024);
        config.storage.reserve_bytes = self.reserve_mb.saturating_mul(1024 * 1024);
        config.storage.max_bytes = self.max_storage_mb.map(|mb| mb.saturating_mul(1024 * 1024));
        config.connections.max_connections = self.max_connections;
        config.connections.max_connections_per_ip = self.max_connections_per_ip;
        config.http = self.http.addr();
        config.kafka = self.kafka_listen.addr().map(|listen| KafkaConfig {
            listen,
            advertise: self.kafka_advertise.clone(),
            tls_listen: self.kafka_tls_listen.addr(),
            auto_create_topics: self.auto_create_topics,
            default_partitions: self.default_partitions,
            first_request_timeout: crate::server::FIRST_REQUEST_TIMEOUT,
            max_connections_per_ip: self.max_connections_per_ip,
        });
        config.retention_defaults = RetentionDefaults {
            retention_ms: self.retention_ms,
            retention_bytes: self.retention_bytes,
        };
        config.wasm = WasmLimits {
            max_transforms: self.max_transforms,
            guest_memory_bytes: self.guest_memory_mb.saturating_mul(MIB),
            max_fetch_instances: self.max_fetch_instances,
            max_compiles: self.max_compiles,
            ..WasmLimits::default()
        };
        config
    }
}

/// Why the configuration could not be loaded. Each renders as one line.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read the config file {}: {error}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error (in the message, so not also a `source`).
        error: std::io::Error,
    },
    /// The file is larger than [`MAX_CONFIG_FILE_BYTES`].
    #[error("the config file {} has {size} bytes; the limit is {MAX_CONFIG_FILE_BYTES}", path.display())]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Its size.
        size: u64,
    },
    /// The file is not valid TOML, or has an unknown key or a bad value.
    #[error("invalid config file {}: {message}", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong and where (line and column).
        message: String,
    },
    /// The merged options contradict each other or break a limit.
    #[error("invalid configuration: {0}")]
    Invalid(String),
    /// The configuration could not be written as TOML (a path that is not
    /// UTF-8).
    #[error("cannot write the configuration as TOML: {0}")]
    Render(String),
}

/// One line: `line L, column C: message`.
fn describe_toml_error(text: &str, error: &toml::de::Error) -> String {
    let message = error
        .message()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    match error.span() {
        Some(span) => {
            let before = text.get(..span.start).unwrap_or(text);
            let line = before.matches('\n').count() + 1;
            let column = before
                .rsplit('\n')
                .next()
                .map_or(1, |l| l.chars().count() + 1);
            format!("line {line}, column {column}: {message}")
        }
        None => message,
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        settings: Settings,
    }

    fn flags(args: &[&str]) -> Settings {
        Cli::try_parse_from(std::iter::once("quiver").chain(args.iter().copied()))
            .expect("valid flags")
            .settings
    }

    fn file(text: &str) -> Result<Settings, ConfigError> {
        Settings::from_toml(text, Path::new("quiver.toml"))
    }

    fn addr(s: &str) -> SocketAddr {
        s.parse().expect("address")
    }

    #[test]
    fn defaults_when_nothing_is_set() {
        let config = Config::resolve(Settings::default()).expect("valid");
        assert_eq!(config, Config::default());
        assert_eq!(config.data_dir, PathBuf::from("./quiver-data"));
        assert_eq!(config.listen, addr("127.0.0.1:7400"));
        assert_eq!(config.http, Listen::On(addr("127.0.0.1:7401")));
        assert_eq!(config.cache_mb, 256);
        assert_eq!(config.max_connections, 1024);
        assert_eq!(config.log_format, LogFormat::Text);
        assert_eq!(config.retention_ms, None);
    }

    #[test]
    fn file_overrides_defaults_and_flags_override_file() {
        let from_file = file(
            r#"
            data_dir = "/var/lib/quiver"
            listen = "0.0.0.0:9000"
            cache_mb = 64
            http = "off"
            log_format = "json"
            max_connections = 10
            retention_ms = 3600000
            "#,
        )
        .expect("valid file");
        let from_flags = flags(&["--listen", "127.0.0.1:9100", "--max-connections", "20"]);
        let config = Config::resolve(from_flags.or(from_file)).expect("valid");
        // Flags win where set...
        assert_eq!(config.listen, addr("127.0.0.1:9100"));
        assert_eq!(config.max_connections, 20);
        // ...the file where not...
        assert_eq!(config.data_dir, PathBuf::from("/var/lib/quiver"));
        assert_eq!(config.cache_mb, 64);
        assert_eq!(config.http, Listen::Off);
        assert_eq!(config.log_format, LogFormat::Json);
        assert_eq!(config.retention_ms, Some(3_600_000));
        // ...and the defaults fill the rest.
        assert_eq!(config.retention_bytes, None);
        assert_eq!(config.tls_cert, None);
    }

    #[test]
    fn higher_layer_wins_option_by_option() {
        let env = Settings {
            listen: Some(addr("10.0.0.1:1")),
            retention_bytes: Some(5),
            ..Settings::default()
        };
        let flag = Settings {
            listen: Some(addr("10.0.0.2:2")),
            ..Settings::default()
        };
        let file = Settings {
            listen: Some(addr("10.0.0.3:3")),
            retention_bytes: Some(7),
            cache_mb: Some(1),
            ..Settings::default()
        };
        let merged = flag.or(env).or(file);
        assert_eq!(merged.listen, Some(addr("10.0.0.2:2")));
        assert_eq!(merged.retention_bytes, Some(5));
        assert_eq!(merged.cache_mb, Some(1));
    }

    #[test]
    fn every_flag_parses() {
        let settings = flags(&[
            "--data-dir",
            "d",
            "--listen",
            "[::1]:7",
            "--tls-cert",
            "c.pem",
            "--tls-key",
            "k.pem",
            "--cache-mb",
            "8",
            "--http",
            "127.0.0.1:0",
            "--log-format",
            "json",
            "--max-connections",
            "3",
            "--retention-ms",
            "1000",
            "--retention-bytes",
            "2000",
        ]);
        let config = Config::resolve(settings).expect("valid");
        assert_eq!(config.data_dir, PathBuf::from("d"));
        assert_eq!(config.listen, addr("[::1]:7"));
        assert_eq!(config.tls_cert, Some(PathBuf::from("c.pem")));
        assert_eq!(config.tls_key, Some(PathBuf::from("k.pem")));
        assert_eq!(config.cache_mb, 8);
        assert_eq!(config.http, Listen::On(addr("127.0.0.1:0")));
        assert_eq!(config.log_format, LogFormat::Json);
        assert_eq!(config.max_connections, 3);
        assert_eq!(config.retention_ms, Some(1000));
        assert_eq!(config.retention_bytes, Some(2000));
        let broker = config.broker_config();
        assert_eq!(broker.http, Some(addr("127.0.0.1:0")));
        assert_eq!(broker.storage.cache_bytes, 8 * 1024 * 1024);
        assert_eq!(broker.connections.max_connections, 3);
        assert_eq!(broker.retention_defaults.retention_ms, Some(1000));
        assert_eq!(broker.retention_defaults.retention_bytes, Some(2000));
    }

    #[test]
    fn wasm_limits_parse_map_and_are_checked() {
        let config = Config::resolve(flags(&[
            "--max-transforms",
            "5",
            "--guest-memory-mb",
            "512",
            "--max-fetch-instances",
            "3",
            "--max-compiles",
            "1",
        ]))
        .expect("valid");
        let wasm = config.broker_config().wasm;
        assert_eq!(
            (
                wasm.max_transforms,
                wasm.guest_memory_bytes,
                wasm.max_fetch_instances,
                wasm.max_compiles
            ),
            (5, 512 * 1024 * 1024, 3, 1)
        );
        assert_eq!(wasm.compile_queue, WasmLimits::default().compile_queue);
        for flag in [
            "--max-transforms",
            "--guest-memory-mb",
            "--max-fetch-instances",
            "--max-compiles",
        ] {
            let error = Config::resolve(flags(&[flag, "0"])).unwrap_err();
            assert!(
                error.to_string().contains("is 0; it must be 1 to"),
                "{flag}: {error}"
            );
        }
    }

    #[test]
    fn http_off_and_bad_values() {
        assert_eq!(flags(&["--http", "off"]).http, Some(Listen::Off));
        assert_eq!(flags(&["--http", "OFF"]).http, Some(Listen::Off));
        assert!(Cli::try_parse_from(["quiver", "--http", "nowhere"]).is_err());
        assert!(Cli::try_parse_from(["quiver", "--log-format", "xml"]).is_err());
        assert!(Cli::try_parse_from(["quiver", "--max-connections", "-1"]).is_err());
        assert_eq!(
            Config::default().broker_config().http,
            Some(addr("127.0.0.1:7401"))
        );
        let off = Config {
            http: Listen::Off,
            ..Config::default()
        };
        assert_eq!(off.broker_config().http, None);
    }

    #[test]
    fn a_kafka_tls_port_without_the_kafka_listener_is_refused() {
        let error = Config::resolve(flags(&[
            "--kafka-listen",
            "off",
            "--kafka-tls-listen",
            "127.0.0.1:0",
        ]))
        .expect_err("refused");
        assert!(error.to_string().contains("kafka_listen is off"), "{error}");
        let both = Config::resolve(flags(&[
            "--kafka-listen",
            "127.0.0.1:0",
            "--kafka-tls-listen",
            "127.0.0.1:0",
        ]))
        .expect("valid");
        assert!(
            both.broker_config()
                .kafka
                .is_some_and(|k| k.tls_listen.is_some())
        );
    }

    #[test]
    fn printed_config_loads_back() {
        let config = Config::resolve(flags(&[
            "--http",
            "off",
            "--retention-bytes",
            "123",
            "--tls-cert",
            "c.pem",
            "--tls-key",
            "k.pem",
        ]))
        .expect("valid");
        let text = config.to_toml().expect("render");
        assert!(text.contains("http = \"off\""), "{text}");
        assert!(text.contains("retention_bytes = 123"), "{text}");
        assert!(!text.contains("retention_ms"), "{text}");
        let again = Config::resolve(file(&text).expect("parses")).expect("valid");
        assert_eq!(again, config);
        let defaults = Config::default().to_toml().expect("render");
        assert_eq!(
            Config::resolve(file(&defaults).expect("parses")).expect("valid"),
            Config::default()
        );
    }

    #[test]
    fn unknown_key_is_an_error_naming_it() {
        let error = file("listen = \"127.0.0.1:1\"\nlisten_port = 7\n").unwrap_err();
        let message = error.to_string();
        assert!(matches!(error, ConfigError::Parse { .. }));
        assert!(message.contains("`listen_port`"), "{message}");
        assert!(message.contains("line 2"), "{message}");
        assert!(message.contains("quiver.toml"), "{message}");
        assert!(!message.contains('\n'), "{message}");
    }

    #[test]
    fn malformed_file_is_one_line() {
        for text in [
            "listen = ",
            "listen = \"not an address\"",
            "cache_mb = \"big\"",
            "cache_mb = -1",
            "http = \"nowhere\"",
            "log_format = \"xml\"",
            "[listen]\nport = 1",
        ] {
            let error = file(text).unwrap_err();
            let message = error.to_string();
            assert!(
                matches!(error, ConfigError::Parse { .. }),
                "{text}: {message}"
            );
            assert!(!message.contains('\n'), "{text}: {message}");
            assert!(
                message.starts_with("invalid config file quiver.toml: line 1"),
                "{message}"
            );
        }
    }

    #[test]
    fn missing_file_is_a_read_error() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("absent.toml");
        let error = Config::load(Settings::default(), Some(&path)).unwrap_err();
        assert!(matches!(error, ConfigError::Read { .. }));
        let message = error.to_string();
        assert!(
            message.starts_with("cannot read the config file "),
            "{message}"
        );
        assert!(message.contains("absent.toml"), "{message}");
        assert!(!message.contains('\n'), "{message}");
    }

    #[test]
    fn load_reads_the_file_under_the_flags() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("quiver.toml");
        std::fs::write(&path, "cache_mb = 32\nmax_connections = 5\n").expect("write");
        let config = Config::load(flags(&["--max-connections", "6"]), Some(&path)).expect("load");
        assert_eq!(config.cache_mb, 32);
        assert_eq!(config.max_connections, 6);
        let big = dir.path().join("big.toml");
        let padding = "#".repeat(usize::try_from(MAX_CONFIG_FILE_BYTES).expect("fits") + 1);
        std::fs::write(&big, padding).expect("write");
        assert!(matches!(
            Settings::from_file(&big),
            Err(ConfigError::TooLarge { .. })
        ));
    }

    #[test]
    fn contradictions_and_limits() {
        let half_tls = Settings {
            tls_cert: Some("c.pem".into()),
            ..Settings::default()
        };
        let message = Config::resolve(half_tls).unwrap_err().to_string();
        assert!(message.contains("tls_cert and tls_key"), "{message}");
        for max_connections in [0, MAX_CONNECTIONS_CEILING + 1] {
            let settings = Settings {
                max_connections: Some(max_connections),
                ..Settings::default()
            };
            assert!(matches!(
                Config::resolve(settings),
                Err(ConfigError::Invalid(_))
            ));
        }
        let no_cache = Settings {
            cache_mb: Some(0),
            ..Settings::default()
        };
        assert!(matches!(
            Config::resolve(no_cache),
            Err(ConfigError::Invalid(_))
        ));
    }
}
