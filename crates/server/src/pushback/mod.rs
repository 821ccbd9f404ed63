//! Push-back: what a finished review posts to its merge/pull request.
//!
//! * [`render`]: the summary comment and the inline comments rendered from
//!   the review's result document (pure, unit-tested).
//! * [`run`]: the worker posting finished reviews, as leased jobs.

pub mod render;
pub mod run;
