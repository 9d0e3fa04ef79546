//! HDR histograms of microseconds: construction, summary statistics ([`LatencyStat`]) and the
//! portable encoding (HDR V2 + deflate, base64) that lets later tools merge and compare runs
//! exactly. Vocabulary: the mock, the metrics and every analysis share it.

use base64::Engine;
use hdrhistogram::serialization::{Deserializer, Serializer, V2DeflateSerializer};
use hdrhistogram::Histogram;

use crate::results::LatencyStat;

/// Highest trackable value: one hour in microseconds. Larger values are clamped to it.
pub const MAX_MICROS: u64 = 3_600_000_000;

/// A duration in whole microseconds, the unit of every histogram (saturating).
pub fn micros(duration: std::time::Duration) -> u64 {
    u64::try_from(duration.as_micros()).unwrap_or(u64::MAX)
}

/// A histogram of microseconds, 1 µs to 1 h, 3 significant digits.
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_MICROS, 3).expect("static histogram bounds are valid")
}

/// Summary statistics in milliseconds.
pub fn stat_ms(histogram: &Histogram<u64>) -> LatencyStat {
    let ms = |micros: u64| micros as f64 / 1000.0;
    if histogram.is_empty() {
        return LatencyStat::default();
    }
    LatencyStat {
        count: histogram.len(),
        mean: histogram.mean() / 1000.0,
        min: ms(histogram.min()),
        max: ms(histogram.max()),
        p50: ms(histogram.value_at_quantile(0.50)),
        p90: ms(histogram.value_at_quantile(0.90)),
        p95: ms(histogram.value_at_quantile(0.95)),
        p99: ms(histogram.value_at_quantile(0.99)),
        p99_9: ms(histogram.value_at_quantile(0.999)),
        requests: None,
    }
}

/// HDR V2 + deflate, base64 (standard alphabet, padded).
pub fn encode_histogram(histogram: &Histogram<u64>) -> String {
    let mut bytes = Vec::new();
    V2DeflateSerializer::new()
        .serialize(histogram, &mut bytes)
        .expect("serializing into memory cannot fail");
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Why an encoded histogram could not be read.
#[derive(Debug, thiserror::Error)]
pub enum HistogramDecodeError {
    #[error("histogram is not valid base64: {0}")]
    Base64(#[from] base64::DecodeError),
    #[error("histogram is not a valid HDR V2 encoding: {0:?}")]
    Hdr(hdrhistogram::serialization::DeserializeError),
}

/// Reverses [`encode_histogram`].
pub fn decode_histogram(text: &str) -> Result<Histogram<u64>, HistogramDecodeError> {
    let bytes = base64::engine::general_purpose::STANDARD.decode(text)?;
    Deserializer::new()
        .deserialize(&mut bytes.as_slice())
        .map_err(HistogramDecodeError::Hdr)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoding_round_trips_exactly() {
        let mut histogram = new_histogram();
        for value in [1, 10, 1_000, 52_000, 2_000_000, MAX_MICROS] {
            histogram.record(value).unwrap();
        }
        histogram.saturating_record(MAX_MICROS * 10);
        let decoded = decode_histogram(&encode_histogram(&histogram)).unwrap();
        assert_eq!(decoded, histogram);
        assert_eq!(decoded.len(), 7);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(decode_histogram("not base64!").is_err());
        assert!(decode_histogram("aGVsbG8=").is_err());
    }
}
