//! Synthetic images a class attaches to its requests: `images = { count, width, height }`, PNGs
//! drawn from the scenario's seed and the class's name (a gradient and a few coloured
//! rectangles, so they differ from one another and compress as photographs of documents do),
//! encoded once as `data:` URLs when the scenario is validated. A pool of [`POOL`] images per
//! class is drawn from request by request, so the same request carries the same images on every
//! target and run.

use std::sync::Arc;

use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};
use serde_json::Value;

use crate::protocol::images;
use crate::protocol::Api;

/// Distinct images per class.
pub const POOL: usize = 8;
/// The largest side a synthetic image may have.
pub const MAX_SIDE: u32 = 4096;
/// The most images one request may carry.
pub const MAX_PER_REQUEST: u32 = 20;

/// A class's images.
#[derive(Debug, Clone, PartialEq)]
pub struct ImagePlan {
    pub count: u32,
    pub width: u32,
    pub height: u32,
    /// OpenAI's `detail` (`low`, `high`, `auto`), sent when set.
    pub detail: Option<String>,
    /// The pool, as `data:` URLs.
    pool: Arc<Vec<String>>,
}

impl ImagePlan {
    /// `count` images of `width` × `height` per request, drawn for class `class` of a scenario
    /// with `seed`.
    pub fn synthetic(
        class: &str,
        seed: u64,
        count: u32,
        (width, height): (u32, u32),
        detail: Option<String>,
    ) -> Result<ImagePlan, String> {
        if !(1..=MAX_PER_REQUEST).contains(&count) {
            return Err(format!(
                "count must be 1 to {MAX_PER_REQUEST} (got {count})"
            ));
        }
        for (side, value) in [("width", width), ("height", height)] {
            if !(1..=MAX_SIDE).contains(&value) {
                return Err(format!(
                    "{side} must be 1 to {MAX_SIDE} pixels (got {value})"
                ));
            }
        }
        let base = class.bytes().fold(seed ^ 0x1A6E_5EED, |hash, byte| {
            (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01B3)
        });
        let pool = (0..POOL as u64)
            .map(|i| {
                let png = draw_png(base ^ i.wrapping_mul(0x9E37_79B9), width, height)?;
                Ok(images::data_url("image/png", &png))
            })
            .collect::<Result<Vec<_>, String>>()?;
        Ok(ImagePlan {
            count,
            width,
            height,
            detail,
            pool: Arc::new(pool),
        })
    }

    /// The image parts (OpenAI's chat format) of a request whose draw picked `pick`.
    pub fn parts(&self, pick: u64) -> Vec<Value> {
        (0..u64::from(self.count))
            .map(|j| {
                let url = &self.pool[((pick + j) % self.pool.len() as u64) as usize];
                images::openai_part(url, self.detail.as_deref())
            })
            .collect()
    }

    /// The tokens a request's images cost on `api`, by the provider's formula.
    pub fn tokens(&self, api: Api) -> u64 {
        u64::from(self.count) * images::tokens(api, self.width, self.height, self.detail.as_deref())
    }

    /// Bytes of one image's `data:` URL, on average over the pool.
    pub fn mean_url_bytes(&self) -> usize {
        self.pool.iter().map(String::len).sum::<usize>() / self.pool.len().max(1)
    }
}

/// A PNG of `width` × `height`: a diagonal gradient between two drawn colours and six drawn
/// rectangles.
fn draw_png(seed: u64, width: u32, height: u32) -> Result<Vec<u8>, String> {
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut colour = || [rng.random::<u8>(), rng.random::<u8>(), rng.random::<u8>()];
    let (from, to) = (colour(), colour());
    let (w, h) = (width as usize, height as usize);
    let mut pixels = vec![0u8; w * h * 3];
    for y in 0..h {
        for x in 0..w {
            let t = (x + y) as f64 / (w + h).max(2) as f64;
            let at = (y * w + x) * 3;
            for c in 0..3 {
                pixels[at + c] = (f64::from(from[c]) * (1.0 - t) + f64::from(to[c]) * t) as u8;
            }
        }
    }
    for _ in 0..6 {
        let fill = [rng.random::<u8>(), rng.random::<u8>(), rng.random::<u8>()];
        let (x0, y0) = (rng.random_range(0..w), rng.random_range(0..h));
        let (x1, y1) = (
            (x0 + rng.random_range(1..=w.div_ceil(3))).min(w),
            (y0 + rng.random_range(1..=h.div_ceil(3))).min(h),
        );
        for y in y0..y1 {
            for x in x0..x1 {
                let at = (y * w + x) * 3;
                pixels[at..at + 3].copy_from_slice(&fill);
            }
        }
    }
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, width, height);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header().map_err(|e| e.to_string())?;
    writer
        .write_image_data(&pixels)
        .map_err(|e| e.to_string())?;
    writer.finish().map_err(|e| e.to_string())?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn synthetic_images_are_pngs_of_the_asked_size_drawn_from_the_seed() {
        let plan = ImagePlan::synthetic("c", 7, 2, (512, 384), Some("low".into())).unwrap();
        let again = ImagePlan::synthetic("c", 7, 2, (512, 384), Some("low".into())).unwrap();
        assert_eq!(plan, again, "the same seed and class draw the same pool");
        let other = ImagePlan::synthetic("d", 7, 2, (512, 384), None).unwrap();
        assert_ne!(plan.pool, other.pool);
        let parts = plan.parts(3);
        assert_eq!(parts.len(), 2);
        assert_ne!(parts[0], parts[1]);
        let url = parts[0]["image_url"]["url"].as_str().unwrap();
        let payload = url.strip_prefix("data:image/png;base64,").unwrap();
        let bytes =
            base64::Engine::decode(&base64::engine::general_purpose::STANDARD, payload).unwrap();
        assert_eq!(images::dimensions(&bytes), Some((512, 384)));
        assert_eq!(parts[0]["image_url"]["detail"], "low");
        assert_eq!(plan.tokens(Api::OpenAi), 2 * 85);
        assert_eq!(plan.tokens(Api::Anthropic), 2 * (512 * 384 / 750 + 1));
        assert!(plan.mean_url_bytes() > 100);
    }

    #[test]
    fn sizes_and_counts_out_of_bounds_are_refused() {
        assert!(ImagePlan::synthetic("c", 1, 0, (8, 8), None)
            .unwrap_err()
            .contains("count"));
        assert!(ImagePlan::synthetic("c", 1, 1, (8, 5000), None)
            .unwrap_err()
            .contains("height must be 1 to 4096"));
    }
}
