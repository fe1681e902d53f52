//! `make bench`: what one tick and one full rotation cost, against moto and the local
//! iAdvize stand-in: Secrets Manager calls, iAdvize calls and wall time (median and max of
//! several runs). The stand-ins answer in well under a millisecond of work, so the times
//! are the broker's own overhead plus loopback HTTP, not what AWS will take.
//!
//! Then the Lambda binary itself behind the local Runtime API (`LambdaHarness`): its
//! initialisation (process start to its first `/invocation/next`, Lambda's `Init Duration`),
//! the first forced refresh of each fresh process, and forced refreshes in a warm one. The
//! binary is `BENCH_BINARY` when set (e.g. the `bootstrap` of a release zip), else the release
//! build in `target/release/` that `make bench` builds.

use std::num::NonZeroU32;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use iadvize_token_broker::metrics::Metrics;
use iadvize_token_broker::{Broker, Config, SecretStore};
use serde_json::json;
use standins::{LambdaHarness, Standin, StandinConfig, moto};

type Fallible<T> = Result<T, Box<dyn std::error::Error>>;

const RUNS: usize = 20;
/// Cold starts of the Lambda binary (each one a new process).
const COLD_STARTS: usize = 10;

#[tokio::main]
async fn main() -> Fallible<()> {
    let moto =
        std::env::var("MOTO_ENDPOINT").map_err(|_| "MOTO_ENDPOINT is not set; run `make bench`")?;
    let sm = moto::client(&moto);
    let standin = Standin::start(StandinConfig {
        // Forced rotations in a loop would otherwise hit the stand-in's 10/min/user limit.
        per_user_limit: 10_000,
        per_ip_limit: 10_000,
        ..StandinConfig::default().with_user("bench@example.com", "bench-password")
    })
    .await?;
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    let creds = format!("bench-creds-{suffix}");
    let token = format!("bench-token-{suffix}");
    sm.create_secret()
        .name(&creds)
        .secret_string(
            json!({"username": "bench@example.com", "password": "bench-password"}).to_string(),
        )
        .send()
        .await?;
    sm.create_secret().name(&token).send().await?;
    // The binary's own token secret: the login pacing is seeded from a secret's tags, and the
    // in-process runs below log in many times on `token`.
    let binary_token = format!("bench-binary-token-{suffix}");
    sm.create_secret().name(&binary_token).send().await?;

    let store = SecretStore::new(sm.clone());
    let config = Config::builder()
        .token_secret_ids(vec![token.clone()])
        .credentials_secret_id(Some(creds.clone()))
        .api_url(standin.url().parse()?)
        .min_login_interval(Duration::ZERO)
        // 20 forced refreshes and 20 rotations log in 40 times within a minute; 100 is the
        // most the configuration accepts (iAdvize's per-IP limit).
        .max_logins_per_minute(NonZeroU32::new(100).ok_or("100 is not zero")?)
        .build()?;
    let binary_config = [
        ("AWS_ENDPOINT_URL", moto.as_str()),
        ("AWS_ACCESS_KEY_ID", "bench"),
        ("AWS_SECRET_ACCESS_KEY", "bench"),
        ("AWS_REGION", "us-east-1"),
        ("IADVIZE_API_URL", standin.url().as_str()),
        ("IADVIZE_TOKEN_SECRET_IDS", binary_token.as_str()),
        ("IADVIZE_CREDENTIALS_SECRET_ID", creds.as_str()),
        ("IADVIZE_MIN_LOGIN_INTERVAL", "0s"),
        // 31 forced refreshes, each a login, within a minute.
        ("IADVIZE_MAX_LOGINS_PER_MINUTE", "100"),
    ]
    .map(|(key, value)| (key.to_owned(), value.to_owned()));
    let broker = Broker::new(config, store.clone(), Metrics::off())?;
    let deadline = || tokio::time::Instant::now() + Duration::from_secs(60);
    let tick = json!({"detail-type": "Scheduled Event", "source": "aws.events", "detail": {}});
    let force = json!({"action": "refresh", "force": true});

    println!(
        "{:<44} {:>9} {:>9} {:>11} {:>9}",
        "operation", "SM calls", "iAdvize", "median", "max"
    );
    // The first tick fills the empty secret.
    broker.handle(&tick, deadline()).await?;

    let mut fresh = Sample::default();
    for _ in 0..RUNS {
        fresh
            .measure(&store, &standin, || broker.handle(&tick, deadline()))
            .await?;
    }
    fresh.print("tick, token fresh (no login)");

    let mut forced = Sample::default();
    for _ in 0..RUNS {
        forced
            .measure(&store, &standin, || broker.handle(&force, deadline()))
            .await?;
    }
    forced.print("tick, token due (inline refresh)");

    let mut rotation = Sample::default();
    for _ in 0..RUNS {
        let pending = moto::start_rotation(&sm, &token).await?;
        rotation
            .measure(&store, &standin, || async {
                for step in ["createSecret", "setSecret", "testSecret", "finishSecret"] {
                    let event =
                        json!({"Step": step, "SecretId": token, "ClientRequestToken": pending});
                    broker.handle(&event, deadline()).await?;
                }
                Ok::<_, iadvize_token_broker::Error>(json!(null))
            })
            .await?;
    }
    rotation.print("Secrets Manager rotation (4 step events)");
    println!(
        "\n{RUNS} runs each; moto {moto}, iAdvize stand-in {}",
        standin.url()
    );

    lambda_binary(&binary_config, &force).await
}

/// Cold starts and forced refreshes of the Lambda binary behind the local Runtime API.
async fn lambda_binary(env: &[(String, String)], force: &serde_json::Value) -> Fallible<()> {
    let binary = std::env::var_os("BENCH_BINARY")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/release/iadvize-token-broker")
        });
    let size = std::fs::metadata(&binary)
        .map_err(|e| format!("{}: {e} (run `make bench`)", binary.display()))?
        .len();
    println!("\nLambda binary {} ({size} bytes)", binary.display());
    println!("{:<44} {:>11} {:>9}", "operation", "median", "max");

    let refreshed = |answer: &serde_json::Value| -> Fallible<()> {
        if answer["results"][0]["outcome"] == "refreshed" {
            Ok(())
        } else {
            Err(format!("a forced refresh did not refresh: {answer}").into())
        }
    };
    let mut init = Vec::new();
    let mut first = Vec::new();
    for _ in 0..COLD_STARTS {
        let lambda = LambdaHarness::start(&binary, env).await?;
        init.push(lambda.ready().await?);
        let started = Instant::now();
        let answer = lambda.invoke(force).await?;
        first.push(started.elapsed());
        refreshed(&answer)?;
        lambda.shutdown().await;
    }
    let lambda = LambdaHarness::start(&binary, env).await?;
    lambda.ready().await?;
    refreshed(&lambda.invoke(force).await?)?;
    let mut warm = Vec::new();
    for _ in 0..RUNS {
        let started = Instant::now();
        let answer = lambda.invoke(force).await?;
        warm.push(started.elapsed());
        refreshed(&answer)?;
    }
    lambda.shutdown().await;

    print_times("init (start to first /invocation/next)", &mut init);
    print_times("forced refresh, first after a cold start", &mut first);
    print_times("forced refresh, warm", &mut warm);
    println!(
        "\n{COLD_STARTS} cold starts, {RUNS} warm refreshes; the times include the local \
         Runtime API's loopback HTTP"
    );
    Ok(())
}

/// Prints the median and the max of `times`.
fn print_times(name: &str, times: &mut [Duration]) {
    times.sort();
    let median = times[times.len() / 2];
    let max = times[times.len() - 1];
    println!(
        "{:<44} {:>9.1}ms {:>7.1}ms",
        name,
        median.as_secs_f64() * 1e3,
        max.as_secs_f64() * 1e3
    );
}

#[derive(Default)]
struct Sample {
    times: Vec<Duration>,
    sm_calls: Vec<u64>,
    iadvize_calls: Vec<u32>,
}

impl Sample {
    async fn measure<F, Fut, T>(
        &mut self,
        store: &SecretStore,
        standin: &Standin,
        run: F,
    ) -> Fallible<()>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<T, iadvize_token_broker::Error>>,
    {
        let calls = store.calls();
        let stats = standin.stats();
        let started = Instant::now();
        run().await?;
        self.times.push(started.elapsed());
        self.sm_calls.push(store.calls() - calls);
        let after = standin.stats();
        self.iadvize_calls.push(
            (after.login_requests - stats.login_requests)
                + (after.verifications - stats.verifications),
        );
        Ok(())
    }

    fn print(&mut self, name: &str) {
        self.times.sort();
        let median = self.times[self.times.len() / 2];
        let max = self.times[self.times.len() - 1];
        let range = |v: &[u64]| {
            let (lo, hi) = (
                v.iter().min().copied().unwrap_or(0),
                v.iter().max().copied().unwrap_or(0),
            );
            if lo == hi {
                lo.to_string()
            } else {
                format!("{lo}-{hi}")
            }
        };
        let iadvize: Vec<u64> = self.iadvize_calls.iter().map(|&n| u64::from(n)).collect();
        println!(
            "{:<44} {:>9} {:>9} {:>9.1}ms {:>7.1}ms",
            name,
            range(&self.sm_calls),
            range(&iadvize),
            median.as_secs_f64() * 1e3,
            max.as_secs_f64() * 1e3
        );
    }
}
