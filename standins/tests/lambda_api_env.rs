//! The SDK finds the Invoke API stand-in through `AWS_ENDPOINT_URL_LAMBDA`, as a function
//! configured by the usual AWS configuration chain does (the general `AWS_ENDPOINT_URL`, here
//! an address where nothing listens, does not apply to Lambda then).
//!
//! One test alone in its binary: it sets process environment variables before any other
//! thread reads them.

use serde_json::json;
use standins::LambdaApi;

#[tokio::test]
async fn the_sdk_reaches_the_stand_in_through_aws_endpoint_url_lambda() {
    let api = LambdaApi::start().await.expect("start the stand-in");
    api.add_function("broker");
    let nothing_listens = {
        let socket = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
        format!("http://{}", socket.local_addr().expect("address"))
    };
    // SAFETY: this test is the only one in its binary, and no other thread reads the
    // environment while these are set (the runtime of `#[tokio::test]` is single-threaded).
    unsafe {
        std::env::set_var("AWS_ENDPOINT_URL_LAMBDA", api.url());
        std::env::set_var("AWS_ENDPOINT_URL", nothing_listens);
        std::env::set_var("AWS_REGION", "us-east-1");
        std::env::set_var("AWS_ACCESS_KEY_ID", "testing");
        std::env::set_var("AWS_SECRET_ACCESS_KEY", "testing");
        std::env::set_var("AWS_EC2_METADATA_DISABLED", "true");
        std::env::remove_var("AWS_PROFILE");
    }
    let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let lambda = aws_sdk_lambda::Client::new(&config);

    let answer = lambda
        .invoke()
        .function_name("broker")
        .invocation_type(aws_sdk_lambda::types::InvocationType::Event)
        .payload(aws_sdk_lambda::primitives::Blob::new(
            json!({"action": "refresh", "follow_up": 1}).to_string(),
        ))
        .send()
        .await
        .expect("the invocation reaches the stand-in");
    assert_eq!(answer.status_code(), 202);
    assert_eq!(
        api.events_of("broker"),
        vec![json!({"action": "refresh", "follow_up": 1})]
    );
}
