//! The request id (`x-request-id`, set by the outermost layer when the
//! client sent none) of the request being handled, for code that queues
//! work on its behalf: a review's task carries the id of the API call or
//! webhook that queued it, so runner and executor logs name it too.

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;

tokio::task_local! {
    static REQUEST_ID: Option<String>;
}

/// A client-chosen id is kept only if it is short and plain (it ends up
/// in logs and task specs).
fn usable(v: &str) -> bool {
    !v.is_empty()
        && v.len() <= 64
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// The id of the request this task is handling, if any.
pub fn current() -> Option<String> {
    REQUEST_ID.try_with(Clone::clone).ok().flatten()
}

/// Middleware: makes the request's id available to [`current`] while the
/// handler runs.
pub async fn scope(req: Request, next: Next) -> Response {
    let id = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| usable(v))
        .map(str::to_owned);
    REQUEST_ID.scope(id, next.run(req)).await
}

#[cfg(test)]
mod tests {
    use super::usable;

    #[test]
    fn odd_client_ids_are_not_carried() {
        assert!(usable("0b9c7a1e-1d2f-4c5b-9a8e-123456789abc"));
        assert!(!usable(""));
        assert!(!usable("a b"));
        assert!(!usable(&"x".repeat(65)));
        assert!(!usable("id\nINFO forged log line"));
    }
}
