//! Rendering of a review's result for the forge (being written).
