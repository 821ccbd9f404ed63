//! Handlers, one module per resource, and the mapping from store records to
//! wire views.

pub mod configs;
pub mod health;
pub mod keys;
pub mod notifications;
pub mod platforms;
pub mod projects;
pub mod results;
pub mod reviews;
pub mod runners;
pub mod sync;
pub mod users;
pub mod views;
