//! The Lambda entry point: set up logging, load the configuration once, build the clients
//! once, serve events.

use iadvize_token_broker::follow_up::FollowUps;
use iadvize_token_broker::metrics::Metrics;
use iadvize_token_broker::{Broker, Config, SecretStore, deadline_from, logging};
use lambda_runtime::{Diagnostic, LambdaEvent, service_fn};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    logging::init();
    // Above INFO, Lambda's log-level filtering drops the metric lines: say so once.
    logging::warn_if_metrics_dropped();
    // A bad configuration fails the cold start (Runtime.ExitError), naming the variable.
    let config = Config::from_env()
        .inspect_err(|e| tracing::error!(error = %e, "invalid configuration; not starting"))?;
    let store = SecretStore::from_env(config.aws_timeouts()).await;
    let follow_ups = FollowUps::from_env(config.aws_timeouts()).await;
    let broker = Broker::new(config, store, Metrics::stdout())?.with_follow_ups(follow_ups);
    let broker = &broker;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        let deadline = deadline_from(event.context.deadline());
        broker
            .handle(&event.payload, deadline)
            .await
            .map_err(Diagnostic::from)
    }))
    .await
}
