use ai_review_domain::{Attempt, TaskState};

/// Why a store call failed. The first variants are expected outcomes the
/// API maps to 404/409; [`StoreError::Backend`] is everything else.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The record does not exist.
    #[error("{entity} {id} not found")]
    NotFound {
        /// Kind of record.
        entity: &'static str,
        /// Its id as given.
        id: String,
    },
    /// A uniqueness or state rule refused the change.
    #[error("conflict: {0}")]
    Conflict(String),
    /// The caller presented an older attempt than the task's current one:
    /// it lost its lease and another claim happened since.
    #[error("stale attempt {presented}: the task is on attempt {current}")]
    StaleAttempt {
        /// The task's current attempt.
        current: Attempt,
        /// The attempt the caller presented.
        presented: Attempt,
    },
    /// The attempt matches but another runner holds the task.
    #[error("the task is held by another runner")]
    NotHolder,
    /// The task is no longer held by anyone (it ended or was re-queued).
    #[error("the task is {state}, not running")]
    NotActive {
        /// Its current state.
        state: TaskState,
    },
    /// A stored value could not be read back (schema drift, manual edits).
    #[error("corrupt row: {0}")]
    Corrupt(String),
    /// The database failed or is unreachable.
    #[error("database error")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl StoreError {
    /// Shorthand for [`StoreError::NotFound`].
    pub fn not_found(entity: &'static str, id: impl ToString) -> Self {
        StoreError::NotFound {
            entity,
            id: id.to_string(),
        }
    }
}
