//! The envelope of every `/api` response, success or error:
//!
//! ```json
//! {"data": {...}, "meta": {"pagination": {...}}, "error": null}
//! {"data": null, "error": {"title": "NOT_FOUND", "status": 404, "detail": "review 42 not found"}}
//! ```

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The response envelope.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct Envelope<T> {
    /// The payload; `null` on errors.
    pub data: Option<T>,
    /// Extra information such as pagination.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meta: Option<Meta>,
    /// `null` on success.
    pub error: Option<ApiErrorBody>,
}

impl<T> Envelope<T> {
    /// A success envelope.
    pub fn ok(data: T) -> Self {
        Self {
            data: Some(data),
            meta: None,
            error: None,
        }
    }

    /// A success envelope with pagination.
    pub fn paginated(data: T, pagination: Pagination) -> Self {
        Self {
            data: Some(data),
            meta: Some(Meta {
                pagination: Some(pagination),
            }),
            error: None,
        }
    }
}

impl Envelope<()> {
    /// An error envelope.
    pub fn error(title: &str, status: u16, detail: Option<String>) -> Self {
        Self {
            data: None,
            meta: None,
            error: Some(ApiErrorBody {
                title: title.to_owned(),
                status,
                detail,
            }),
        }
    }
}

/// Response metadata.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, JsonSchema)]
pub struct Meta {
    /// Present on paginated lists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pagination: Option<Pagination>,
}

/// Page information of a paginated list.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Pagination {
    /// 1-based page number.
    pub page: u64,
    /// Items per page.
    pub page_size: u64,
    /// Items in total.
    pub total: u64,
    /// Pages in total.
    pub total_pages: u64,
}

impl Pagination {
    /// Pagination for `total` items at `page` of `page_size`.
    pub fn new(page: u64, page_size: u64, total: u64) -> Self {
        Self {
            page,
            page_size,
            total,
            total_pages: total.div_ceil(page_size.max(1)),
        }
    }
}

/// The error part of the envelope.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, JsonSchema)]
pub struct ApiErrorBody {
    /// Machine-readable code: `BAD_REQUEST`, `UNAUTHORIZED`, `FORBIDDEN`,
    /// `NOT_FOUND`, `CONFLICT`, `PAYLOAD_TOO_LARGE`, `TOO_MANY_REQUESTS`,
    /// `INTERNAL_SERVER_ERROR`, ...
    pub title: String,
    /// The HTTP status, repeated.
    pub status: u16,
    /// What was wrong and what to do, for humans.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}
