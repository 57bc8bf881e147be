//! Topic-name rules, Kafka's: 1 to 249 characters of `a-z A-Z 0-9 . _ -`,
//! and neither `.` nor `..`.

use crate::limits::MAX_TOPIC_NAME_BYTES;

/// Why a topic name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TopicNameError {
    /// The name is empty.
    #[error("topic name is empty")]
    Empty,
    /// The name is longer than [`MAX_TOPIC_NAME_BYTES`].
    #[error("topic name is {len} characters long; the maximum is {MAX_TOPIC_NAME_BYTES}")]
    TooLong {
        /// The name's length.
        len: usize,
    },
    /// The name holds a character outside `a-z A-Z 0-9 . _ -`.
    #[error("topic name contains {found:?}; only a-z A-Z 0-9 . _ - are allowed")]
    BadCharacter {
        /// The first offending character.
        found: char,
    },
    /// The name is `.` or `..`.
    #[error("topic name cannot be \".\" or \"..\"")]
    Dots,
}

/// Checks a topic name against Kafka's rule.
pub fn validate_topic_name(name: &str) -> Result<(), TopicNameError> {
    if name.is_empty() {
        return Err(TopicNameError::Empty);
    }
    if name.len() > MAX_TOPIC_NAME_BYTES {
        return Err(TopicNameError::TooLong { len: name.len() });
    }
    if name == "." || name == ".." {
        return Err(TopicNameError::Dots);
    }
    if let Some(found) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(TopicNameError::BadCharacter { found });
    }
    Ok(())
}

/// One partition of one topic: how the broker and the SDK name it (the
/// group coordinator's assignments, the consumer's positions).
#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct TopicPartition {
    /// The topic.
    pub topic: String,
    /// The partition number.
    pub partition: u32,
}

impl TopicPartition {
    /// `topic`'s partition `partition`.
    pub fn new(topic: impl Into<String>, partition: u32) -> Self {
        Self {
            topic: topic.into(),
            partition,
        }
    }
}

impl std::fmt::Display for TopicPartition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.topic, self.partition)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_kafka_names() {
        for name in ["click", "a", "page.views_v2-eu", &"x".repeat(249)] {
            assert_eq!(validate_topic_name(name), Ok(()), "{name}");
        }
    }

    #[test]
    fn refuses_bad_names() {
        assert_eq!(validate_topic_name(""), Err(TopicNameError::Empty));
        assert_eq!(
            validate_topic_name(&"x".repeat(250)),
            Err(TopicNameError::TooLong { len: 250 })
        );
        assert_eq!(validate_topic_name(".."), Err(TopicNameError::Dots));
        assert_eq!(
            validate_topic_name("a/b"),
            Err(TopicNameError::BadCharacter { found: '/' })
        );
        assert_eq!(
            validate_topic_name("café"),
            Err(TopicNameError::BadCharacter { found: 'é' })
        );
    }
}
