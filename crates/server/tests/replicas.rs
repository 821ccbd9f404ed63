//! Several server replicas on one PostgreSQL behave as one server: a task
//! enqueued through one wakes a runner long-polling on the other at once
//! (not at the poll's re-check), the reaper runs once per period across
//! them, and the login throttle counts the attempts made through all of
//! them together.

use ai_review_domain::Timestamp;
use ai_review_protocol::client::Registration;
use ai_review_protocol::client::RunnerClient;
use ai_review_server::clock::ManualClock;
use ai_review_server::config::Settings;
use ai_review_server::{RunningServer, open_store};
use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant};

async fn replicas(
    n: usize,
    background: bool,
    tweak: impl Fn(&mut Settings),
) -> (Vec<RunningServer>, Vec<Arc<ManualClock>>) {
    ai_review_protocol::client::ensure_crypto_provider();
    let url = ai_review_pg_testing::fresh_database_url().await;
    let mut settings = Settings {
        rate_limit: None,
        ..Settings::default()
    };
    tweak(&mut settings);
    let mut servers = Vec::new();
    let mut clocks = Vec::new();
    let start = Timestamp::now();
    for _ in 0..n {
        let store = open_store(&url).await.expect("store");
        let clock = Arc::new(ManualClock::new(start));
        servers.push(
            RunningServer::start(settings.clone(), store, clock.clone(), background)
                .await
                .expect("server"),
        );
        clocks.push(clock);
    }
    (servers, clocks)
}

/// An admin and their API key, made through the first replica's store.
async fn admin_key(server: &RunningServer) -> String {
    use ai_review_domain::{ApiKeyId, ApiKeySecret, Email, Role, UserId};
    let store = &server.state.store;
    let now = Timestamp::now();
    let user = store
        .create_user(ai_review_store::NewUser {
            id: UserId::generate(),
            email: Email::parse("admin@example.com").expect("email"),
            password_hash: ai_review_server::passwords::hash_password("password123").expect("hash"),
            role: Role::Admin,
            permissions: Vec::new(),
            now,
        })
        .await
        .expect("user");
    let secret = ApiKeySecret::generate();
    store
        .create_api_key(ai_review_store::NewApiKey {
            id: ApiKeyId::generate(),
            user_id: user.id,
            name: "t".into(),
            prefix: secret.display_prefix(),
            digest: secret.digest(),
            now,
            expires_at: None,
        })
        .await
        .expect("key");
    secret.expose().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_enqueued_on_one_replica_wakes_a_long_poll_on_the_other_at_once() {
    // Without a wake-up a held poll would look again only after 30 s.
    let (servers, _) = replicas(2, false, |s| {
        s.poll_recheck = Duration::from_secs(30);
        s.max_poll_wait = Duration::from_secs(60);
    })
    .await;
    let key = admin_key(&servers[0]).await;
    let runner = RunnerClient::new(
        &servers[1].url(),
        &key,
        ai_review_domain::RunnerId::parse("runner-b").expect("id"),
        Duration::from_secs(60),
    )
    .expect("client");
    runner
        .register(&Registration {
            name: "runner-b".into(),
            version: "t".into(),
            max_concurrency: 1,
            tags: "".into(),
        })
        .await
        .expect("register");
    for round in 0..3 {
        let poll = {
            let runner = runner.clone();
            tokio::spawn(async move {
                let t = Instant::now();
                let got = runner.poll(1, Duration::from_secs(50)).await.expect("poll");
                (got, t.elapsed())
            })
        };
        // Let the poll reach the server and wait.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let http = reqwest::Client::new();
        let r = http
            .post(format!("{}/api/reviews", servers[0].url()))
            .bearer_auth(&key)
            .json(&json!({
                "repoUrl": "https://git.example.com/group/repo.git",
                "baseSha": "a".repeat(40),
                "headSha": "b".repeat(40),
            }))
            .send()
            .await
            .expect("enqueue");
        assert_eq!(
            r.status().as_u16(),
            202,
            "{}",
            r.text().await.unwrap_or_default()
        );
        let (got, waited) = poll.await.expect("join");
        assert_eq!(
            got.len(),
            1,
            "round {round}: the task reached replica B's poll"
        );
        assert!(
            waited < Duration::from_secs(10),
            "round {round}: woken by the other replica, not by the 30 s re-check ({waited:?})"
        );
    }
    for s in servers {
        s.stop().await.expect("stop");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reaper_runs_once_per_period_across_replicas() {
    let (servers, clocks) = replicas(2, true, |s| {
        s.reaper_interval = Duration::from_millis(50);
    })
    .await;
    let store = servers[0].state.store.clone();
    let runs_seen = |servers: &[RunningServer]| -> f64 {
        servers
            .iter()
            .map(|s| {
                let text = s.state.metrics.render(&Default::default());
                ai_review_testkit::prom::parse(&text)
                    .expect("exposition")
                    .value("ai_review_reaper_runs_total", &[])
                    .unwrap_or(0.0)
            })
            .sum()
    };
    // The clocks stand still: both replicas tick about 20 times in this
    // second, and one pass runs in all.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        store
            .periodic_runs(ai_review_server::queue::REAPER_JOB)
            .await
            .expect("runs"),
        1
    );
    assert_eq!(runs_seen(&servers), 1.0);
    // One period later (on both clocks), one more.
    for c in &clocks {
        c.advance(50);
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        store
            .periodic_runs(ai_review_server::queue::REAPER_JOB)
            .await
            .expect("runs"),
        2
    );
    assert_eq!(runs_seen(&servers), 2.0);
    for s in servers {
        s.stop().await.expect("stop");
    }
}

/// Opens `/login` on `server` and submits a wrong password for the admin:
/// the answer (401 when let through).
async fn failed_login(http: &reqwest::Client, server: &RunningServer) -> reqwest::Response {
    let page = http
        .get(format!("{}/login", server.url()))
        .send()
        .await
        .expect("GET /login");
    assert_eq!(page.status().as_u16(), 200, "GET /login");
    let cookie = ai_review_testkit::web::set_cookie(&page, "ai_review_form").expect("form cookie");
    let html = page.text().await.expect("login page");
    let token = ai_review_testkit::web::form_value(&html, "_form").expect("form token");
    http.post(format!("{}/login", server.url()))
        .header(reqwest::header::COOKIE, cookie)
        .form(&[
            ("_form", token.as_str()),
            ("email", "admin@example.com"),
            ("password", "wrong password"),
        ])
        .send()
        .await
        .expect("POST /login")
}

/// Sends failed logins, the n-th (from 0) to `servers[pick(n)]`, until one
/// is throttled: how many were let through (401) before it, and its
/// `Retry-After` in seconds.
async fn attempts_until_throttled(
    http: &reqwest::Client,
    servers: &[RunningServer],
    pick: impl Fn(usize) -> usize,
) -> (usize, i64) {
    for n in 0..100 {
        let r = failed_login(http, &servers[pick(n)]).await;
        match r.status().as_u16() {
            401 => continue,
            429 => {
                let retry_after = r.headers()["retry-after"]
                    .to_str()
                    .expect("ascii")
                    .parse()
                    .expect("seconds");
                return (n, retry_after);
            }
            other => panic!("attempt {n}: unexpected {other}"),
        }
    }
    panic!("100 failed logins and no 429")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_logins_alternating_between_replicas_are_throttled_as_on_one() {
    use ai_review_server::clock::Clock;
    let (servers, clocks) = replicas(2, false, |_| {}).await;
    admin_key(&servers[0]).await;
    let limit = ai_review_server::rate_limit::SharedLimit::LOGIN;
    let window_ms = i64::try_from(limit.window.as_millis()).expect("ms");
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    // Whole seconds (rounded up) to the end of the clocks' current window.
    let secs_left = || {
        let left = window_ms - clocks[0].now().as_millis().rem_euclid(window_ms);
        (left, (left + 999) / 1000)
    };

    // Replica A alone: `max` wrong passwords, then 429.
    let (alone, retry_after) = attempts_until_throttled(&http, &servers, |_| 0).await;
    assert_eq!(alone, usize::try_from(limit.max).expect("max"));
    assert_eq!(retry_after, secs_left().1);

    // The next window, on both replicas' clocks.
    let (left_ms, _) = secs_left();
    for c in &clocks {
        c.advance(left_ms);
    }
    // Alternating A, B, A, B…: throttled after the same total, not twice
    // as many.
    let (spread, retry_after) = attempts_until_throttled(&http, &servers, |n| n % 2).await;
    assert_eq!(spread, alone, "attempts over two replicas count as one");
    assert_eq!(retry_after, secs_left().1);
    // Whichever replica is asked next, the address stays throttled.
    for server in &servers {
        let r = failed_login(&http, server).await;
        assert_eq!(r.status().as_u16(), 429, "{}", server.url());
        assert!(r.headers().get("retry-after").is_some());
    }
    for s in servers {
        s.stop().await.expect("stop");
    }
}
