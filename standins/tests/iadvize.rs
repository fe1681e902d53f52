//! The iAdvize stand-in, exercised through real HTTP.

use std::time::{Duration, Instant, SystemTime};

use reqwest::StatusCode;
use serde_json::{Value, json};
use standins::{BlockScope, Fault, RetryAfter, Standin, StandinConfig, Stats};

const USER: &str = "api-user@example.com";
const PASSWORD: &str = "correct horse battery staple";

async fn standin() -> Standin {
    Standin::start(StandinConfig::default().with_user(USER, PASSWORD))
        .await
        .expect("start the stand-in")
}

async fn login(
    standin: &Standin,
    username: &str,
    password: &str,
) -> (StatusCode, reqwest::header::HeaderMap, String) {
    let response = reqwest::Client::new()
        .post(format!("{}/oauth2/token", standin.url()))
        .form(&[
            ("grant_type", "password"),
            ("username", username),
            ("password", password),
        ])
        .send()
        .await
        .expect("login request");
    let status = response.status();
    let headers = response.headers().clone();
    (status, headers, response.text().await.expect("login body"))
}

fn json_of(body: &str) -> Value {
    serde_json::from_str(body).expect("a JSON body")
}

async fn token(standin: &Standin) -> String {
    let (status, _, body) = login(standin, USER, PASSWORD).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    json_of(&body)["access_token"]
        .as_str()
        .expect("access_token")
        .to_owned()
}

async fn verify(standin: &Standin, token: Option<&str>) -> (StatusCode, String) {
    let mut request = reqwest::Client::new().get(format!("{}/_authenticated", standin.url()));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.expect("verify request");
    (
        response.status(),
        response.text().await.expect("verify body"),
    )
}

async fn graphql(standin: &Standin, token: &str) -> (StatusCode, Value) {
    let response = reqwest::Client::new()
        .post(format!("{}/graphql", standin.url()))
        .bearer_auth(token)
        .json(&json!({"query": "{ me { username } }"}))
        .send()
        .await
        .expect("graphql request");
    (
        response.status(),
        response.json().await.expect("graphql body"),
    )
}

#[tokio::test]
async fn a_valid_login_issues_a_token_that_authenticates() {
    let standin = standin().await;
    assert!(standin.url().starts_with("http://127.0.0.1:"));
    assert!(!standin.url().ends_with('/'));

    let (status, _, body) = login(&standin, USER, PASSWORD).await;
    assert_eq!(status, StatusCode::OK);
    let body = json_of(&body);
    assert_eq!(body["expires_in"], 86_400);
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["refresh_token"], "none");
    let token = body["access_token"].as_str().expect("access_token");
    assert!(token.len() >= 32);

    let (status, body) = verify(&standin, Some(token)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(json_of(&body), json!({"authenticated": true}));

    let (status, body) = graphql(&standin, token).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({"data": {"me": {"username": USER}}}));

    // A second login gives a different token; both stay valid.
    let other = self::token(&standin).await;
    assert_ne!(other, token);
    assert_eq!(verify(&standin, Some(token)).await.0, StatusCode::OK);

    assert_eq!(standin.logins_for(USER), 2);
    assert_eq!(standin.logins_for("nobody"), 0);
    assert_eq!(
        standin.stats(),
        Stats {
            login_requests: 2,
            successful_logins: 2,
            verifications: 2,
            graphql_requests: 1,
            ..Stats::default()
        }
    );
}

#[tokio::test]
async fn bad_credentials_and_malformed_logins_are_refused() {
    let standin = standin().await;
    for (username, password) in [(USER, "wrong"), ("nobody@example.com", PASSWORD)] {
        let (status, _, body) = login(&standin, username, password).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(
            json_of(&body),
            json!({"error": "invalid_grant", "error_description": "Invalid username and password combination"})
        );
    }

    let client = reqwest::Client::new();
    let url = format!("{}/oauth2/token", standin.url());
    let cases: [(&[(&str, &str)], &str); 3] = [
        (
            &[
                ("grant_type", "client_credentials"),
                ("username", USER),
                ("password", PASSWORD),
            ],
            "unsupported_grant_type",
        ),
        (
            &[("username", USER), ("password", PASSWORD)],
            "invalid_request",
        ),
        (
            &[("grant_type", "password"), ("username", USER)],
            "invalid_request",
        ),
    ];
    for (form, expected) in cases {
        let response = client.post(&url).form(form).send().await.expect("login");
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        let body: Value = response.json().await.expect("json");
        assert_eq!(body["error"], expected);
    }
    // Not form-encoded at all.
    let response = client
        .post(&url)
        .json(&json!({"grant_type": "password"}))
        .send()
        .await
        .expect("login");
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);

    let stats = standin.stats();
    assert_eq!(stats.login_requests, 6);
    assert_eq!(stats.rejected_logins, 6);
    assert_eq!(stats.successful_logins, 0);
    assert_eq!(standin.logins_for(USER), 4);
    assert_eq!(standin.logins_for("nobody@example.com"), 1);

    // Changing the password takes effect at once.
    standin.set_password(USER, "new password");
    assert_eq!(
        login(&standin, USER, PASSWORD).await.0,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        login(&standin, USER, "new password").await.0,
        StatusCode::OK
    );
    standin.set_password("second@example.com", "pw");
    assert_eq!(
        login(&standin, "second@example.com", "pw").await.0,
        StatusCode::OK
    );
}

#[tokio::test]
async fn logins_are_rate_limited_per_user_and_per_ip() {
    let config = StandinConfig {
        per_user_limit: 3,
        per_ip_limit: 5,
        ..StandinConfig::default()
    }
    .with_user(USER, PASSWORD)
    .with_user("other", "pw");
    let standin = Standin::start(config).await.expect("start");

    for _ in 0..3 {
        assert_eq!(login(&standin, USER, PASSWORD).await.0, StatusCode::OK);
    }
    let (status, _, body) = login(&standin, USER, PASSWORD).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(json_of(&body), json!({"error": "too_many_requests"}));
    // Wrong passwords are blocked too: the limit counts requests, not successes.
    assert_eq!(
        login(&standin, USER, "wrong").await.0,
        StatusCode::TOO_MANY_REQUESTS
    );

    // Another user still has budget, until the IP limit (5) is reached.
    assert_eq!(login(&standin, "other", "pw").await.0, StatusCode::OK);
    assert_eq!(
        login(&standin, "other", "wrong").await.0,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        login(&standin, "other", "pw").await.0,
        StatusCode::TOO_MANY_REQUESTS
    );

    let stats = standin.stats();
    assert_eq!(stats.login_requests, 8);
    assert_eq!(stats.successful_logins, 4);
    assert_eq!(stats.rejected_logins, 1);
    assert_eq!(stats.rate_limited, 3);
    assert_eq!(standin.logins_for(USER), 5);

    // The window slides: once it has passed, logins are admitted again.
    standin.set_rate_window(Duration::from_millis(300));
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert_eq!(login(&standin, USER, PASSWORD).await.0, StatusCode::OK);

    standin.set_rate_window(Duration::from_secs(60));
    standin.set_rate_limits(1, 100);
    assert_eq!(
        login(&standin, USER, PASSWORD).await.0,
        StatusCode::TOO_MANY_REQUESTS
    );
    standin.reset_rate_limits();
    assert_eq!(login(&standin, USER, PASSWORD).await.0, StatusCode::OK);
}

#[tokio::test]
async fn bad_expired_and_revoked_tokens_are_refused() {
    let standin = standin().await;
    for token in [None, Some("not-a-token")] {
        let (status, body) = verify(&standin, token).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        let body = json_of(&body);
        assert_eq!(body["error"], "invalid_token");
        assert!(body["error_description"].is_string());
    }
    let (status, body) = graphql(&standin, "not-a-token").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"], "invalid_token");

    // Revocation.
    let revoked = token(&standin).await;
    standin.revoke_all_tokens();
    assert_eq!(
        verify(&standin, Some(&revoked)).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        graphql(&standin, &revoked).await.0,
        StatusCode::UNAUTHORIZED
    );
    let fresh = token(&standin).await;
    assert_eq!(verify(&standin, Some(&fresh)).await.0, StatusCode::OK);

    // Expiry. The lifetime leaves room for a loaded machine between the login and the first
    // verification (300 ms was not always enough with a dozen test processes on two cores).
    let lifetime = Duration::from_millis(1500);
    standin.set_token_lifetime(lifetime);
    let issued = Instant::now();
    let (_, _, body) = login(&standin, USER, PASSWORD).await;
    let body = json_of(&body);
    assert_eq!(body["expires_in"], 1);
    let short = body["access_token"].as_str().expect("token").to_owned();
    assert_eq!(verify(&standin, Some(&short)).await.0, StatusCode::OK);
    tokio::time::sleep(lifetime.saturating_sub(issued.elapsed()) + Duration::from_millis(50)).await;
    let (status, body) = verify(&standin, Some(&short)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(body.contains("expired"), "{body}");
    // Tokens issued before the change keep their lifetime.
    assert_eq!(verify(&standin, Some(&fresh)).await.0, StatusCode::OK);

    standin.set_token_lifetime(Duration::from_secs(3600));
    let (_, _, body) = login(&standin, USER, PASSWORD).await;
    assert_eq!(json_of(&body)["expires_in"], 3600);
}

#[tokio::test]
async fn queued_login_faults_are_served_in_order() {
    let standin = standin().await;
    standin.push_login_faults(Fault::ServerError(503), 2);
    standin.push_login_faults(Fault::MalformedJson, 1);
    standin.push_login_faults(Fault::MissingAccessToken, 1);
    standin.push_login_faults(Fault::Unauthorized, 1);
    standin.push_login_faults(Fault::TooManyRequests(RetryAfter::Seconds(7)), 1);
    standin.push_login_faults(Fault::TooManyRequests(RetryAfter::None), 1);
    let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    standin.push_login_faults(Fault::TooManyRequests(RetryAfter::HttpDate(at)), 1);
    standin.push_login_faults(Fault::ExpiresIn(-5), 1);

    for _ in 0..2 {
        let (status, _, body) = login(&standin, USER, PASSWORD).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(json_of(&body)["error"], "server_error");
    }
    let (status, _, body) = login(&standin, USER, PASSWORD).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, r#"{"access_token": "abc""#);
    assert!(serde_json::from_str::<Value>(&body).is_err());

    let (status, _, body) = login(&standin, USER, PASSWORD).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        json_of(&body),
        json!({"expires_in": 86400, "token_type": "Bearer"})
    );

    let (status, _, body) = login(&standin, USER, PASSWORD).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(json_of(&body)["error"], "invalid_client");

    let (status, headers, body) = login(&standin, USER, PASSWORD).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(json_of(&body), json!({"error": "too_many_requests"}));
    assert_eq!(headers["retry-after"], "7");
    let (status, headers, _) = login(&standin, USER, PASSWORD).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert!(headers.get("retry-after").is_none());
    let (status, headers, _) = login(&standin, USER, PASSWORD).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    let date = headers["retry-after"].to_str().expect("ascii");
    assert_eq!(httpdate::parse_http_date(date).expect("an HTTP date"), at);

    let (status, _, body) = login(&standin, USER, PASSWORD).await;
    assert_eq!(status, StatusCode::OK);
    let body = json_of(&body);
    assert_eq!(body["expires_in"], -5);
    // Still a real token.
    let token = body["access_token"].as_str().expect("token");
    assert_eq!(verify(&standin, Some(token)).await.0, StatusCode::OK);
    assert_eq!(
        graphql(&standin, token).await.1["data"]["me"]["username"],
        USER
    );

    // Queue used up: normal handling again.
    let (status, _, body) = login(&standin, USER, "wrong").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");

    let stats = standin.stats();
    assert_eq!(stats.login_requests, 10);
    assert_eq!(stats.faults_served, 9);
    assert_eq!(stats.rate_limited, 3);
    assert_eq!(stats.successful_logins, 0);
    assert_eq!(stats.rejected_logins, 1);
    assert_eq!(standin.logins_for(USER), 10);
}

#[tokio::test]
async fn slow_and_persistent_login_faults() {
    let standin = standin().await;
    standin.push_login_faults(Fault::Slow(Duration::from_millis(400)), 1);
    let started = Instant::now();
    let (status, _, _) = login(&standin, USER, PASSWORD).await;
    assert_eq!(status, StatusCode::OK);
    assert!(started.elapsed() >= Duration::from_millis(400));

    // A persistent fault applies after the queued ones, until cleared.
    standin.set_login_fault(Some(Fault::ServerError(500)));
    standin.push_login_faults(Fault::ServerError(502), 1);
    assert_eq!(
        login(&standin, USER, PASSWORD).await.0,
        StatusCode::BAD_GATEWAY
    );
    for _ in 0..3 {
        assert_eq!(
            login(&standin, USER, PASSWORD).await.0,
            StatusCode::INTERNAL_SERVER_ERROR
        );
    }
    standin.set_login_fault(None);
    assert_eq!(login(&standin, USER, PASSWORD).await.0, StatusCode::OK);

    let stats = standin.stats();
    assert_eq!(stats.login_requests, 6);
    assert_eq!(stats.successful_logins, 2);
    assert_eq!(stats.faults_served, 5);
}

#[tokio::test]
async fn verify_faults_are_served_then_normal_handling_resumes() {
    let standin = standin().await;
    let token = token(&standin).await;
    standin.push_verify_faults(Fault::ServerError(500), 1);
    standin.push_verify_faults(Fault::TooManyRequests(RetryAfter::Seconds(1)), 1);
    standin.push_verify_faults(Fault::Unauthorized, 1);
    standin.push_verify_faults(Fault::MalformedJson, 1);
    standin.push_verify_faults(Fault::Slow(Duration::from_millis(200)), 1);

    assert_eq!(
        verify(&standin, Some(&token)).await.0,
        StatusCode::INTERNAL_SERVER_ERROR
    );
    assert_eq!(
        verify(&standin, Some(&token)).await.0,
        StatusCode::TOO_MANY_REQUESTS
    );
    let (status, body) = verify(&standin, Some(&token)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(json_of(&body)["error"], "invalid_token");
    let (status, body) = verify(&standin, Some(&token)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(serde_json::from_str::<Value>(&body).is_err());
    let started = Instant::now();
    assert_eq!(verify(&standin, Some(&token)).await.0, StatusCode::OK);
    assert!(started.elapsed() >= Duration::from_millis(200));
    assert_eq!(verify(&standin, Some(&token)).await.0, StatusCode::OK);

    let stats = standin.stats();
    assert_eq!(stats.verifications, 6);
    assert_eq!(stats.faults_served, 5);
    assert_eq!(stats.rate_limited, 1);
    // Verification faults never touch the login queue.
    assert_eq!(login(&standin, USER, PASSWORD).await.0, StatusCode::OK);
}

#[tokio::test]
async fn stats_endpoint_and_shutdown() {
    let standin = standin().await;
    let _ = token(&standin).await;
    let _ = login(&standin, USER, "wrong").await;
    let stats: Value = reqwest::get(format!("{}/_standin/stats", standin.url()))
        .await
        .expect("stats")
        .json()
        .await
        .expect("json");
    assert_eq!(stats["login_requests"], 2);
    assert_eq!(stats["successful_logins"], 1);
    assert_eq!(stats["rejected_logins"], 1);
    assert_eq!(stats["logins_per_user"][USER], 2);
    assert!(!stats.to_string().contains(PASSWORD));

    let url = standin.url();
    standin.shutdown().await;
    assert!(reqwest::get(format!("{url}/_standin/stats")).await.is_err());
}

#[tokio::test]
async fn dropping_the_standin_stops_it() {
    let standin = standin().await;
    let url = standin.url();
    drop(standin);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(reqwest::get(format!("{url}/_standin/stats")).await.is_err());
}

#[tokio::test]
async fn config_debug_never_shows_passwords() {
    let config = StandinConfig::default().with_user(USER, PASSWORD);
    let debug = format!("{config:?}");
    assert!(debug.contains(USER));
    assert!(!debug.contains(PASSWORD));
}

const OTHER_USER: &str = "other-user@example.com";
const OTHER_PASSWORD: &str = "another password";

async fn login_as(standin: &Standin, username: &str, password: &str) -> String {
    let (status, _, body) = login(standin, username, password).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    json_of(&body)["access_token"]
        .as_str()
        .expect("access_token")
        .to_owned()
}

/// Whether both endpoints that take a bearer token accept it (and agree).
async fn accepted(standin: &Standin, token: &str) -> bool {
    let verified = verify(standin, Some(token)).await.0;
    let queried = graphql(standin, token).await.0;
    assert_eq!(verified, queried, "/_authenticated and /graphql agree");
    assert!(
        [StatusCode::OK, StatusCode::UNAUTHORIZED].contains(&verified),
        "{verified}"
    );
    verified == StatusCode::OK && standin.token_checker().accepts(token)
}

async fn control(
    standin: &Standin,
    method: reqwest::Method,
    path: &str,
    body: &str,
) -> (StatusCode, Value) {
    let response = reqwest::Client::new()
        .request(method, format!("{}{path}", standin.url()))
        .header("content-type", "application/json")
        .body(body.to_owned())
        .send()
        .await
        .expect("control request");
    (
        response.status(),
        response.json().await.expect("a JSON answer"),
    )
}

#[tokio::test]
async fn one_token_or_every_token_of_a_user_can_be_revoked() {
    let standin = Standin::start(
        StandinConfig::default()
            .with_user(USER, PASSWORD)
            .with_user(OTHER_USER, OTHER_PASSWORD),
    )
    .await
    .expect("start the stand-in");
    let first = login_as(&standin, USER, PASSWORD).await;
    let second = login_as(&standin, USER, PASSWORD).await;
    let others = login_as(&standin, OTHER_USER, OTHER_PASSWORD).await;

    // One token: the user's other token and other users' tokens keep working.
    assert!(standin.revoke_token(&first));
    assert!(!accepted(&standin, &first).await);
    assert!(accepted(&standin, &second).await);
    assert!(accepted(&standin, &others).await);
    assert!(!standin.revoke_token(&first), "already revoked");
    assert!(!standin.revoke_token("never-issued"));

    // Every token of a user (a password change): the user's next login works again.
    let third = login_as(&standin, USER, PASSWORD).await;
    assert_eq!(standin.revoke_tokens_of(USER), 2);
    assert!(!accepted(&standin, &second).await);
    assert!(!accepted(&standin, &third).await);
    assert!(accepted(&standin, &others).await);
    assert_eq!(standin.revoke_tokens_of(USER), 0);
    let fourth = login_as(&standin, USER, PASSWORD).await;
    assert!(accepted(&standin, &fourth).await);

    // The same through the control endpoint, for the demo and other processes.
    let (status, body) = control(
        &standin,
        reqwest::Method::POST,
        "/_standin/revoke",
        &json!({"token": fourth}).to_string(),
    )
    .await;
    assert_eq!((status, body), (StatusCode::OK, json!({"revoked": 1})));
    assert!(!accepted(&standin, &fourth).await);
    let fifth = login_as(&standin, USER, PASSWORD).await;
    let (status, body) = control(
        &standin,
        reqwest::Method::POST,
        "/_standin/revoke",
        &json!({"username": USER}).to_string(),
    )
    .await;
    assert_eq!((status, body), (StatusCode::OK, json!({"revoked": 1})));
    assert!(!accepted(&standin, &fifth).await);
    assert!(accepted(&standin, &others).await);

    // Bad requests revoke nothing.
    for bad in [
        "{}",
        r#"{"token": "a", "username": "b"}"#,
        r#"{"all": false}"#,
        r#"{"tokn": "a"}"#,
        "not json",
    ] {
        let (status, body) =
            control(&standin, reqwest::Method::POST, "/_standin/revoke", bad).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
        assert!(body["error"].is_string(), "{bad}: {body}");
    }
    assert!(accepted(&standin, &others).await);

    let (status, body) = control(
        &standin,
        reqwest::Method::POST,
        "/_standin/revoke",
        r#"{"all": true}"#,
    )
    .await;
    assert_eq!((status, body), (StatusCode::OK, json!({"revoked": 1})));
    assert!(!accepted(&standin, &others).await);
}

fn retry_after(headers: &reqwest::header::HeaderMap) -> u64 {
    headers
        .get("retry-after")
        .expect("a Retry-After header")
        .to_str()
        .expect("ASCII")
        .parse()
        .expect("seconds")
}

#[tokio::test]
async fn a_blocked_ip_gets_429_with_retry_after_until_the_block_ends() {
    let standin = standin().await;
    let before = token(&standin).await;
    standin.push_login_faults(Fault::ServerError(503), 1);
    let loopback: std::net::IpAddr = "127.0.0.1".parse().expect("an address");
    standin.block_logins(BlockScope::Ip(loopback), Duration::from_millis(1500));
    let left = standin.block_left(loopback).expect("a block");
    assert!(left <= Duration::from_millis(1500), "{left:?}");

    // Good credentials or not, every login is refused with the time left.
    for password in [PASSWORD, "wrong"] {
        let (status, headers, body) = login(&standin, USER, password).await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
        assert_eq!(json_of(&body), json!({"error": "too_many_requests"}));
        let seconds = retry_after(&headers);
        assert!((1..=2).contains(&seconds), "Retry-After: {seconds}");
    }
    // Tokens already issued keep working: only logins are blocked.
    assert!(accepted(&standin, &before).await);
    // Another address's block does not apply to this one.
    assert!(
        standin
            .block_left("10.0.0.1".parse().expect("an address"))
            .is_none()
    );
    let stats = standin.stats();
    assert_eq!(stats.blocked_logins, 2);
    assert_eq!(stats.rate_limited, 2);
    assert_eq!(stats.faults_served, 0, "a blocked login consumes no fault");
    assert_eq!(stats.successful_logins, 1);
    assert_eq!(stats.rejected_logins, 0);
    assert_eq!(standin.logins_for(USER), 3);

    // Once the block has run out, the queued fault comes first, then normal logins.
    tokio::time::sleep(standin.block_left(loopback).unwrap_or_default()).await;
    assert!(standin.block_left(loopback).is_none());
    assert_eq!(
        login(&standin, USER, PASSWORD).await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );
    let after = token(&standin).await;
    assert!(accepted(&standin, &after).await);
    assert_eq!(standin.stats().blocked_logins, 2);
}

#[tokio::test]
async fn a_block_of_everyone_can_be_lengthened_by_each_attempt_and_lifted() {
    let standin = standin().await;
    standin.lengthen_blocks_per_attempt(Duration::from_secs(10));
    standin.block_logins(BlockScope::Everyone, Duration::from_secs(60));

    let (status, headers, _) = login(&standin, USER, PASSWORD).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    let first = retry_after(&headers);
    assert!((61..=70).contains(&first), "Retry-After: {first}");
    let (_, headers, _) = login(&standin, USER, PASSWORD).await;
    let second = retry_after(&headers);
    assert!(
        second >= first + 9,
        "{first} then {second}: each attempt lengthens the block"
    );

    standin.unblock_logins();
    assert_eq!(login(&standin, USER, PASSWORD).await.0, StatusCode::OK);

    // The control endpoint: a block of everyone, then of one address, then lifted.
    let (status, body) = control(
        &standin,
        reqwest::Method::POST,
        "/_standin/block",
        r#"{"seconds": 30}"#,
    )
    .await;
    assert_eq!((status, body), (StatusCode::OK, json!({"blocked": true})));
    let (status, headers, _) = login(&standin, USER, PASSWORD).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert!(retry_after(&headers) >= 30);
    let (status, _) = control(&standin, reqwest::Method::DELETE, "/_standin/block", "").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(login(&standin, USER, PASSWORD).await.0, StatusCode::OK);

    let (status, _) = control(
        &standin,
        reqwest::Method::POST,
        "/_standin/block",
        r#"{"ip": "127.0.0.1", "seconds": 30}"#,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        login(&standin, USER, PASSWORD).await.0,
        StatusCode::TOO_MANY_REQUESTS
    );
    for bad in [
        r#"{"seconds": -1}"#,
        r#"{"ip": "not-an-ip", "seconds": 1}"#,
        r#"{"ip": "127.0.0.1"}"#,
        "[]",
    ] {
        let (status, body) = control(&standin, reqwest::Method::POST, "/_standin/block", bad).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
    }
    assert_eq!(standin.stats().blocked_logins, 4);
}
