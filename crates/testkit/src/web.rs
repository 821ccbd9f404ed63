//! Dashboard helpers without a browser: log in through the real login form
//! (form cookie, then session cookie), read pages, submit forms with or
//! without the CSRF token. Redirects are not followed, so tests see them.

use crate::TestApp;
use reqwest::header::{COOKIE, SET_COOKIE};
use std::time::Duration;

/// A logged-in dashboard session.
#[derive(Debug, Clone)]
pub struct WebSession {
    /// `ai_review_session=<token>`.
    pub cookie: String,
    /// The session's CSRF token, as read from a page's form.
    pub csrf: String,
}

/// The value of `name="<field>" value="…"` in `html`, if present.
pub fn form_value(html: &str, field: &str) -> Option<String> {
    let at = html.find(&format!("name=\"{field}\""))?;
    let rest = &html[at..];
    let v = rest.find("value=\"")? + "value=\"".len();
    let end = rest[v..].find('"')?;
    Some(rest[v..v + end].to_owned())
}

/// The `name=value` part of the response's `Set-Cookie` for `name`.
pub fn set_cookie(resp: &reqwest::Response, name: &str) -> Option<String> {
    resp.headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .map(|v| v.split(';').next().unwrap_or("").to_owned())
}

/// The full `Set-Cookie` header for `name`, attributes included.
pub fn set_cookie_header(resp: &reqwest::Response, name: &str) -> Option<String> {
    resp.headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .map(str::to_owned)
}

impl TestApp {
    /// An HTTP client that does not follow redirects.
    pub fn web_client(&self) -> reqwest::Client {
        reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(30))
            .build()
            .expect("client")
    }

    /// Logs in through `/login` and returns the session.
    pub async fn login(&self, email: &str, password: &str) -> WebSession {
        self.try_login(email, password)
            .await
            .unwrap_or_else(|status| panic!("login as {email} failed with {status}"))
    }

    /// Opens `/login` and submits it (form cookie and token included) with
    /// `next`; the raw answer, for tests of its status and cookies.
    pub async fn login_response(
        &self,
        email: &str,
        password: &str,
        next: &str,
    ) -> reqwest::Response {
        let c = self.web_client();
        let page = c
            .get(format!("{}/login", self.url()))
            .send()
            .await
            .expect("GET /login");
        assert_eq!(page.status().as_u16(), 200, "GET /login");
        let form_cookie = set_cookie(&page, "ai_review_form").expect("form cookie");
        let html = page.text().await.expect("login page");
        let token = form_value(&html, "_form").expect("form token");
        c.post(format!("{}/login", self.url()))
            .header(COOKIE, form_cookie)
            .form(&[
                ("_form", token.as_str()),
                ("email", email),
                ("password", password),
                ("next", next),
            ])
            .send()
            .await
            .expect("POST /login")
    }

    /// Logs in; `Err(status)` when the server refuses.
    pub async fn try_login(&self, email: &str, password: &str) -> Result<WebSession, u16> {
        let resp = self.login_response(email, password, "/").await;
        if resp.status().as_u16() != 303 {
            return Err(resp.status().as_u16());
        }
        let cookie = set_cookie(&resp, "ai_review_session").expect("session cookie");
        let overview = self.page(Some(&cookie), "/").await;
        assert_eq!(overview.status().as_u16(), 200);
        let html = overview.text().await.expect("overview");
        let csrf = form_value(&html, "_csrf").expect("csrf token in the logout form");
        Ok(WebSession { cookie, csrf })
    }

    /// `GET path` with an optional session cookie.
    pub async fn page(&self, cookie: Option<&str>, path: &str) -> reqwest::Response {
        let mut rb = self.web_client().get(format!("{}{path}", self.url()));
        if let Some(c) = cookie {
            rb = rb.header(COOKIE, c);
        }
        rb.send().await.expect("GET page")
    }

    /// The HTML of `GET path` (any status) with an optional session cookie.
    pub async fn page_html(&self, cookie: Option<&str>, path: &str) -> String {
        self.page(cookie, path).await.text().await.expect("html")
    }

    /// Submits a form as `session` with its CSRF token, plus `headers`.
    pub async fn submit(
        &self,
        session: &WebSession,
        path: &str,
        fields: &[(&str, &str)],
    ) -> reqwest::Response {
        let mut all: Vec<(&str, &str)> = vec![("_csrf", session.csrf.as_str())];
        all.extend_from_slice(fields);
        self.submit_raw(Some(&session.cookie), path, &all, &[])
            .await
    }

    /// Submits exactly `fields` with `headers` (for forgery tests).
    pub async fn submit_raw(
        &self,
        cookie: Option<&str>,
        path: &str,
        fields: &[(&str, &str)],
        headers: &[(&str, &str)],
    ) -> reqwest::Response {
        let mut rb = self
            .web_client()
            .post(format!("{}{path}", self.url()))
            .form(fields);
        if let Some(c) = cookie {
            rb = rb.header(COOKIE, c);
        }
        for (k, v) in headers {
            rb = rb.header(*k, *v);
        }
        rb.send().await.expect("POST form")
    }
}
