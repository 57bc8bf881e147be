//! What the client commands share about text: how values are written on a
//! terminal line (`--value-format`), and the hint for a topic that does not
//! exist.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use quiver_client::{Admin, ClientError, ErrorCode};

/// How a record's value appears on a line of input or output.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum ValueFormat {
    /// The bytes as they are (output replaces invalid UTF-8).
    #[default]
    Text,
    /// Two hexadecimal digits per byte.
    Hex,
    /// Standard base64 with padding.
    Base64,
}

impl ValueFormat {
    /// The bytes a line's value stands for.
    pub(crate) fn decode(self, text: &[u8]) -> Result<Vec<u8>, String> {
        match self {
            Self::Text => Ok(text.to_vec()),
            Self::Hex => hex::decode(text).map_err(|e| format!("not hexadecimal: {e}")),
            Self::Base64 => BASE64.decode(text).map_err(|e| format!("not base64: {e}")),
        }
    }

    /// The line's text for `bytes`.
    pub(crate) fn encode(self, bytes: &[u8]) -> String {
        match self {
            Self::Text => String::from_utf8_lossy(bytes).into_owned(),
            Self::Hex => hex::encode(bytes),
            Self::Base64 => BASE64.encode(bytes),
        }
    }
}

/// A timestamp (ms since the epoch) as RFC 3339 in UTC with milliseconds,
/// or the number itself when it is out of the calendar's range.
pub(crate) fn rfc3339_ms(ms: i64) -> String {
    let format = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    );
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&format).ok())
        .unwrap_or_else(|| ms.to_string())
}

/// `error` with a hint when it says `topic` does not exist: the closest
/// existing name, and the command that creates it.
pub(crate) async fn explain_unknown_topic(
    error: ClientError,
    admin: &Admin,
    topic: &str,
) -> anyhow::Error {
    if error.code() != Some(ErrorCode::UnknownTopic) {
        return error.into();
    }
    let names: Vec<String> = admin
        .list_topics()
        .await
        .map(|topics| topics.into_iter().map(|t| t.name).collect())
        .unwrap_or_default();
    anyhow::anyhow!("{}", unknown_topic_message(topic, &names))
}

/// "topic X does not exist", a "did you mean" when a name is close, and
/// the create command.
fn unknown_topic_message(topic: &str, existing: &[String]) -> String {
    let closest = existing
        .iter()
        .map(|name| (strsim::damerau_levenshtein(topic, name), name))
        .filter(|(distance, name)| *distance <= 2.max(name.len() / 3))
        .min();
    let suggestion = match closest {
        Some((_, name)) => format!("; did you mean `{name}`?"),
        None => ".".to_owned(),
    };
    format!(
        "topic {topic:?} does not exist [{}]{suggestion} To create it: quiver topic create {topic} --partitions N",
        ErrorCode::UnknownTopic
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_round_trip_and_name_bad_input() {
        let bytes = [0u8, 0xff, b'\n', b'a'];
        for format in [ValueFormat::Hex, ValueFormat::Base64] {
            let text = format.encode(&bytes);
            assert_eq!(format.decode(text.as_bytes()), Ok(bytes.to_vec()));
        }
        assert_eq!(ValueFormat::Hex.encode(&bytes), "00ff0a61");
        assert!(
            ValueFormat::Hex
                .decode(b"zz")
                .is_err_and(|e| e.starts_with("not hexadecimal"))
        );
        assert!(
            ValueFormat::Base64
                .decode(b"%%")
                .is_err_and(|e| e.starts_with("not base64"))
        );
        assert_eq!(ValueFormat::Text.decode(&bytes), Ok(bytes.to_vec()));
    }

    #[test]
    fn timestamps_print_as_rfc3339_utc() {
        assert_eq!(rfc3339_ms(1_764_064_800_123), "2025-11-25T10:00:00.123Z");
        assert_eq!(rfc3339_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339_ms(-1), "1969-12-31T23:59:59.999Z");
        assert_eq!(rfc3339_ms(i64::MAX), i64::MAX.to_string());
    }

    #[test]
    fn unknown_topics_suggest_a_close_name() {
        let names = vec!["click".to_owned(), "upload".to_owned()];
        assert_eq!(
            unknown_topic_message("clik", &names),
            "topic \"clik\" does not exist [UnknownTopic (3)]; did you mean `click`? \
             To create it: quiver topic create clik --partitions N"
        );
        assert_eq!(
            unknown_topic_message("payments", &names),
            "topic \"payments\" does not exist [UnknownTopic (3)]. \
             To create it: quiver topic create payments --partitions N"
        );
    }
}
