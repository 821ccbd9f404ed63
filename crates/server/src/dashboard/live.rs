//! Server-sent event streams for the live parts of pages.
//!
//! Each stream re-reads the store every [`LIVE_INTERVAL`] and sends only
//! what changed. Polling the store (rather than an in-process broadcast)
//! means a page stays live whichever replica it is connected to; the cost
//! is one or two indexed reads per open page per interval. Streams end
//! when the server shuts down, so graceful shutdown never waits on a
//! browser.

use crate::app::AppState;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use std::convert::Infallible;
use std::future::Future;
use std::time::Duration;

/// How often a live stream re-reads the store.
pub const LIVE_INTERVAL: Duration = Duration::from_millis(500);

/// An event replacing the element with id `id` by `html`.
pub fn html_event(id: &str, html: &str) -> Event {
    let payload = serde_json::json!({ "id": id, "html": html });
    Event::default().event("html").data(payload.to_string())
}

/// An event appending a line to the page's log.
pub fn log_event(line: &str) -> Event {
    Event::default().event("log").data(line)
}

/// An event asking the page to reload (the thing it shows has finished).
pub fn reload_event() -> Event {
    // Browsers drop events whose data is empty.
    Event::default().event("reload").data("finished")
}

/// An SSE response that calls `step` at once and then every
/// [`LIVE_INTERVAL`], sending the events it returns, until it returns
/// `None` or the server shuts down.
pub fn stream<S, F, Fut>(state: &AppState, init: S, step: F) -> Response
where
    S: Send + 'static,
    F: FnMut(S) -> Fut + Send + 'static,
    Fut: Future<Output = Option<(Vec<Event>, S)>> + Send + 'static,
{
    let shutdown = state.shutdown.clone();
    let events = futures::stream::unfold(
        (Some(init), step, shutdown, true),
        |(st, mut step, mut shutdown, first)| async move {
            let st = st?;
            if !first {
                tokio::select! {
                    () = tokio::time::sleep(LIVE_INTERVAL) => {}
                    _ = shutdown.wait_for(|s| *s) => return None,
                }
            }
            if *shutdown.borrow() {
                return None;
            }
            let (events, next) = step(st).await?;
            Some((events, (Some(next), step, shutdown, false)))
        },
    )
    .flat_map(|evs| futures::stream::iter(evs.into_iter().map(Ok::<_, Infallible>)));
    Sse::new(events)
        .keep_alive(KeepAlive::default())
        .into_response()
}
