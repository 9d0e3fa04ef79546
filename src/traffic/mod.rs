//! The traffic model: pure functions of the plan, the seed and the request index k — when
//! request k is due ([`schedule`]), which requests a shard sends and which are warm-up
//! ([`planned_requests`]), and which side of a shadow pair serves it ([`shadow`]). The driver, the
//! spend projection and the benches all use these, so they never disagree.

pub mod schedule;
pub mod shadow;

pub use schedule::{planned_requests, Schedule, ARRIVAL_SALT};
pub use shadow::sides_of;
