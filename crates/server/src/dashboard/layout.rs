//! The page shell and the small pieces every page uses.

use super::Viewer;
use ai_review_domain::Timestamp;
use axum::http::StatusCode;
use maud::{DOCTYPE, Markup, PreEscaped, html};

/// The top-level sections (for the navigation's current item).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    /// `/`.
    Overview,
    /// `/runners`.
    Runners,
    /// `/queue`.
    Queue,
    /// `/reviews`.
    Reviews,
    /// `/settings/...`.
    Settings,
}

const SECTIONS: [(Section, &str, &str); 5] = [
    (Section::Overview, "/", "Overview"),
    (Section::Runners, "/runners", "Runners"),
    (Section::Queue, "/queue", "Queue"),
    (Section::Reviews, "/reviews", "Reviews"),
    (Section::Settings, "/settings", "Settings"),
];

fn head(title: &str) -> Markup {
    html! {
        head {
            meta charset="utf-8";
            meta name="viewport" content="width=device-width, initial-scale=1";
            title { (title) " · ai-review" }
            link rel="stylesheet" href=(super::assets::CSS_PATH);
            script src=(super::assets::JS_PATH) defer {}
        }
    }
}

/// A full page for a logged-in viewer.
pub fn page(viewer: &Viewer, section: Section, title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(title))
            body {
                a.skip href="#main" { "Skip to content" }
                header.top {
                    a.brand href="/" { "ai-review" }
                    nav aria-label="Main" {
                        ul {
                            @for (s, href, label) in SECTIONS {
                                li {
                                    @if s == section {
                                        a href=(href) aria-current="page" { (label) }
                                    } @else {
                                        a href=(href) { (label) }
                                    }
                                }
                            }
                        }
                    }
                    div.who {
                        span.user { (viewer.user.email.as_str()) " · " (viewer.user.role.as_str()) }
                        form method="post" action="/logout" {
                            (csrf(viewer))
                            button.link type="submit" { "Log out" }
                        }
                    }
                }
                main #main {
                    h1 { (title) }
                    (body)
                }
            }
        }
    }
}

/// A page without navigation (login, setup, errors).
pub fn bare(title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(title))
            body.bare {
                main #main.narrow {
                    p.brand { "ai-review" }
                    h1 { (title) }
                    (body)
                }
            }
        }
    }
}

/// The error page: status and what to do.
pub fn error_page(status: StatusCode, detail: &str) -> Markup {
    let title = match status {
        StatusCode::FORBIDDEN => "Not allowed".to_owned(),
        StatusCode::NOT_FOUND => "Not found".to_owned(),
        StatusCode::BAD_REQUEST => "That did not work".to_owned(),
        s => format!("{} {}", s.as_u16(), s.canonical_reason().unwrap_or("Error")),
    };
    bare(
        &title,
        html! {
            p.error role="alert" { (detail) }
            p { a href="/" { "Back to the overview" } }
        },
    )
}

/// The hidden CSRF field every form carries.
pub fn csrf(viewer: &Viewer) -> Markup {
    html! { input type="hidden" name="_csrf" value=(viewer.csrf()); }
}

/// A one-line notice after an action (`ok`) or its failure (`error`).
pub fn notice(ok: Option<&str>, error: Option<&str>) -> Markup {
    html! {
        @if let Some(m) = ok { p.notice role="status" { (m) } }
        @if let Some(m) = error { p.error role="alert" { (m) } }
    }
}

/// `2026-11-24 14:03:12 UTC`.
pub fn time(t: Timestamp) -> String {
    chrono::DateTime::from_timestamp_millis(t.as_millis()).map_or_else(
        || "-".to_owned(),
        |d| d.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
    )
}

/// `14:03:12` (UTC).
pub fn clock(t: Timestamp) -> String {
    chrono::DateTime::from_timestamp_millis(t.as_millis())
        .map_or_else(|| "-".to_owned(), |d| d.format("%H:%M:%S").to_string())
}

/// A `<time>` element showing how long ago `t` was, to the minute, with
/// the exact time in its `datetime` and `title`. Minute steps keep live
/// tables from changing (and being replaced under the keyboard focus)
/// every second.
pub fn ago(now: Timestamp, t: Timestamp) -> Markup {
    let exact = time(t);
    let since = now.millis_since(t);
    html! {
        time datetime=(exact) title=(exact) {
            @if since < 60_000 { "just now" } @else { (coarse(since)) " ago" }
        }
    }
}

/// An age to the minute: `under a minute`, `4 min`, `3 h 5 min`, `2 d 4 h`.
pub fn coarse(ms: i64) -> String {
    if ms < 60_000 {
        "under a minute".to_owned()
    } else if ms < 3_600_000 {
        format!("{} min", ms / 60_000)
    } else {
        duration(ms)
    }
}

/// `850 ms`, `12 s`, `4 min 10 s`, `3 h 5 min`, `2 d 4 h`.
pub fn duration(ms: i64) -> String {
    let ms = ms.max(0);
    let s = ms / 1000;
    match s {
        _ if ms < 1000 => format!("{ms} ms"),
        0..60 => format!("{s} s"),
        60..3600 => format!("{} min {} s", s / 60, s % 60),
        3600..86_400 => format!("{} h {} min", s / 3600, (s % 3600) / 60),
        _ => format!("{} d {} h", s / 86_400, (s % 86_400) / 3600),
    }
}

/// A state badge (`pending`, `online`, `failed`, …), colour from the word.
pub fn badge(word: &str) -> Markup {
    html! { span class={ "badge b-" (word) } { (word.replace('_', " ")) } }
}

/// Pre-escaped markup from trusted, server-built HTML (SVG charts).
pub fn trusted(s: String) -> Markup {
    PreEscaped(s)
}

/// A `<select>` of `(value, label)` options with `current` selected.
pub fn select(name: &str, id: &str, options: &[(String, String)], current: &str) -> Markup {
    html! {
        select name=(name) id=(id) {
            @for (v, label) in options {
                @if v == current {
                    option value=(v) selected { (label) }
                } @else {
                    option value=(v) { (label) }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_naturally() {
        assert_eq!(duration(250), "250 ms");
        assert_eq!(duration(12_400), "12 s");
        assert_eq!(duration(250_000), "4 min 10 s");
        assert_eq!(duration(3 * 3_600_000 + 5 * 60_000), "3 h 5 min");
        assert_eq!(duration(2 * 86_400_000 + 4 * 3_600_000), "2 d 4 h");
        assert_eq!(duration(-5), "0 ms");
        assert_eq!(coarse(59_999), "under a minute");
        assert_eq!(coarse(250_000), "4 min");
        assert_eq!(coarse(3 * 3_600_000 + 5 * 60_000), "3 h 5 min");
    }

    #[test]
    fn text_is_escaped() {
        let m = notice(Some("<script>x</script>"), None).into_string();
        assert!(!m.contains("<script>"), "{m}");
        assert!(m.contains("&lt;script&gt;"), "{m}");
    }
}
