//! Kafka's names for the topic settings Quiver keeps, both ways.
//!
//! | Kafka config | Quiver | notes |
//! |---|---|---|
//! | `retention.ms` | `retention_ms` | -1 (Kafka's "forever") and deleting it fall back to the broker default |
//! | `retention.bytes` | `retention_bytes` | as above |
//! | `message.timestamp.type` | `timestamp_type` | `CreateTime` or `LogAppendTime`; set when the topic is created |
//! | `compression.type` | `compression` | `producer` (default), `uncompressed`, `gzip`, `snappy`, `lz4`, `zstd` |
//! | `cleanup.policy` | | always `delete` (read-only; Quiver does not compact) |
//!
//! Any other name is `INVALID_CONFIG`, so a client learns at once that a
//! setting it relies on is not kept.

use quiver_proto::api::{
    AlterTopicRequest, Change, RetentionDefaults, TimestampType, TopicCompression, TopicConfig,
};
use quiver_proto::{ErrorCode, WireError};

use super::Context;
use super::apis::error_code;
use crate::service::alter_topic;

/// Kafka's error for a config name or value the broker refuses.
pub(super) const INVALID_CONFIG: i16 = 40;

/// Kafka's resource type for a topic (configs of other kinds of resource
/// are not kept).
pub(super) const TOPIC_RESOURCE: i8 = 2;

const RETENTION_MS: &str = "retention.ms";
const RETENTION_BYTES: &str = "retention.bytes";
const TIMESTAMP_TYPE: &str = "message.timestamp.type";
const CLEANUP_POLICY: &str = "cleanup.policy";
const COMPRESSION_TYPE: &str = "compression.type";

/// One config as Kafka describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct ConfigEntry {
    pub(super) name: &'static str,
    pub(super) value: String,
    /// Set on the topic itself (else the broker's default).
    pub(super) topic_set: bool,
    pub(super) read_only: bool,
}

impl ConfigEntry {
    /// Kafka's config source: 1 for a topic's own setting, 5 for a default.
    pub(super) fn source(&self) -> i8 {
        if self.topic_set { 1 } else { 5 }
    }
}

/// What a topic's configs are now.
pub(super) fn describe(config: &TopicConfig, defaults: RetentionDefaults) -> Vec<ConfigEntry> {
    let limit = |own: Option<u64>, default: Option<u64>| {
        own.or(default)
            .map_or_else(|| "-1".to_owned(), |v| v.to_string())
    };
    vec![
        ConfigEntry {
            name: RETENTION_MS,
            value: limit(config.retention_ms, defaults.retention_ms),
            topic_set: config.retention_ms.is_some(),
            read_only: false,
        },
        ConfigEntry {
            name: RETENTION_BYTES,
            value: limit(config.retention_bytes, defaults.retention_bytes),
            topic_set: config.retention_bytes.is_some(),
            read_only: false,
        },
        ConfigEntry {
            name: TIMESTAMP_TYPE,
            value: match config.timestamp_type {
                TimestampType::CreateTime => "CreateTime",
                TimestampType::LogAppendTime => "LogAppendTime",
            }
            .to_owned(),
            topic_set: config.timestamp_type != TimestampType::default(),
            read_only: false,
        },
        ConfigEntry {
            name: COMPRESSION_TYPE,
            value: config.compression.name().to_owned(),
            topic_set: config.compression != TopicCompression::default(),
            read_only: false,
        },
        ConfigEntry {
            name: CLEANUP_POLICY,
            value: "delete".to_owned(),
            topic_set: false,
            read_only: true,
        },
    ]
}

/// Sets `name` to `value` in `config`, or back to its default when `value`
/// is `None`; `creating` allows the settings fixed after creation.
pub(super) fn set(
    config: &mut TopicConfig,
    name: &str,
    value: Option<&str>,
    creating: bool,
) -> Result<(), String> {
    match name {
        RETENTION_MS => config.retention_ms = limit(name, value)?,
        RETENTION_BYTES => config.retention_bytes = limit(name, value)?,
        TIMESTAMP_TYPE if creating => {
            config.timestamp_type = match value {
                None | Some("CreateTime") => TimestampType::CreateTime,
                Some("LogAppendTime") => TimestampType::LogAppendTime,
                Some(other) => {
                    return Err(format!(
                        "{name} is CreateTime or LogAppendTime, not {other:?}"
                    ));
                }
            };
        }
        TIMESTAMP_TYPE => return Err(format!("{name} is set when a topic is created")),
        COMPRESSION_TYPE => {
            config.compression = value.map_or(Ok(TopicCompression::default()), str::parse)?;
        }
        CLEANUP_POLICY if matches!(value, None | Some("delete")) => {}
        CLEANUP_POLICY => return Err(format!("{name} is always delete (Quiver does not compact)")),
        other => return Err(format!("{other} is not a topic config this broker keeps")),
    }
    Ok(())
}

/// The configs of `topic` now, with `update` applied (each name and value,
/// `None` for back to the default): the target of an alter.
pub(super) fn updated<'a>(
    context: &Context,
    topic: &str,
    update: impl IntoIterator<Item = (&'a str, Option<&'a str>)>,
) -> Result<TopicConfig, (i16, String)> {
    let mut config = context
        .service
        .storage
        .topic(topic)
        .map_err(|e| refused(&WireError::from(e)))?
        .config;
    for (name, value) in update {
        set(&mut config, name, value, false).map_err(|message| (INVALID_CONFIG, message))?;
    }
    Ok(config)
}

/// Makes `topic`'s retention what `target` says (unless `validate_only`).
pub(super) async fn apply(
    context: &Context,
    topic: &str,
    target: TopicConfig,
    validate_only: bool,
) -> Result<(), (i16, String)> {
    if validate_only {
        return Ok(());
    }
    let change = |value: Option<u64>| value.map_or(Change::Clear, Change::Set);
    let request = AlterTopicRequest {
        name: topic.to_owned(),
        retention_ms: change(target.retention_ms),
        retention_bytes: change(target.retention_bytes),
        compression: Some(target.compression),
        partitions: None,
    };
    alter_topic::handle(&context.service, request)
        .await
        .map(|_| ())
        .map_err(|e| refused(&e))
}

/// Refuses a resource that is not a topic.
pub(super) fn check_topic_resource(resource_type: i8) -> Result<(), (i16, String)> {
    if resource_type == TOPIC_RESOURCE {
        return Ok(());
    }
    Err(refused(&WireError::new(
        ErrorCode::InvalidRequest,
        format!(
            "resource type {resource_type}: only topic configs (2) are kept; the broker's are set on its command line"
        ),
    )))
}

fn refused(e: &WireError) -> (i16, String) {
    (error_code(e), e.message.clone())
}

/// A retention limit: a non-negative number, or -1 / none for the default.
fn limit(name: &str, value: Option<&str>) -> Result<Option<u64>, String> {
    match value.map(str::parse::<i64>) {
        None | Some(Ok(-1)) => Ok(None),
        Some(Ok(v)) if v >= 0 => Ok(Some(v as u64)),
        _ => Err(format!(
            "{name} is a number of at least 0, or -1 for the broker default"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_map_both_ways() {
        let mut config = TopicConfig::default();
        set(&mut config, "retention.ms", Some("60000"), false).expect("set");
        set(
            &mut config,
            "message.timestamp.type",
            Some("LogAppendTime"),
            true,
        )
        .expect("set");
        let described = describe(&config, RetentionDefaults::default());
        assert_eq!(described[0].value, "60000");
        assert!(described[0].topic_set);
        assert_eq!(described[1].value, "-1");
        assert_eq!(described[2].value, "LogAppendTime");
        assert_eq!(described[3].value, "producer");
        assert!(!described[3].topic_set);
        set(&mut config, "compression.type", Some("zstd"), false).expect("set");
        assert_eq!(
            describe(&config, RetentionDefaults::default())[3].value,
            "zstd"
        );
        set(&mut config, "compression.type", Some("uncompressed"), false).expect("set");
        assert_eq!(
            config.compression,
            TopicCompression::Codec(quiver_proto::batch::Compression::None)
        );
        set(&mut config, "compression.type", None, false).expect("back to the default");
        assert_eq!(config.compression, TopicCompression::Producer);
        set(&mut config, "retention.ms", Some("-1"), false).expect("back to the default");
        assert_eq!(config.retention_ms, None);
    }

    #[test]
    fn unknown_names_and_bad_values_are_refused() {
        let mut config = TopicConfig::default();
        assert!(set(&mut config, "segment.bytes", Some("1"), true).is_err());
        assert!(set(&mut config, "retention.ms", Some("-2"), false).is_err());
        assert!(set(&mut config, "retention.bytes", Some("lots"), false).is_err());
        assert!(
            set(
                &mut config,
                "message.timestamp.type",
                Some("LogAppendTime"),
                false
            )
            .is_err()
        );
        assert!(set(&mut config, "cleanup.policy", Some("compact"), true).is_err());
        assert!(set(&mut config, "compression.type", Some("brotli"), false).is_err());
        assert!(set(&mut config, "cleanup.policy", Some("delete"), true).is_ok());
    }
}
