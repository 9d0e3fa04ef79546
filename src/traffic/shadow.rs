//! The shadow draw: which side (primary, candidate or both) serves request k of a migration
//! phase, a pure function of the phase's shares, the seed and k, so that the live run and the
//! spend projection agree on every request.

use crate::scenario::ShadowPlan;

/// Mixed into the seed for the draw that decides which side serves a request.
const SHARE_SALT: u64 = 0x5A4E_0000_0000_0001;
/// ... and for the draw that decides whether it is mirrored to the other side.
const MIRROR_SALT: u64 = 0x5A4E_0000_0000_0002;

/// A uniform number in [0, 1) from `seed`, `k` and `salt` (SplitMix64), the same on every run.
fn unit_draw(seed: u64, k: u64, salt: u64) -> f64 {
    let mut z = seed ^ salt ^ k.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64
}

/// Which sides request `k` goes to: `(primary, candidate)`.
pub fn sides_of(plan: &ShadowPlan, seed: u64, k: u64) -> (bool, bool) {
    let served_by_candidate = unit_draw(seed, k, SHARE_SALT) < plan.share;
    let mirrored = unit_draw(seed, k, MIRROR_SALT) < plan.mirror;
    (
        !served_by_candidate || mirrored,
        served_by_candidate || mirrored,
    )
}
