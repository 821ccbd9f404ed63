//! Push-back: what a finished review posts to its merge/pull request.
//!
//! * [`render`]: the summary comment and the inline comments rendered from
//!   the review's result document (pure, unit-tested).

pub mod render;
