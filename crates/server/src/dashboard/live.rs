//! Server-sent event streams for the live parts of pages.
//!
//! Each stream re-reads the store every [`LIVE_INTERVAL`] and sends only
//! what changed. Polling the store (rather than an in-process broadcast)
//! means a page stays live whichever replica it is connected to; the cost
//! is one or two indexed reads per open page per interval. Streams end
//! when the server shuts down, so graceful shutdown never waits on a
//! browser.

use crate::app::AppState;
use ai_review_domain::SessionSecret;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use std::convert::Infallible;
use std::future::Future;
use std::time::Duration;

/// How often a review's stream re-reads its task and log.
pub const LOG_INTERVAL: Duration = Duration::from_millis(500);
/// How often the runners and queue streams re-read the store.
pub const TABLE_INTERVAL: Duration = Duration::from_secs(2);
/// A stream ends after this long; the browser reconnects (and is
/// authenticated again), so nothing is missed.
pub const MAX_STREAM: Duration = Duration::from_secs(15 * 60);

/// An event replacing the element with id `id` by `html`.
pub fn html_event(id: &str, html: &str) -> Event {
    let payload = serde_json::json!({ "id": id, "html": html });
    Event::default().event("html").data(payload.to_string())
}

/// An event appending a line to the page's log; its id is the line's
/// sequence number, so a reconnecting browser (`Last-Event-ID`) continues
/// after it instead of receiving lines twice.
pub fn log_event(seq: i64, line: &str) -> Event {
    Event::default().event("log").id(seq.to_string()).data(line)
}

/// An event asking the page to reload (the thing it shows has finished).
pub fn reload_event() -> Event {
    // Browsers drop events whose data is empty.
    Event::default().event("reload").data("finished")
}

/// An SSE response that calls `step` at once and then every `interval`,
/// sending the events it returns, until it returns `None`, the viewer's
/// session ends (logout, disabled user, expiry: checked before every step),
/// [`MAX_STREAM`] passes, or the server shuts down.
pub fn stream<S, F, Fut>(
    state: &AppState,
    session: SessionSecret,
    interval: Duration,
    init: S,
    step: F,
) -> Response
where
    S: Send + 'static,
    F: FnMut(S) -> Fut + Send + 'static,
    Fut: Future<Output = Option<(Vec<Event>, S)>> + Send + 'static,
{
    let shutdown = state.shutdown.clone();
    let app = state.clone();
    let deadline = tokio::time::Instant::now() + MAX_STREAM;
    let events = futures::stream::unfold(
        (Some(init), step, shutdown, true),
        move |(st, mut step, mut shutdown, first)| {
            let app = app.clone();
            let session = session.clone();
            async move {
                let st = st?;
                if !first {
                    tokio::select! {
                        () = tokio::time::sleep(interval) => {}
                        _ = shutdown.wait_for(|s| *s) => return None,
                    }
                }
                if *shutdown.borrow() || tokio::time::Instant::now() >= deadline {
                    return None;
                }
                crate::auth::live_session(&app, &session).await.ok()??;
                let (events, next) = step(st).await?;
                Some((events, (Some(next), step, shutdown, false)))
            }
        },
    )
    .flat_map(|evs| futures::stream::iter(evs.into_iter().map(Ok::<_, Infallible>)));
    Sse::new(events)
        .keep_alive(KeepAlive::default())
        .into_response()
}
