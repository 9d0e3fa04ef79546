//! Reads a `Retry-After` header (RFC 9110 §10.2.3) into a wait that cannot be negative, NaN or
//! infinite: delta-seconds or an HTTP-date, bounded by [`CEILING`].
//!
//! The header is server input: anything else (a negative number, `inf`, `1e400`, garbage) is
//! rejected as [`RetryAfterError`], never turned into a panic or a non-finite number.

use std::time::{Duration, SystemTime};

/// The longest wait a `Retry-After` is read as; a larger value is kept as this ceiling (and a
/// retry policy's `max_retry_after` decides whether to wait that long at all).
pub const CEILING: Duration = Duration::from_secs(24 * 60 * 60);

/// Why a `Retry-After` value was not read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RetryAfterError {
    #[error("Retry-After is not valid text")]
    NotText,
    #[error("Retry-After \"{0}\" is negative")]
    Negative(String),
    #[error("Retry-After \"{0}\" is neither delta-seconds nor an HTTP-date")]
    Unreadable(String),
}

/// Parses a `Retry-After` value as seen at `now`. A date in the past means "now" (zero).
///
/// Delta-seconds are an integer in RFC 9110; a decimal fraction (`1.5`, as some servers send)
/// is accepted too. Values beyond [`CEILING`] are read as the ceiling.
pub fn parse(value: &[u8], now: SystemTime) -> Result<Duration, RetryAfterError> {
    let text = std::str::from_utf8(value)
        .map_err(|_| RetryAfterError::NotText)?
        .trim();
    let shown = || text.chars().take(40).collect::<String>();
    if let Some(seconds) = delta_seconds(text) {
        return seconds.ok_or_else(|| RetryAfterError::Negative(shown()));
    }
    match httpdate::parse_http_date(text) {
        Ok(when) => Ok(when
            .duration_since(now)
            .unwrap_or(Duration::ZERO)
            .min(CEILING)),
        Err(_) => Err(RetryAfterError::Unreadable(shown())),
    }
}

/// `Some(Some(wait))` for a non-negative decimal number, `Some(None)` for a negative one, `None`
/// when the text is not a plain decimal number (digits, at most one point, an optional sign).
fn delta_seconds(text: &str) -> Option<Option<Duration>> {
    let (negative, digits) = match text.as_bytes().first()? {
        b'-' => (true, &text[1..]),
        b'+' => (false, &text[1..]),
        _ => (false, text),
    };
    let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
    let plain = |part: &str| part.bytes().all(|b| b.is_ascii_digit());
    if (whole.is_empty() && fraction.is_empty()) || !plain(whole) || !plain(fraction) {
        return None;
    }
    let all_zero = whole.bytes().chain(fraction.bytes()).all(|b| b == b'0');
    if negative && !all_zero {
        return Some(None);
    }
    // Digits only: a value too long for u64 is past the ceiling anyway.
    let whole_secs = whole.trim_start_matches('0');
    if whole_secs.len() > 12 {
        return Some(Some(CEILING));
    }
    let secs: u64 = if whole_secs.is_empty() {
        0
    } else {
        whole_secs.parse().ok()?
    };
    let nanos: u32 = fraction
        .bytes()
        .chain(std::iter::repeat(b'0'))
        .take(9)
        .fold(0, |n, b| n * 10 + u32::from(b - b'0'));
    Some(Some(
        Duration::new(secs, 0)
            .saturating_add(Duration::from_nanos(nanos.into()))
            .min(CEILING),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(now: SystemTime, text: &str) -> Result<Duration, RetryAfterError> {
        parse(text.as_bytes(), now)
    }

    #[test]
    fn delta_seconds_are_read_and_bounded() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(at(now, "2"), Ok(Duration::from_secs(2)));
        assert_eq!(at(now, " 1.5 "), Ok(Duration::from_millis(1500)));
        assert_eq!(at(now, "0"), Ok(Duration::ZERO));
        assert_eq!(at(now, "-0"), Ok(Duration::ZERO));
        assert_eq!(at(now, "100000"), Ok(CEILING));
        assert_eq!(at(now, &"9".repeat(400)), Ok(CEILING));
        assert_eq!(at(now, "-5"), Err(RetryAfterError::Negative("-5".into())));
        for bad in [
            "1e300", "inf", "NaN", "1e400", "", ".", "1.2.3", "0x10", "5s",
        ] {
            assert!(
                matches!(at(now, bad), Err(RetryAfterError::Unreadable(_))),
                "{bad:?}: {:?}",
                at(now, bad)
            );
        }
        assert_eq!(parse(b"\xff", now), Err(RetryAfterError::NotText));
    }

    proptest::proptest! {
        #[test]
        fn any_text_reads_as_a_bounded_wait_or_an_error(text in "\\PC{0,40}") {
            if let Ok(wait) = parse(text.as_bytes(), SystemTime::now()) {
                proptest::prop_assert!(wait <= CEILING);
            }
        }

        #[test]
        fn whole_seconds_read_as_themselves_up_to_the_ceiling(seconds in 0u64..u64::MAX) {
            let wait = parse(seconds.to_string().as_bytes(), SystemTime::now()).unwrap();
            proptest::prop_assert_eq!(wait, Duration::from_secs(seconds).min(CEILING));
        }
    }

    #[test]
    fn http_dates_are_waits_from_now() {
        let now = httpdate::parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT").unwrap();
        assert_eq!(
            at(now, "Sun, 06 Nov 1994 08:49:40 GMT"),
            Ok(Duration::from_secs(3))
        );
        // A date in the past: retry now.
        assert_eq!(at(now, "Sun, 06 Nov 1994 08:49:00 GMT"), Ok(Duration::ZERO));
        // Far in the future: the ceiling.
        assert_eq!(at(now, "Fri, 31 Dec 9999 23:59:59 GMT"), Ok(CEILING));
    }
}
