//! Stream keys: the name a publisher publishes under and a viewer plays.

use std::fmt;

/// Longest accepted stream key, in bytes.
pub const MAX_STREAM_KEY_LEN: usize = 128;

/// Why a string is not a valid [`StreamKey`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StreamKeyError {
    #[error("stream key is empty")]
    Empty,
    #[error("stream key is longer than {MAX_STREAM_KEY_LEN} bytes")]
    TooLong,
    #[error("stream key contains {0:?}; allowed are ASCII letters, digits, '-', '_' and '.'")]
    BadChar(char),
    #[error("stream key may not start with '.'")]
    LeadingDot,
}

/// A validated stream key: 1 to 128 ASCII letters, digits, `-`, `_` or `.`, not starting with
/// `.` (so it is never `.` or `..` and is safe in a URL path segment, a metric label and a
/// Redis key). Unlike go-livepeer, `-` is allowed.
///
/// ```
/// use livegate_media::StreamKey;
/// assert!(StreamKey::parse("my-stream_1").is_ok());
/// assert!(StreamKey::parse("../etc").is_err());
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StreamKey(String);

impl StreamKey {
    pub fn parse(s: &str) -> Result<Self, StreamKeyError> {
        if s.is_empty() {
            return Err(StreamKeyError::Empty);
        }
        if s.len() > MAX_STREAM_KEY_LEN {
            return Err(StreamKeyError::TooLong);
        }
        if let Some(c) = s
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
        {
            return Err(StreamKeyError::BadChar(c));
        }
        if s.starts_with('.') {
            return Err(StreamKeyError::LeadingDot);
        }
        Ok(StreamKey(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for StreamKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for StreamKey {
    type Err = StreamKeyError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        StreamKey::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_dashes_and_rejects_path_tricks() {
        assert_eq!(StreamKey::parse("a-b_c.d").unwrap().as_str(), "a-b_c.d");
        assert_eq!(StreamKey::parse(""), Err(StreamKeyError::Empty));
        assert_eq!(StreamKey::parse(".."), Err(StreamKeyError::LeadingDot));
        assert_eq!(StreamKey::parse("a/b"), Err(StreamKeyError::BadChar('/')));
        assert_eq!(StreamKey::parse("a%2F"), Err(StreamKeyError::BadChar('%')));
        assert_eq!(StreamKey::parse("a\0"), Err(StreamKeyError::BadChar('\0')));
        assert_eq!(
            StreamKey::parse(&"x".repeat(1024)),
            Err(StreamKeyError::TooLong)
        );
    }
}
