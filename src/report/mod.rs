//! Rendering a [`RunResults`](crate::results::RunResults): the terminal summary and the results
//! JSON file (written atomically).

pub mod json;
pub mod terminal;
