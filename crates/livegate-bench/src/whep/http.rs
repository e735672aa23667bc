//! The HTTP side of a WHEP exchange that is pure text: resolving the session's `Location`,
//! reading `Retry-After`, and turning an error body into a one-line reason.

use std::time::{Duration, SystemTime};

use reqwest::Url;

/// The session resource's absolute URL: `Location` is a URI reference, usually relative
/// (`/live/cam/whep/abc`), resolved against the URL the offer was POSTed to (RFC 9110
/// §10.2.2, RFC 3986 §5).
pub(crate) fn resolve_location(endpoint: &Url, location: &str) -> Result<Url, String> {
    endpoint
        .join(location)
        .map_err(|e| format!("Location {location:?}: {e}"))
}

/// How long `Retry-After` says to wait: delay-seconds or an HTTP-date (RFC 9110 §10.2.3),
/// measured from `now`. A date in the past means "now"; anything else unreadable is `None`.
pub fn retry_after_delay(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// The gateway answers errors with a one-line reason; keep the first non-empty line, bounded,
/// so a misbehaving server's HTML page does not flood a report.
pub(crate) fn reason_line(body: &str) -> String {
    const MAX_CHARS: usize = 200;
    let line = body
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("");
    match line.char_indices().nth(MAX_CHARS) {
        Some((cut, _)) => format!("{}…", &line[..cut]),
        None => line.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_location_resolves_against_the_endpoint() {
        let endpoint = Url::parse("http://127.0.0.1:8935/live/cam/whep?server_metrics=1").unwrap();
        assert_eq!(
            resolve_location(&endpoint, "/live/cam/whep/abc123")
                .unwrap()
                .as_str(),
            "http://127.0.0.1:8935/live/cam/whep/abc123"
        );
        // A path-relative reference replaces the last segment (RFC 3986 §5.2.3).
        assert_eq!(
            resolve_location(&endpoint, "whep/abc").unwrap().as_str(),
            "http://127.0.0.1:8935/live/cam/whep/abc"
        );
        assert_eq!(
            resolve_location(&endpoint, "http://[::1]:9000/s/1")
                .unwrap()
                .as_str(),
            "http://[::1]:9000/s/1"
        );
    }

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        let now = httpdate::parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT").unwrap();
        assert_eq!(retry_after_delay("5", now), Some(Duration::from_secs(5)));
        assert_eq!(retry_after_delay(" 0 ", now), Some(Duration::ZERO));
        assert_eq!(
            retry_after_delay("Sun, 06 Nov 1994 08:50:07 GMT", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            retry_after_delay("Sun, 06 Nov 1994 08:00:00 GMT", now),
            Some(Duration::ZERO),
            "a past date means retry now"
        );
        assert_eq!(retry_after_delay("-3", now), None);
        assert_eq!(retry_after_delay("soon", now), None);
    }

    #[test]
    fn reason_is_the_first_non_empty_line_bounded() {
        assert_eq!(
            reason_line("\n  stream cam has no output yet \nmore"),
            "stream cam has no output yet"
        );
        assert_eq!(reason_line(""), "");
        let long = "é".repeat(500);
        let reason = reason_line(&long);
        assert_eq!(reason.chars().count(), 201);
        assert!(reason.ends_with('…'));
    }
}
