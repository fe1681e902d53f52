//! The Secrets Manager rotation contract: step events as Secrets Manager sends them.

use crate::support::*;
use serde_json::json;

#[tokio::test]
async fn a_secrets_manager_rotation_stores_a_verified_token_as_awscurrent() {
    let world = World::new().await;
    let old = world.put_record(20).await;
    let logins_before = world.logins();
    let token = world.start_sm_rotation().await;
    let broker = world.broker();

    run_steps(&broker, &world.token_id, &token).await;

    assert_eq!(world.logins() - logins_before, 1, "exactly one login");
    assert_eq!(world.verifications(), 1, "exactly one verification");
    let current = assert_valid_current(&world).await;
    let stages = world.stages().await;
    assert_eq!(
        stages[&token],
        ["AWSCURRENT"],
        "the new version is AWSCURRENT only: {stages:?}"
    );
    assert_eq!(stages[&old], ["AWSPREVIOUS"], "{stages:?}");
    assert!(
        !stages.values().flatten().any(|s| s == "AWSPENDING"),
        "{stages:?}"
    );
    assert_eq!(current["token_type"], "Bearer");
    assert_eq!(current["expires_in"], 86400);
}

#[tokio::test]
async fn every_step_invoked_twice_still_costs_one_login() {
    let world = World::new().await;
    world.put_current("placeholder, not a token").await;
    let token = world.start_sm_rotation().await;
    let broker = world.broker();
    for step in STEPS {
        for attempt in 0..2 {
            broker
                .handle(&step_event(step, &world.token_id, &token), deadline(30))
                .await
                .unwrap_or_else(|e| panic!("{step} attempt {attempt} failed: {e}"));
        }
    }
    assert_valid_current(&world).await;
    assert_eq!(world.logins(), 1);
    let stages = world.stages().await;
    assert_eq!(stages[&token], ["AWSCURRENT"], "{stages:?}");
}

#[tokio::test]
async fn the_first_rotation_accepts_a_non_json_current_value() {
    let world = World::new().await;
    let placeholder = world.put_current("not json").await;
    let token = world.start_sm_rotation().await;
    let broker = world.broker();
    run_steps(&broker, &world.token_id, &token).await;
    assert_valid_current(&world).await;
    let stages = world.stages().await;
    assert_eq!(stages[&placeholder], ["AWSPREVIOUS"]);
}

#[tokio::test]
async fn test_secret_fails_for_a_token_that_iadvize_rejects_and_awscurrent_keeps_the_old_one() {
    let world = World::new().await;
    world.put_record(10).await;
    let before = world.current().await;
    let token = world.start_sm_rotation().await;
    let broker = world.broker();
    for step in ["createSecret", "setSecret"] {
        broker
            .handle(&step_event(step, &world.token_id, &token), deadline(30))
            .await
            .unwrap();
    }
    world.standin.revoke_all_tokens();
    let err = broker
        .handle(
            &step_event("testSecret", &world.token_id, &token),
            deadline(30),
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), "TestSecretFailed");
    assert!(
        err.to_string().contains("rejected it (invalid_token)"),
        "{err}"
    );
    assert_eq!(world.current().await, before, "AWSCURRENT is unchanged");
    assert!(world.stages().await[&token].contains(&"AWSPENDING".to_owned()));
}

/// A world whose current value is a placeholder and whose rotation's pending version
/// holds `pending` (as Secrets Manager's configuration check would write it).
async fn world_with_pending_value(pending: &str) -> (World, String) {
    let world = World::new().await;
    world.put_current("placeholder").await;
    let token = world.start_sm_rotation().await;
    world
        .sm
        .put_secret_value()
        .secret_id(&world.token_id)
        .client_request_token(&token)
        .secret_string(pending)
        .version_stages("AWSPENDING")
        .send()
        .await
        .unwrap();
    (world, token)
}

#[tokio::test]
async fn test_secret_passes_a_pending_copy_of_a_current_value_that_is_not_a_record() {
    // What Secrets Manager's configuration check (RotateImmediately=false) looks like.
    let (world, token) = world_with_pending_value("placeholder").await;
    let test = step_event("testSecret", &world.token_id, &token);
    world.broker().handle(&test, deadline(30)).await.unwrap();
    assert_eq!(world.logins(), 0);

    // A pending value that is neither a record nor a copy fails.
    let (world, token) = world_with_pending_value("something else").await;
    let test = step_event("testSecret", &world.token_id, &token);
    let err = world
        .broker()
        .handle(&test, deadline(30))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), "TestSecretFailed", "{err}");
}

#[tokio::test]
async fn step_events_are_refused_when_the_guard_says_so_and_nothing_changes() {
    let world = World::new().await;
    let current_version = world.put_record(20).await;
    let broker = world.broker();

    // Rotation not enabled.
    let err = broker
        .handle(
            &step_event("createSecret", &world.token_id, &current_version),
            deadline(30),
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), "RotationGuard");
    assert!(err.to_string().contains("rotation is not enabled"), "{err}");

    let pending = world.start_sm_rotation().await;
    let before_stages = world.stages().await;
    let before_value = world.current().await;

    // A token that is not a version of the secret.
    let err = broker
        .handle(
            &step_event(
                "createSecret",
                &world.token_id,
                "00000000-0000-0000-0000-000000000000",
            ),
            deadline(30),
        )
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("is not a version of this secret"),
        "{err}"
    );

    // The current version: every step succeeds without doing anything.
    run_steps(&broker, &world.token_id, &current_version).await;

    // A missing secret.
    let err = broker
        .handle(
            &step_event("createSecret", "no-such-secret", &pending),
            deadline(30),
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), "SecretNotFound", "{err}");

    // finishSecret before createSecret: no token to promote.
    let err = broker
        .handle(
            &step_event("finishSecret", &world.token_id, &pending),
            deadline(30),
        )
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("holds no token; refusing to make it AWSCURRENT"),
        "{err}"
    );

    assert_eq!(world.stages().await, before_stages);
    assert_eq!(world.current().await, before_value);
    assert_eq!(world.logins(), 1, "only the direct login of put_record");
}

#[tokio::test]
async fn a_version_that_is_no_longer_pending_is_refused() {
    let world = World::new().await;
    world.put_record(20).await;
    let token = world.start_sm_rotation().await;
    // Someone removed AWSPENDING (a cancelled rotation): the version is left without stages.
    world
        .sm
        .update_secret_version_stage()
        .secret_id(&world.token_id)
        .version_stage("AWSPENDING")
        .remove_from_version_id(&token)
        .send()
        .await
        .unwrap();
    // Secrets Manager may drop a version left without stages; then it is not a version at all.
    let expected = if world.stages().await.contains_key(&token) {
        "is not AWSPENDING"
    } else {
        "is not a version"
    };
    let err = world
        .broker()
        .handle(
            &step_event("createSecret", &world.token_id, &token),
            deadline(30),
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains(expected), "{err}");
    assert_eq!(world.logins(), 1);
}

#[tokio::test]
async fn malformed_events_and_unknown_steps_are_refused_without_changes() {
    let world = World::new().await;
    world.put_record(20).await;
    let token = world.start_sm_rotation().await;
    let before = world.stages().await;
    let broker = world.broker();
    for (event, expected) in [
        (serde_json::json!("createSecret"), "expected a JSON object"),
        (
            serde_json::json!({"Step": "deleteSecret", "SecretId": world.token_id, "ClientRequestToken": token}),
            "unknown rotation step \"deleteSecret\"",
        ),
        (
            serde_json::json!({"Step": "createSecret", "SecretId": world.token_id}),
            "ClientRequestToken is missing",
        ),
        (
            serde_json::json!({"hello": "world"}),
            "top-level keys: [hello]",
        ),
    ] {
        let err = broker.handle(&event, deadline(30)).await.unwrap_err();
        assert_eq!(err.kind(), "InvalidEvent");
        assert!(err.to_string().contains(expected), "{err}");
    }
    assert_eq!(world.stages().await, before);
    assert_eq!(world.logins(), 1);
}

#[tokio::test]
async fn create_secret_with_refused_credentials_tags_the_block_and_the_next_attempt_calls_nobody() {
    let world = World::new().await;
    world.put_record(20).await;
    let bad_version = world
        .put_credentials(&world.username, "wrong password")
        .await;
    let token = world.start_sm_rotation().await;
    let broker = world.broker();
    let before = world.logins();
    let event = step_event("createSecret", &world.token_id, &token);

    let err = broker.handle(&event, deadline(30)).await.unwrap_err();
    assert_eq!(err.kind(), "CredentialsRefused");
    assert!(err.to_string().contains("put a corrected value"), "{err}");
    assert_eq!(world.logins() - before, 1);
    assert_eq!(
        world.tags().await["iadvize:rejected-credentials-version"],
        bad_version
    );

    let err = broker.handle(&event, deadline(30)).await.unwrap_err();
    assert_eq!(err.kind(), "CredentialsBlocked", "{err}");
    assert_eq!(
        world.logins() - before,
        1,
        "no second login with refused credentials"
    );

    world
        .put_credentials(&world.username, &world.password)
        .await;
    run_steps(&broker, &world.token_id, &token).await;
    assert_valid_current(&world).await;
    assert!(!world.is_blocked().await);
}

#[tokio::test]
async fn a_rotation_token_is_passed_through_to_put_secret_value() {
    let world = World::new().await;
    world.put_record(20).await;
    let token = world.start_sm_rotation().await;
    let mut event = step_event("createSecret", &world.token_id, &token);
    event["RotationToken"] = serde_json::json!("rotation-token-value");
    world.broker().handle(&event, deadline(30)).await.unwrap();
    assert!(world.stages().await[&token].contains(&"AWSPENDING".to_owned()));
}

#[tokio::test]
async fn two_finish_secrets_racing_on_one_version_both_succeed() {
    // Secrets Manager retries a step whose first attempt is still running; or a tick resumes a
    // rotation while Secrets Manager finishes it. The loser re-reads and reports success.
    let world = World::new().await;
    world.put_record(20).await;
    let token = world.start_sm_rotation().await;
    let broker = world.broker();
    for step in ["createSecret", "setSecret", "testSecret"] {
        broker
            .handle(&step_event(step, &world.token_id, &token), deadline(30))
            .await
            .unwrap();
    }
    let other = world.broker();
    let finish = step_event("finishSecret", &world.token_id, &token);
    let (a, b) = tokio::join!(
        broker.handle(&finish, deadline(30)),
        other.handle(&finish, deadline(30))
    );
    assert!(a.is_ok() && b.is_ok(), "{a:?} / {b:?}");
    assert_eq!(world.stages().await[&token], ["AWSCURRENT"]);
    assert_valid_current(&world).await;
}

#[tokio::test]
async fn a_tick_and_an_operator_refresh_racing_on_a_due_secret_both_succeed() {
    let world = World::new().await;
    world.put_record(2).await;
    let config = world
        .config()
        .to_builder()
        .min_login_interval(std::time::Duration::from_secs(10))
        .build()
        .expect("a valid test configuration");
    let (tick, refresh) = (world.broker_with(config.clone()), world.broker_with(config));
    let scheduled = scheduled_event();
    let forced = json!({"action": "refresh", "force": true});
    let (a, b) = tokio::join!(
        tick.handle(&scheduled, deadline(30)),
        refresh.handle(&forced, deadline(30))
    );
    for answer in [&a, &b] {
        let answer = answer.as_ref().expect("neither invocation fails");
        let outcome = answer["results"][0]["outcome"].as_str().unwrap();
        assert!(["refreshed", "in_progress"].contains(&outcome), "{answer}");
    }
    let stages = world.stages().await;
    assert!(
        !stages.values().flatten().any(|s| s == "AWSPENDING"),
        "{stages:?}"
    );
    assert_valid_current(&world).await;
}

// A token secret that has no value yet (the first deploy) with native rotation turned on.
// scripts/moto_server.py makes moto's RotateSecret create the value-less AWSPENDING version
// there, as AWS does.

/// The stages of an empty token secret right after RotateSecret: only the new version, with
/// AWSPENDING and no value.
async fn assert_only_an_empty_pending_version(world: &World, token: &str) {
    let stages = world.stages().await;
    assert_eq!(stages.len(), 1, "{stages:?}");
    assert_eq!(stages[token], ["AWSPENDING"], "{stages:?}");
    assert!(world.current().await.is_none(), "no AWSCURRENT value");
    let pending = world
        .sm
        .get_secret_value()
        .secret_id(&world.token_id)
        .version_id(token)
        .send()
        .await;
    assert!(pending.is_err(), "the pending version has no value");
}

#[tokio::test]
async fn a_rotation_of_a_secret_with_no_value_yet_fills_it_with_a_token_verified_before_it_is_written()
 {
    let world = World::new().await;
    let token = world.start_sm_rotation().await;
    assert_only_an_empty_pending_version(&world, &token).await;
    let broker = world.broker();

    broker
        .handle(
            &step_event("createSecret", &world.token_id, &token),
            deadline(30),
        )
        .await
        .unwrap();
    assert_eq!(world.logins(), 1);
    assert_eq!(
        world.verifications(),
        1,
        "the first value of a secret may become AWSCURRENT at once: verified before the write"
    );
    for step in ["setSecret", "testSecret", "finishSecret"] {
        broker
            .handle(&step_event(step, &world.token_id, &token), deadline(30))
            .await
            .unwrap_or_else(|e| panic!("{step} failed: {e}"));
    }
    assert_valid_current(&world).await;
    let stages = world.stages().await;
    assert_eq!(stages[&token], ["AWSCURRENT"], "{stages:?}");
    assert!(!stages.values().flatten().any(|s| s == "AWSPENDING"));
    assert_eq!(world.logins(), 1);
}

#[tokio::test]
async fn if_secrets_manager_makes_the_first_value_awscurrent_at_once_the_rotation_still_ends_clean()
{
    // PutSecretValue labels the first version of a secret AWSCURRENT by itself; whether that
    // holds for a value put into the empty AWSPENDING version AWS created is not documented.
    // If it does, testSecret and finishSecret meet a version that is already current.
    let world = World::new().await;
    let token = world.start_sm_rotation().await;
    let broker = world.broker();
    broker
        .handle(
            &step_event("createSecret", &world.token_id, &token),
            deadline(30),
        )
        .await
        .unwrap();
    world
        .sm
        .update_secret_version_stage()
        .secret_id(&world.token_id)
        .version_stage("AWSCURRENT")
        .move_to_version_id(&token)
        .send()
        .await
        .unwrap();
    for step in ["setSecret", "testSecret", "finishSecret"] {
        broker
            .handle(&step_event(step, &world.token_id, &token), deadline(30))
            .await
            .unwrap_or_else(|e| panic!("{step} failed: {e}"));
    }
    // testSecret skipped the version that is already current: createSecret verified it.
    assert_eq!(
        world.verifications(),
        1,
        "the new AWSCURRENT token was verified"
    );
    assert_valid_current(&world).await;
    assert_eq!(world.stages().await[&token], ["AWSCURRENT"]);
}

#[tokio::test]
async fn the_configuration_check_on_a_secret_with_no_value_yet_passes_and_the_secret_still_fills() {
    // RotateImmediately=false (what both templates set) runs only testSecret, on a copy of the
    // current value: on a secret with no value, an empty AWSPENDING version. Whether Secrets
    // Manager then removes AWSPENDING or leaves it, the broker fills the secret.
    for pending_removed in [true, false] {
        let world = World::new().await;
        let token = standins::moto::start_rotation_with(&world.sm, &world.token_id, false)
            .await
            .unwrap();
        assert_only_an_empty_pending_version(&world, &token).await;
        let broker = world.broker();
        broker
            .handle(
                &step_event("testSecret", &world.token_id, &token),
                deadline(30),
            )
            .await
            .unwrap_or_else(|e| panic!("the configuration check fails: {e}"));
        assert_eq!(world.logins(), 0, "nothing to test, nothing to log in for");

        let expected = if pending_removed {
            world
                .sm
                .update_secret_version_stage()
                .secret_id(&world.token_id)
                .version_stage("AWSPENDING")
                .remove_from_version_id(&token)
                .send()
                .await
                .unwrap();
            "refreshed"
        } else {
            "resumed"
        };
        let tick = world.broker_with(
            world
                .config()
                .to_builder()
                .stuck_rotation_after(std::time::Duration::ZERO)
                .build()
                .expect("a valid test configuration"),
        );
        let refresh = json!({"action": "refresh", "secret_ids": [world.token_id]});
        let answer = tick.handle(&refresh, deadline(30)).await.unwrap();
        assert_eq!(answer["results"][0]["outcome"], expected, "{answer}");
        assert_valid_current(&world).await;
        let stages = world.stages().await;
        assert!(
            !stages.values().flatten().any(|s| s == "AWSPENDING"),
            "{stages:?}"
        );
    }
}

#[tokio::test]
async fn test_secret_on_an_empty_pending_version_fails_when_there_is_a_current_value_to_copy() {
    // With a current value, the configuration check's pending version holds a copy of it: an
    // empty one means createSecret has not run, and the step says so.
    let world = World::new().await;
    world.put_record(20).await;
    let token = world.start_sm_rotation().await;
    let before = world.stages().await;
    let err = world
        .broker()
        .handle(
            &step_event("testSecret", &world.token_id, &token),
            deadline(30),
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), "TestSecretFailed", "{err}");
    assert!(
        err.to_string().contains("createSecret has not run for it"),
        "{err}"
    );
    assert_eq!(world.stages().await, before, "nothing changed");
}

#[tokio::test]
async fn a_first_rotation_before_the_credentials_are_put_says_what_to_do_and_finishes_once_they_are()
 {
    // The first deploy creates both secrets empty. A rotation that starts before the operator
    // puts the credentials fails in createSecret, telling them to, and leaves only an empty
    // AWSPENDING version, which a later createSecret can still fill: Secrets Manager's retry of
    // the rotation, or the tick resuming it.
    for retried_by_secrets_manager in [true, false] {
        let world = World::new().await;
        let creds_id = unique("creds-empty");
        create_empty_secret(&world.sm, &creds_id).await;
        let config = world
            .config()
            .to_builder()
            .credentials_secret_id(Some(creds_id.clone()))
            .stuck_rotation_after(std::time::Duration::ZERO)
            .build()
            .expect("a valid test configuration");
        let broker = world.broker_with(config);
        let token = world.start_sm_rotation().await;
        let create = step_event("createSecret", &world.token_id, &token);
        let err = broker.handle(&create, deadline(30)).await.unwrap_err();
        assert!(err.to_string().contains("put a value like"), "{err}");
        assert_eq!(world.logins(), 0);
        assert_only_an_empty_pending_version(&world, &token).await;

        world
            .sm
            .put_secret_value()
            .secret_id(&creds_id)
            .secret_string(
                json!({"username": world.username, "password": world.password}).to_string(),
            )
            .send()
            .await
            .unwrap();
        if retried_by_secrets_manager {
            run_steps(&broker, &world.token_id, &token).await;
        } else {
            let refresh = json!({"action": "refresh", "secret_ids": [world.token_id]});
            let answer = broker.handle(&refresh, deadline(30)).await.unwrap();
            assert_eq!(answer["results"][0]["outcome"], "resumed", "{answer}");
        }
        assert_valid_current(&world).await;
        let stages = world.stages().await;
        assert_eq!(stages[&token], ["AWSCURRENT"], "{stages:?}");
        assert_eq!(world.logins(), 1);
    }
}

#[tokio::test]
async fn step_events_are_read_by_what_they_mean() {
    // Secrets Manager sends exact names; these variations still have one meaning each.
    let world = World::new().await;
    world.put_record(20).await;
    let token = world.start_sm_rotation().await;
    let broker = world.broker();
    for step in ["CreateSecret", " setsecret", "TESTSECRET", "finishSecret "] {
        let event = serde_json::json!({
            "Step": step,
            "SecretId": format!(" {} ", world.token_id),
            "ClientRequestToken": format!("{token}\n"),
            "RotationToken": "",
        });
        let answer = broker
            .handle(&event, deadline(30))
            .await
            .unwrap_or_else(|e| panic!("{step}: {e}"));
        assert_eq!(answer["secret_id"], world.token_id.as_str());
    }
    assert_eq!(world.stages().await[&token], ["AWSCURRENT"]);
    assert_valid_current(&world).await;
}

#[tokio::test]
async fn finish_secret_does_not_repeat_a_stage_move_that_failed_for_good() {
    // One classification of failures decides retries: a move refused for good (access
    // denied) on unchanged stages is reported at once; a transient one is tried once more.
    for (code, moves) in [("AccessDeniedException", 1), ("ThrottlingException", 2)] {
        let world = World::new().await;
        world.put_record(20).await;
        let before = world.current().await;
        let token = world.start_sm_rotation().await;
        let sm = sm_proxy().await;
        let broker = iadvize_token_broker::Broker::new(
            world.config(),
            iadvize_token_broker::SecretStore::new(sm.client_without_retries()),
            iadvize_token_broker::metrics::Metrics::off(),
        )
        .unwrap();
        for step in ["createSecret", "setSecret", "testSecret"] {
            broker
                .handle(&step_event(step, &world.token_id, &token), deadline(30))
                .await
                .unwrap();
        }
        sm.fail("UpdateSecretVersionStage", SmFault::error(code));

        let err = broker
            .handle(
                &step_event("finishSecret", &world.token_id, &token),
                deadline(30),
            )
            .await
            .unwrap_err();

        assert!(err.to_string().contains(code), "{err}");
        assert_eq!(
            sm.calls("UpdateSecretVersionStage"),
            moves,
            "{code}: moves sent"
        );
        assert_eq!(world.current().await, before, "AWSCURRENT keeps its token");
    }
}
