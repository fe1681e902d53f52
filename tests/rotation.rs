//! The Secrets Manager rotation contract: step events as Secrets Manager sends them.

mod support;

use iadvize_standin::Fault;
use support::*;

#[tokio::test]
async fn a_secrets_manager_rotation_stores_a_verified_token_as_awscurrent() {
    let world = World::new().await;
    let old = world.put_record(20).await;
    let logins_before = world.logins();
    let token = world.start_sm_rotation().await;
    let broker = world.broker();

    for step in STEPS {
        broker
            .handle(&step_event(step, &world.token_id, &token), deadline(30))
            .await
            .unwrap_or_else(|e| panic!("{step} failed: {e}"));
    }

    assert_eq!(world.logins() - logins_before, 1, "exactly one login");
    assert_eq!(world.verifications(), 1, "exactly one verification");
    let current = assert_valid_current(&world).await;
    let stages = world.stages().await;
    assert_eq!(stages[&token], ["AWSCURRENT"], "the new version is AWSCURRENT only: {stages:?}");
    assert_eq!(stages[&old], ["AWSPREVIOUS"], "{stages:?}");
    assert!(!stages.values().flatten().any(|s| s == "AWSPENDING"), "{stages:?}");
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
