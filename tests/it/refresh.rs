//! The refresh tick: fresh tokens are left alone, due ones are rotated inline, stuck
//! rotations are resumed.

use std::time::Duration;

use crate::support::*;
use serde_json::{Value, json};
use standins::Fault;

fn outcome(answer: &Value, i: usize) -> &str {
    answer["results"][i]["outcome"].as_str().unwrap()
}

#[tokio::test]
async fn a_tick_with_a_fresh_token_makes_no_call_to_iadvize() {
    let world = World::new().await;
    world.put_record(20).await;
    let before = world.standin.stats();
    let answer = world
        .broker()
        .handle(&scheduled_event(), deadline(30))
        .await
        .unwrap();
    assert_eq!(outcome(&answer, 0), "fresh");
    assert_eq!(answer["results"][0]["secret_id"], world.token_id);
    assert!(answer["results"][0]["expires_at"].is_string());
    assert_eq!(world.standin.stats(), before, "no request reached iAdvize");
}

#[tokio::test]
async fn a_tick_refreshes_a_token_inside_the_refresh_window() {
    let world = World::new().await;
    let old = world.put_record(3).await;
    let answer = world
        .broker()
        .handle(&scheduled_event(), deadline(30))
        .await
        .unwrap();
    assert_eq!(outcome(&answer, 0), "refreshed");
    let current = assert_valid_current(&world).await;
    assert_eq!(answer["results"][0]["expires_at"], current["expires_at"]);
    assert_eq!(world.logins(), 2, "the setup's login and one refresh");
    let stages = world.stages().await;
    assert_eq!(stages[&old], ["AWSPREVIOUS"]);
    assert!(
        !stages.values().flatten().any(|s| s == "AWSPENDING"),
        "{stages:?}"
    );
}

#[tokio::test]
async fn a_tick_refreshes_an_expired_token() {
    let world = World::new().await;
    world.put_record(-2).await;
    let answer = world
        .broker()
        .handle(&scheduled_event(), deadline(30))
        .await
        .unwrap();
    assert_eq!(outcome(&answer, 0), "refreshed");
    assert_valid_current(&world).await;
}

#[tokio::test]
async fn a_forced_refresh_rotates_a_fresh_token() {
    let world = World::new().await;
    world.put_record(23).await;
    let before = world.current().await.unwrap();
    let answer = world
        .broker()
        .handle(&json!({"action": "refresh", "force": true}), deadline(30))
        .await
        .unwrap();
    assert_eq!(outcome(&answer, 0), "refreshed");
    let after = assert_valid_current(&world).await;
    assert_ne!(before["access_token"], after["access_token"]);
}

#[tokio::test]
async fn the_first_tick_fills_a_token_secret_that_has_no_value() {
    let world = World::new().await;
    assert!(world.current().await.is_none());
    let answer = world
        .broker()
        .handle(&scheduled_event(), deadline(30))
        .await
        .unwrap();
    assert_eq!(outcome(&answer, 0), "refreshed");
    assert_eq!(world.logins(), 1);
    assert_eq!(world.verifications(), 1);
    assert_valid_current(&world).await;
}

#[tokio::test]
async fn the_first_tick_replaces_a_non_json_value() {
    let world = World::new().await;
    world.put_current("{ this is not json").await;
    let answer = world
        .broker()
        .handle(&scheduled_event(), deadline(30))
        .await
        .unwrap();
    assert_eq!(outcome(&answer, 0), "refreshed");
    assert_valid_current(&world).await;
}

#[tokio::test]
async fn a_tick_resumes_a_rotation_older_than_the_stuck_threshold() {
    let world = World::new().await;
    world.put_record(20).await;
    let pending = world.start_sm_rotation().await;
    let broker = world.broker_with(
        world
            .config()
            .to_builder()
            .stuck_rotation_after(Duration::ZERO)
            .build()
            .expect("a valid test configuration"),
    );
    let answer = broker
        .handle(&scheduled_event(), deadline(30))
        .await
        .unwrap();
    assert_eq!(outcome(&answer, 0), "resumed");
    assert_valid_current(&world).await;
    let stages = world.stages().await;
    assert_eq!(
        stages[&pending],
        ["AWSCURRENT"],
        "the stuck version was finished: {stages:?}"
    );
    assert!(!stages.values().flatten().any(|s| s == "AWSPENDING"));
}

#[tokio::test]
async fn a_tick_leaves_a_younger_rotation_alone() {
    let world = World::new().await;
    world.put_record(1).await; // due, but a rotation is already running
    let pending = world.start_sm_rotation().await;
    let before = (
        world.stages().await,
        world.current().await,
        world.standin.stats(),
    );
    let answer = world
        .broker()
        .handle(&scheduled_event(), deadline(30))
        .await
        .unwrap();
    assert_eq!(outcome(&answer, 0), "in_progress");
    assert_eq!(
        (
            world.stages().await,
            world.current().await,
            world.standin.stats()
        ),
        before
    );
    assert!(world.stages().await[&pending].contains(&"AWSPENDING".to_owned()));
}

#[tokio::test]
async fn two_token_secrets_with_different_credentials_are_refreshed_in_one_tick() {
    let world = World::new().await;
    // A second integration: its own iAdvize user, credentials secret and token secret.
    let user2 = format!("{}@example.com", unique("other"));
    world.standin.set_password(&user2, "second-password");
    let creds2 = unique("creds2");
    world
        .sm
        .create_secret()
        .name(&creds2)
        .secret_string(json!({"username": user2, "password": "second-password"}).to_string())
        .send()
        .await
        .unwrap();
    let token2 = unique("token2");
    create_empty_secret(&world.sm, &token2).await;
    tag(&world.sm, &token2, "iadvize:credentials-secret-id", &creds2).await;

    let broker = world.broker_with(
        world
            .config()
            .to_builder()
            .token_secret_ids(vec![world.token_id.clone(), token2.clone()])
            .build()
            .expect("a valid test configuration"),
    );
    let answer = broker
        .handle(&scheduled_event(), deadline(30))
        .await
        .unwrap();
    assert_eq!(outcome(&answer, 0), "refreshed");
    assert_eq!(outcome(&answer, 1), "refreshed");
    assert_eq!(answer["results"][1]["secret_id"], token2);
    assert_eq!(world.standin.logins_for(&world.username), 1);
    assert_eq!(world.standin.logins_for(&user2), 1);
    assert!(current_of(&world.sm, &token2).await.unwrap()["access_token"].is_string());
}

#[tokio::test]
async fn a_refresh_of_a_credentials_secret_is_refused_and_writes_nothing() {
    let world = World::in_region(REGION, 3).await;
    world.fill().await;
    // The default credentials secret; one tagged iadvize:credentials=true; one that only a
    // token secret's iadvize:credentials-secret-id tag names (listed with it).
    let tagged = world.creds(1).to_owned();
    tag(&world.sm, &tagged, "iadvize:credentials", "true").await;
    let named = world.creds(2).to_owned();
    let user_of_named = world.token_secret(2, &[], None).await;
    let snapshot = |id: String| {
        let sm = world.sm.clone();
        async move {
            (
                current_of(&sm, &id).await,
                stages_of(&sm, &id).await,
                tags_of(&sm, &id).await,
            )
        }
    };
    let before = (
        snapshot(world.creds_id.clone()).await,
        snapshot(tagged.clone()).await,
        snapshot(named.clone()).await,
    );
    let logins = world.logins();
    let broker = world.broker();

    for (ids, why) in [
        (
            vec![world.creds_id.clone()],
            "IADVIZE_CREDENTIALS_SECRET_ID",
        ),
        (vec![tagged.clone()], "tagged iadvize:credentials=true"),
        (
            vec![named.clone(), user_of_named.clone()],
            "names it in its iadvize:credentials-secret-id tag",
        ),
    ] {
        for force in [false, true] {
            let event = json!({"action": "refresh", "force": force, "secret_ids": ids});
            let err = broker.handle(&event, deadline(30)).await.unwrap_err();
            assert_eq!(err.kind(), "RefreshFailed", "{err}");
            let text = err.to_string();
            assert!(
                text.contains(&format!("secret {} is a credentials secret", ids[0]))
                    && text.contains(why)
                    && text.contains("nothing was written"),
                "{text}"
            );
            let report = broker.refresh(&ids, force, deadline(30)).await;
            assert_eq!(report.results[0].outcome.as_str(), "failed");
            assert_eq!(
                report.results[0].error_kind.map(|k| k.as_str()),
                Some("CredentialsSecret")
            );
        }
    }
    // The scheduled tick over a list that holds the default credentials secret: refused too,
    // and the token secret beside it is still checked.
    let listed = world.broker_with(
        world
            .config()
            .to_builder()
            .token_secret_ids(vec![world.token_id.clone(), world.creds_id.clone()])
            .build()
            .unwrap(),
    );
    let err = listed
        .handle(&scheduled_event(), deadline(30))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("1 of 2"), "{err}");
    assert!(err.to_string().contains("is a credentials secret"), "{err}");

    assert_eq!(
        (
            snapshot(world.creds_id.clone()).await,
            snapshot(tagged.clone()).await,
            snapshot(named.clone()).await,
        ),
        before,
        "no credentials secret was written"
    );
    // The token secret that names the third credentials secret was refreshed (its own
    // login); no other login happened.
    assert_eq!(
        world.logins(),
        logins + 3,
        "only the token secret beside the third: filled, then forced twice"
    );
    assert_valid_current(&world).await;
}

#[tokio::test]
async fn a_tick_fails_when_any_secret_failed_but_still_refreshes_the_others() {
    let world = World::new().await;
    let broker = world.broker_with(
        world
            .config()
            .to_builder()
            .token_secret_ids(vec!["missing-secret".into(), world.token_id.clone()])
            .build()
            .expect("a valid test configuration"),
    );
    let err = broker
        .handle(&scheduled_event(), deadline(30))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), "RefreshFailed");
    let text = err.to_string();
    assert!(
        text.contains("1 of 2")
            && text.contains("missing-secret: secret missing-secret was not found"),
        "{text}"
    );
    assert_valid_current(&world).await;
}

#[tokio::test]
async fn a_login_held_back_by_the_spacing_is_in_progress_while_the_token_is_valid() {
    let world = World::new().await;
    let broker = world.broker_with(
        world
            .config()
            .to_builder()
            .min_login_interval(Duration::from_secs(60))
            .build()
            .expect("a valid test configuration"),
    );
    let force = json!({"action": "refresh", "force": true});
    broker.handle(&force, deadline(30)).await.unwrap();
    let before = world.current().await;

    // Another invocation just logged in: not a failure, the token still works.
    let answer = broker.handle(&force, deadline(30)).await.unwrap();
    assert_eq!(outcome(&answer, 0), "in_progress", "{answer}");
    assert_eq!(world.logins(), 1);
    assert_eq!(world.current().await, before);
    assert!(
        world
            .tags()
            .await
            .contains_key("iadvize:last-login-attempt")
    );
}

#[tokio::test]
async fn a_login_held_back_by_the_spacing_fails_when_no_valid_token_is_left() {
    let world = World::new().await;
    world.put_record(-1).await;
    let logins = world.logins();
    tag(
        &world.sm,
        &world.token_id,
        "iadvize:last-login-attempt",
        &iadvize_token_broker::token::rfc3339_precise(time::OffsetDateTime::now_utc()),
    )
    .await;
    let broker = world.broker_with(
        world
            .config()
            .to_builder()
            .min_login_interval(Duration::from_secs(60))
            .build()
            .expect("a valid test configuration"),
    );
    let err = broker
        .handle(&scheduled_event(), deadline(30))
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("less than IADVIZE_MIN_LOGIN_INTERVAL"),
        "{err}"
    );
    assert_eq!(world.logins(), logins);
}

#[tokio::test]
async fn a_refreshed_token_that_iadvize_rejects_is_never_written() {
    let world = World::new().await;
    world.put_record(2).await;
    let before = world.current().await;
    let versions_before = world.stages().await.len();
    world.standin.push_verify_faults(Fault::Unauthorized, 1);
    let err = world
        .broker()
        .handle(&scheduled_event(), deadline(30))
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("rejected the token it just issued (invalid_token); nothing was stored"),
        "{err}"
    );
    assert_eq!(
        world.current().await,
        before,
        "AWSCURRENT keeps the working token"
    );
    let stages = world.stages().await;
    assert_eq!(
        stages.len(),
        versions_before,
        "no version was written: {stages:?}"
    );

    // The next tick starts afresh and succeeds.
    let answer = world
        .broker()
        .handle(&scheduled_event(), deadline(30))
        .await
        .unwrap();
    assert_eq!(outcome(&answer, 0), "refreshed");
    assert_valid_current(&world).await;
}

#[tokio::test]
async fn the_first_token_is_verified_before_it_is_published() {
    // A secret created without a value (as SAM and Terraform do): its first version becomes
    // AWSCURRENT at once, so verifying after writing would be too late.
    let world = World::new().await;
    world.standin.push_verify_faults(Fault::Unauthorized, 1);
    let err = world
        .broker()
        .handle(&scheduled_event(), deadline(30))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("nothing was stored"), "{err}");
    assert_eq!(
        world.current().await,
        None,
        "no rejected token was published"
    );
    assert!(world.stages().await.is_empty());

    let answer = world
        .broker()
        .handle(&scheduled_event(), deadline(30))
        .await
        .unwrap();
    assert_eq!(outcome(&answer, 0), "refreshed");
    assert_valid_current(&world).await;
}

#[tokio::test]
async fn a_tick_refresh_publishes_with_one_write_and_no_pending_version() {
    let world = World::new().await;
    let first = world.put_record(2).await;
    let logins = world.logins();
    let broker = world.broker();
    let calls = broker.store().calls();
    let answer = broker
        .handle(&scheduled_event(), deadline(30))
        .await
        .unwrap();
    assert_eq!(outcome(&answer, 0), "refreshed");
    // ListSecrets (discovery), DescribeSecret, BatchGetSecretValue, GetSecretValue
    // (credentials), TagResource, PutSecretValue.
    assert_eq!(broker.store().calls() - calls, 6);
    let stages = world.stages().await;
    assert_eq!(stages[&first], ["AWSPREVIOUS"], "{stages:?}");
    assert!(
        !stages.values().flatten().any(|s| s == "AWSPENDING"),
        "{stages:?}"
    );
    assert_eq!((world.logins() - logins, world.verifications()), (1, 1));
    assert_valid_current(&world).await;
}

#[tokio::test]
async fn a_login_that_succeeds_late_still_leaves_its_verification_a_whole_timeout() {
    // iAdvize is slow: the login's retries must stop early enough that a token it obtains
    // can still be verified, instead of being thrown away (a wasted login on every tick).
    let world = World::new().await;
    world.put_record(2).await;
    let broker = world.broker_with_retry(
        world
            .config()
            .to_builder()
            .http_timeout(Duration::from_secs(1))
            .build()
            .expect("a valid test configuration"),
        iadvize_token_broker::iadvize::RetryPolicy {
            max_retries: 4,
            base_delay: Duration::from_millis(200),
            safety_margin: Duration::from_secs(1),
        },
    );
    // Each login attempt times out, until one answers; every verification takes 600 ms.
    world
        .standin
        .push_login_faults(Fault::Slow(Duration::from_millis(1500)), 2);
    world
        .standin
        .push_verify_faults(Fault::Slow(Duration::from_millis(600)), 1);
    match broker.handle(&scheduled_event(), deadline(4)).await {
        Ok(answer) => {
            assert_eq!(outcome(&answer, 0), "refreshed");
            assert_valid_current(&world).await;
        }
        // Giving up is fine, but on the login: never on the verification of a token that
        // cost a login.
        Err(e) => {
            let text = e.to_string();
            assert!(
                text.contains("login") && !text.contains("verification"),
                "{text}"
            );
        }
    }
}

#[tokio::test]
async fn the_status_action_reports_each_secret() {
    let world = World::new().await;
    world.put_record(20).await;
    let answer = world
        .broker()
        .handle(&json!({"action": "status"}), deadline(30))
        .await
        .unwrap();
    let status = &answer["secrets"][0];
    assert_eq!(status["secret_id"], world.token_id);
    assert_eq!(status["token"], "valid");
    assert!(status["remaining_seconds"].as_u64().unwrap() > 19 * 3600);
    assert_eq!(status["credentials_blocked"], false);
    assert_eq!(status["credentials_secret_id"], world.creds_id);
    assert_eq!(world.logins(), 1, "status logs in never");
}

#[tokio::test]
async fn a_tick_emits_embedded_metrics_with_the_right_values() {
    let world = World::new().await;
    // Per-secret series are opt-in; the fleet-wide line (no dimension) is tests/it/fleet.rs's.
    let broker = world.broker_with(
        world
            .config()
            .to_builder()
            .per_secret_metrics(true)
            .build()
            .expect("a valid test configuration"),
    );
    broker
        .handle(&scheduled_event(), deadline(30))
        .await
        .unwrap();
    let all: Vec<Value> = world
        .metrics
        .lines()
        .iter()
        .map(|l| serde_json::from_str::<Value>(l).expect("each metric line is JSON"))
        .collect();
    // Logins are also counted by outcome, fleet-wide (dimension `Outcome`, never per secret).
    let by_outcome: Vec<&Value> = all.iter().filter(|l| l.get("Outcome").is_some()).collect();
    assert_eq!(by_outcome.len(), 1, "{by_outcome:?}");
    assert_eq!(by_outcome[0]["Outcome"], "ok");
    assert_eq!(by_outcome[0]["LoginAttempts"], 1.0);
    assert!(by_outcome[0].get("SecretName").is_none(), "{by_outcome:?}");
    let lines: Vec<Value> = all
        .iter()
        .filter(|l| l.get("SecretsManaged").is_none() && l.get("Outcome").is_none())
        .cloned()
        .collect();
    let find = |name: &str| {
        lines
            .iter()
            .find(|l| l.get(name).is_some())
            .unwrap_or_else(|| panic!("no {name} in {lines:?}"))
    };
    for line in &lines {
        let directive = &line["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(directive["Namespace"], "IadvizeTokenBroker");
        assert_eq!(directive["Dimensions"], json!([["SecretName"]]));
        assert_eq!(line["SecretName"], world.token_id);
        assert!(line["_aws"]["Timestamp"].is_u64());
    }
    assert_eq!(find("LoginAttempts")["LoginAttempts"], 1.0);
    assert_eq!(find("LoginsRefused")["LoginsRefused"], 0.0);
    assert_eq!(find("RotationsSucceeded")["RotationsSucceeded"], 1.0);
    let seconds = find("SecondsUntilExpiry")["SecondsUntilExpiry"]
        .as_f64()
        .unwrap();
    assert!((86_000.0..=86_400.0).contains(&seconds), "{seconds}");
}

#[tokio::test]
async fn with_verification_off_a_rotation_makes_no_verification_call() {
    let world = World::new().await;
    let broker = world.broker_with(
        world
            .config()
            .to_builder()
            .verify_token(false)
            .build()
            .expect("a valid test configuration"),
    );
    let answer = broker
        .handle(&scheduled_event(), deadline(30))
        .await
        .unwrap();
    assert_eq!(outcome(&answer, 0), "refreshed");
    assert_eq!(world.logins(), 1);
    assert_eq!(world.verifications(), 0);
}

#[tokio::test]
async fn a_last_login_tag_in_the_far_future_neither_blocks_logins_nor_panics() {
    // Broker state lives in tags that anyone with TagResource can write.
    let world = World::new().await;
    world.put_record(2).await;
    tag(
        &world.sm,
        &world.token_id,
        "iadvize:last-login-attempt",
        "9999-12-31T23:59:59Z",
    )
    .await;
    let broker = world.broker_with(
        world
            .config()
            .to_builder()
            .min_login_interval(Duration::from_secs(10))
            .build()
            .expect("a valid test configuration"),
    );
    let answer = broker
        .handle(&scheduled_event(), deadline(30))
        .await
        .unwrap();
    assert_eq!(outcome(&answer, 0), "refreshed", "{answer}");
    assert_valid_current(&world).await;
}

#[tokio::test]
async fn a_credentials_value_that_cannot_be_used_says_what_it_holds_and_nothing_changes() {
    let world = World::new().await;
    world.put_record(2).await;
    let before = world.current().await;
    let broker = world.broker();
    let valid = json!({"username": world.username, "password": world.password}).to_string();
    /// A value as stored: with `--secret-string`, or with `--secret-binary`.
    enum Stored<'a> {
        Text(&'a str),
        Binary(Vec<u8>),
    }
    let cases = [
        // A valid value stored with `--secret-binary`: refused, with how to store it.
        (
            Stored::Binary(valid.clone().into_bytes()),
            "the value is binary data (SecretBinary,",
        ),
        (
            Stored::Text("user:password"),
            "the value is not JSON (line 1, column 1)",
        ),
        (
            Stored::Text(r#"["u", "p"]"#),
            "the value is an array of 2 items, expected a JSON object",
        ),
        (
            Stored::Text(r#"{"Username": "u", "password": "p"}"#),
            r#"field "username" is missing (there is a "Username": field names are case-sensitive)"#,
        ),
        (
            Stored::Text(r#"{"username": 12345, "password": "p"}"#),
            r#"field "username" must be a non-empty string, got an integer"#,
        ),
        (
            Stored::Text(r#"{"username": "u", "password": null}"#),
            r#"field "password" must be a non-empty string, got null"#,
        ),
        (
            Stored::Text(r#"{"username": "u", "password": ""}"#),
            r#"field "password" must be a non-empty string, got an empty string"#,
        ),
    ];
    for (stored, expected) in cases {
        let put = world.sm.put_secret_value().secret_id(&world.creds_id);
        let binary = matches!(stored, Stored::Binary(_));
        let put = match stored {
            Stored::Text(text) => put.secret_string(text),
            Stored::Binary(bytes) => {
                put.secret_binary(aws_sdk_secretsmanager::primitives::Blob::new(bytes))
            }
        };
        put.send().await.unwrap();
        let logins = world.logins();

        let err = broker
            .handle(&json!({"action": "refresh", "force": true}), deadline(30))
            .await
            .unwrap_err();

        let text = err.to_string();
        assert!(text.contains(expected), "{expected}: {text}");
        if binary {
            assert!(
                text.contains(&format!(
                    "--secret-id {} --secret-string file://credentials.json",
                    world.creds_id
                )),
                "{text}"
            );
        }
        assert_no_secrets(&text, &[&world.password, &world.username]);
        assert_eq!(world.logins(), logins, "no login with unusable credentials");
        assert_eq!(world.current().await, before, "AWSCURRENT is unchanged");
    }
}

#[tokio::test]
async fn credentials_with_a_byte_order_mark_or_spaces_around_the_username_are_used() {
    // Both have one meaning: an editor's byte-order mark is not part of the JSON, and an
    // iAdvize login never begins or ends with whitespace.
    let world = World::new().await;
    let broker = world.broker();
    for value in [
        format!(
            "\u{feff}{}",
            json!({"username": world.username, "password": world.password})
        ),
        json!({"username": format!(" {}\n", world.username), "password": world.password})
            .to_string(),
    ] {
        world
            .sm
            .put_secret_value()
            .secret_id(&world.creds_id)
            .secret_string(value)
            .send()
            .await
            .unwrap();
        let answer = broker
            .handle(&json!({"action": "refresh", "force": true}), deadline(30))
            .await
            .unwrap();
        assert_eq!(outcome(&answer, 0), "refreshed");
        assert_valid_current(&world).await;
    }
    assert!(!world.is_blocked().await);
}

#[tokio::test]
async fn operator_events_are_read_by_what_they_mean() {
    let world = World::new().await;
    world.put_record(20).await;
    let broker = world.broker();
    for event in [
        json!({"action": " Refresh ", "force": "true", "secret_ids": world.token_id}),
        json!({"action": "REFRESH", "force": true, "secret_ids": format!(" {} ", world.token_id)}),
        json!({"action": "refresh", "force": " TRUE", "secret_ids": [format!("{}\n", world.token_id)]}),
    ] {
        let logins = world.logins();
        let answer = broker.handle(&event, deadline(30)).await.unwrap();
        assert_eq!(outcome(&answer, 0), "refreshed", "{event}");
        assert_eq!(answer["results"][0]["secret_id"], world.token_id.as_str());
        assert_eq!(world.logins(), logins + 1);
    }
    let status = broker
        .handle(&json!({"action": "Status", "force": null}), deadline(30))
        .await
        .unwrap();
    assert_eq!(status["secrets"][0]["token"], "valid", "{status}");
    for (event, expected) in [
        (
            json!({"action": "refresh", "force": 1}),
            "force is an integer, expected true or false",
        ),
        (
            json!({"action": "refresh", "secret_ids": [world.token_id, 7]}),
            "secret_ids[1] is an integer, expected a secret name or ARN",
        ),
        (
            json!({"action": "refresh", "secret_ids": ["bad\nid"]}),
            "secret_ids[0] is a string of 6 characters with characters no secret name or ARN holds",
        ),
        (
            json!({"action": "refresh", "secret_ids": {"id": "x"}}),
            "secret_ids is an object with 1 key, expected an array",
        ),
        (
            json!({"action": ["refresh"]}),
            "action is an array of 1 item, expected a string",
        ),
    ] {
        let logins = world.logins();
        let err = broker.handle(&event, deadline(30)).await.unwrap_err();
        assert_eq!(err.kind(), "InvalidEvent");
        assert!(err.to_string().contains(expected), "{event}: {err}");
        assert_eq!(world.logins(), logins);
    }
}

#[tokio::test]
async fn a_credentials_tag_with_whitespace_around_the_id_names_that_secret() {
    // Tag values are typed by hand in the console; a secret id never holds whitespace.
    let world = World::new().await;
    tag(
        &world.sm,
        &world.token_id,
        "iadvize:credentials-secret-id",
        &format!(" {} ", world.creds_id),
    )
    .await;
    let broker = world.broker_with(
        world
            .config()
            .to_builder()
            .credentials_secret_id(None)
            .build()
            .expect("a valid test configuration"),
    );
    let answer = broker
        .handle(&scheduled_event(), deadline(30))
        .await
        .unwrap();
    assert_eq!(outcome(&answer, 0), "refreshed", "{answer}");
    assert_valid_current(&world).await;
}
