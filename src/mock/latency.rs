//! Latency models of the mock server: a fixed delay or a seeded distribution.

use std::time::Duration;

use rand::Rng;
use rand_distr::{Distribution, Normal};

/// A delay the mock applies: fixed, normal (mean, standard deviation) or uniform (mean ± half-width).
/// Samples never go below zero.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum LatencyModel {
    Fixed(Duration),
    Normal {
        mean: Duration,
        stddev: Duration,
    },
    Uniform {
        mean: Duration,
        half_width: Duration,
    },
}

impl LatencyModel {
    /// The configured mean delay.
    pub fn mean(&self) -> Duration {
        match *self {
            LatencyModel::Fixed(d) => d,
            LatencyModel::Normal { mean, .. } | LatencyModel::Uniform { mean, .. } => mean,
        }
    }

    /// Draws one delay.
    pub fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> Duration {
        let seconds = match *self {
            LatencyModel::Fixed(d) => return d,
            LatencyModel::Normal { mean, stddev } => {
                match Normal::new(mean.as_secs_f64(), stddev.as_secs_f64()) {
                    Ok(normal) => normal.sample(rng),
                    Err(_) => mean.as_secs_f64(),
                }
            }
            LatencyModel::Uniform { mean, half_width } => {
                let low = mean.as_secs_f64() - half_width.as_secs_f64();
                let high = mean.as_secs_f64() + half_width.as_secs_f64();
                if high > low {
                    rand_distr::Uniform::new(low, high)
                        .map(|u| u.sample(rng))
                        .unwrap_or(low)
                } else {
                    low
                }
            }
        };
        Duration::from_secs_f64(seconds.max(0.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn distributions_center_on_their_mean_and_never_go_negative() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let model = LatencyModel::Normal {
            mean: Duration::from_millis(40),
            stddev: Duration::from_millis(5),
        };
        let samples: Vec<f64> = (0..10_000)
            .map(|_| model.sample(&mut rng).as_secs_f64() * 1e3)
            .collect();
        let mean = samples.iter().sum::<f64>() / samples.len() as f64;
        assert!((mean - 40.0).abs() < 0.3, "mean {mean}");

        let wide = LatencyModel::Uniform {
            mean: Duration::from_millis(1),
            half_width: Duration::from_millis(5),
        };
        assert!((0..1000).all(|_| wide.sample(&mut rng) <= Duration::from_millis(6)));
    }
}
