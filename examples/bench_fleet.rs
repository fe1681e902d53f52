//! `make bench-fleet`: one broker for N = 10, 100, 500 integrations, against moto and the
//! iAdvize stand-in with its 100/min/IP and 10/min/user limits enforced.
//!
//! Time is compressed so the run takes minutes: for the first fill a minute lasts 6 s (the
//! stand-in's rate window, the broker's per-minute window and `IADVIZE_MIN_LOGIN_INTERVAL`
//! are all divided by 10, and a tick gets 12 s, a 120 s Lambda timeout / 10); for the
//! simulated day an hour lasts 1 s per 100 integrations, at least 1 s (so for N = 500 a token
//! lives 120 s, the refresh window is 20 s and a tick runs every 5 s). Each N works in its own
//! moto region (discovery lists a whole region). `BENCH_FLEET_ONLY=500` runs one size.
//!
//! The refill rows (N = 100 and 500): every token expired, one scheduled tick, then the
//! follow-ups it sends (through the Lambda Invoke stand-in, run in this process one after the
//! other as Lambda runs queued events), with the first fill's compression.

use std::time::Duration;

use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::types::Tag;
use iadvize_token_broker::follow_up::{FOLLOW_UP_RESERVE, FollowUps};
use iadvize_token_broker::metrics::Metrics;
use iadvize_token_broker::refresh::Outcome;
use iadvize_token_broker::token::{AccessToken, parse_rfc3339};
use iadvize_token_broker::{Broker, Config, SecretStore, TokenRecord};
use serde_json::json;
use standins::lambda_api::LambdaApi;
use standins::{Standin, StandinConfig};
use time::OffsetDateTime;
use tokio::time::Instant;

type Fallible<T> = Result<T, Box<dyn std::error::Error>>;

trait DefaultBudget {
    fn default_budget() -> Duration;
}

impl DefaultBudget for Config {
    /// The rotation budget at the default settings: login and verification timeouts (10 s
    /// each) and the 3 s kept for the writes.
    fn default_budget() -> Duration {
        Duration::from_secs(23)
    }
}

const SIZES: [(usize, &str); 3] = [(10, "eu-west-1"), (100, "eu-west-2"), (500, "eu-west-3")];
/// Integrations that share one iAdvize user (the rest have one user each).
const SHARING: usize = 3;
/// First fill: 1 minute = 6 s.
const FILL_COMPRESSION: u32 = 10;
/// Simulated day: how long an hour lasts for `n` integrations, 1 s per 100 (at least 1 s).
///
/// A compressed hour must hold one tick's real round trips, as a real hour holds a tick of at
/// most 120 s. Compression does not shorten them: moto answers one call at a time, in a few
/// milliseconds, and each login makes a few Secrets Manager calls (two more with the login
/// spacing on: the tag is read before and after it is written), so a tick that refreshes 500
/// secrets runs 12 s (spacing off) to 20 s (on). At 1 s an hour that tick lasted 12 to 20
/// hours: the next ticks started late, the 24 ticks spread over several token lifetimes (225
/// s, 9 lifetimes, in one run), and tokens published at the start of a 20-hour tick were due
/// again at its end. The figure then counted moto's speed times the calls per login, not how
/// often the broker logs in.
fn day_hour(n: usize) -> Duration {
    Duration::from_secs(n.div_ceil(100).max(1) as u64)
}

struct RefillRow {
    n: usize,
    wall: Duration,
    follow_ups: u32,
    all_accepted: bool,
    max_per_minute: usize,
    rate_limited: u32,
}

struct Row {
    n: usize,
    fill_ticks: u32,
    fill_wall: Duration,
    max_per_minute: usize,
    rate_limited: u32,
    fresh_calls: u64,
    fresh_wall: Duration,
    logins_per_lifetime: f64,
    day_rate_limited: u32,
}

#[tokio::main]
async fn main() -> Fallible<()> {
    let endpoint = std::env::var("MOTO_ENDPOINT")
        .map_err(|_| "MOTO_ENDPOINT is not set: run `make bench-fleet`")?;
    let users: Vec<(String, String)> = (0..SIZES.iter().map(|(n, _)| n).sum::<usize>())
        .map(|i| (format!("user{i}@example.com"), format!("pw-{i}")))
        .collect();
    let mut config = StandinConfig::default();
    for (user, password) in &users {
        config = config.with_user(user, password);
    }
    let standin = Standin::start(config).await?;
    let mut rows = Vec::new();
    let mut refills = Vec::new();
    let mut first_user = 0;
    let only = std::env::var("BENCH_FLEET_ONLY").ok();
    for (n, region) in SIZES {
        if only.as_ref().is_some_and(|only| *only != n.to_string()) {
            continue;
        }
        let sm = client(&endpoint, region);
        let secrets = create_fleet(&sm, &users[first_user..first_user + n], n).await?;
        first_user += n;
        eprintln!("N = {n}: {} token secrets created", secrets.len());
        rows.push(bench(&sm, &standin, n, &secrets).await?);
        if n >= 100 {
            refills.push(refill(&sm, &standin, n, &secrets).await?);
        }
    }
    standin.shutdown().await;

    println!();
    println!(
        "{:>5} | {:>10} {:>10} {:>11} {:>5} | {:>9} {:>9} {:>10} | {:>14} {:>5}",
        "N",
        "fill ticks",
        "fill wall",
        "max/minute",
        "429s",
        "SM calls",
        "bound",
        "fresh wall",
        "logins/lifetime",
        "429s"
    );
    for r in &rows {
        let bound = r.n.div_ceil(20) + r.n.div_ceil(100) + 2;
        println!(
            "{:>5} | {:>10} {:>9.1}s {:>11} {:>5} | {:>9} {:>9} {:>8.0}ms | {:>14.2} {:>5}",
            r.n,
            r.fill_ticks,
            r.fill_wall.as_secs_f64(),
            r.max_per_minute,
            r.rate_limited,
            r.fresh_calls,
            format!("≤{bound}"),
            r.fresh_wall.as_secs_f64() * 1e3,
            r.logins_per_lifetime,
            r.day_rate_limited,
        );
    }
    println!(
        "\n{:>5} | {:>12} {:>10} {:>12} {:>11} {:>5}",
        "N", "refill wall", "as real", "follow-ups", "max/minute", "429s"
    );
    for r in &refills {
        println!(
            "{:>5} | {:>11.1}s {:>9.1}m {:>12} {:>11} {:>5}{}",
            r.n,
            r.wall.as_secs_f64(),
            r.wall.as_secs_f64() * f64::from(FILL_COMPRESSION) / 60.0,
            r.follow_ups,
            r.max_per_minute,
            r.rate_limited,
            if r.all_accepted {
                ""
            } else {
                "  (not all filled)"
            }
        );
    }
    println!(
        "refill: every token expired; one scheduled tick, then its follow-ups (IADVIZE_MAX_FOLLOW_UPS=15), each a 120 s invocation compressed like the first fill; \
         'as real' scales the wall time back (minutes)"
    );
    println!(
        "\nfirst fill: 1 minute = {} s (cap {} logins per window, spacing {:?} per user, a 120 s tick compressed; fill wall excludes the hours between ticks); \
         fresh tick: Secrets Manager calls of one tick over N fresh secrets (per-secret path: 2N); \
         day: 1 hour = 1 s per 100 integrations (at least 1 s), token lifetime 24 ticks, {} integrations share one user",
        60 / FILL_COMPRESSION,
        Config::default().max_logins_per_minute(),
        Config::default().min_login_interval() / FILL_COMPRESSION,
        SHARING
    );
    Ok(())
}

fn client(endpoint: &str, region: &str) -> Client {
    standins::moto::client_with(endpoint, region, None)
}

/// N token secrets tagged for discovery; the last `SHARING` share the user of the first of
/// them.
async fn create_fleet(sm: &Client, users: &[(String, String)], n: usize) -> Fallible<Vec<String>> {
    let mut secrets = Vec::new();
    for (i, (user, password)) in users.iter().enumerate().take(n) {
        let owner = i.min(n - SHARING);
        let creds = format!("creds-{i}");
        if owner == i {
            sm.create_secret()
                .name(&creds)
                .secret_string(json!({"username": user, "password": password}).to_string())
                .send()
                .await?;
        }
        let name = format!("token-{i}");
        sm.create_secret()
            .name(&name)
            .tags(Tag::builder().key("iadvize:managed").value("true").build())
            .tags(
                Tag::builder()
                    .key("iadvize:credentials-secret-id")
                    .value(format!("creds-{owner}"))
                    .build(),
            )
            .send()
            .await?;
        secrets.push(name);
    }
    Ok(secrets)
}

fn broker(sm: &Client, standin: &Standin, config: Config, window: Duration) -> Fallible<Broker> {
    Ok(Broker::new(
        config
            .to_builder()
            .api_url(standin.url().parse()?)
            .http_timeout(Duration::from_secs(2))
            .build()?,
        SecretStore::new(sm.clone()),
        Metrics::off(),
    )?
    .with_login_window(window))
}

async fn bench(sm: &Client, standin: &Standin, n: usize, secrets: &[String]) -> Fallible<Row> {
    // First fill, a minute compressed to 6 s.
    let window = Duration::from_secs(60) / FILL_COMPRESSION;
    standin.set_rate_window(window);
    standin.reset_rate_limits();
    let defaults = Config::default();
    let fill = broker(
        sm,
        standin,
        Config::builder()
            .min_login_interval(defaults.min_login_interval() / FILL_COMPRESSION)
            .build()
            .expect("a valid test configuration"),
        window,
    )?;
    let limited = standin.stats().rate_limited;
    let mut fill_wall = Duration::ZERO;
    let mut fill_ticks = 0;
    loop {
        if fill_ticks > 0 {
            // The hour between two scheduled ticks: longer than the rolling minute, so a new
            // tick starts with the whole per-minute cap (not part of the wall time).
            tokio::time::sleep(window).await;
        }
        let started = Instant::now();
        fill_ticks += 1;
        // A 120 s invocation leaves 120 s minus the rotation budget to start logins; that part
        // is compressed, the budget (real requests) is not.
        let starts = Duration::from_secs(120).saturating_sub(Config::default_budget());
        let deadline = Instant::now() + starts / FILL_COMPRESSION + fill.rotation_budget();
        let report = fill.refresh_fleet(false, deadline).await?;
        let done = report
            .results
            .iter()
            .all(|r| matches!(r.outcome, Outcome::Fresh | Outcome::Refreshed));
        let count = |o: Outcome| report.results.iter().filter(|r| r.outcome == o).count();
        eprintln!(
            "N = {n}: fill tick {fill_ticks}: {} refreshed, {} deferred, {} failed, {} fresh ({:.1}s)",
            count(Outcome::Refreshed),
            count(Outcome::Deferred),
            count(Outcome::Failed),
            count(Outcome::Fresh),
            fill_wall.as_secs_f64() + started.elapsed().as_secs_f64()
        );
        if let Some(r) = report.results.iter().find(|r| r.outcome == Outcome::Failed) {
            eprintln!(
                "  e.g. {}: {}",
                r.secret_id,
                r.error.as_deref().unwrap_or("")
            );
        }
        fill_wall += started.elapsed();
        if done || fill_ticks >= 100 {
            break;
        }
    }
    let rate_limited = standin.stats().rate_limited - limited;
    let mut starts = Vec::new();
    for secret in secrets {
        let tags = sm.describe_secret().secret_id(secret).send().await?;
        if let Some(at) = tags
            .tags()
            .iter()
            .find(|t| t.key() == Some("iadvize:last-login-attempt"))
            .and_then(|t| t.value())
            .and_then(parse_rfc3339)
        {
            starts.push(at);
        }
    }
    let max_per_minute = max_in_window(&mut starts, window);

    // Steady state: one tick over N fresh secrets.
    let calls = fill.store().calls();
    let started = Instant::now();
    let report = fill
        .refresh_fleet(false, Instant::now() + Duration::from_secs(60))
        .await?;
    let fresh_wall = started.elapsed();
    let fresh_calls = fill.store().calls() - calls;
    let fresh = report
        .results
        .iter()
        .filter(|r| r.outcome == Outcome::Fresh)
        .count();
    if fresh != n {
        eprintln!("N = {n}: only {fresh} fresh secrets in the steady-state tick");
    }

    // One simulated day: 24 hourly ticks, a 24-hour token, the 4-hour refresh window.
    let day_tick = day_hour(n);
    let hour = day_tick.as_secs_f64();
    let day_window = Duration::from_secs_f64(60.0 * hour / 3600.0);
    standin.set_rate_window(day_window);
    standin.reset_rate_limits();
    standin.set_token_lifetime(day_tick * 24);
    let day = broker(
        sm,
        standin,
        Config::builder()
            .refresh_before_expiry(day_tick * 4)
            .min_login_interval(Duration::from_secs_f64(10.0 * hour / 3600.0))
            .build()
            .expect("a valid test configuration"),
        day_window,
    )?;
    // Every integration gets a token of the compressed lifetime first.
    day.refresh_fleet(true, Instant::now() + Duration::from_secs(60))
        .await?;
    let logins = standin.stats().login_requests;
    let limited = standin.stats().rate_limited;
    let start = Instant::now();
    for hour in 1..=24 {
        tokio::time::sleep_until(start + day_tick * hour).await;
        day.refresh_fleet(false, Instant::now() + Duration::from_secs(30))
            .await?;
    }
    let day_logins = standin.stats().login_requests - logins;
    standin.set_token_lifetime(Duration::from_secs(86400));
    Ok(Row {
        n,
        fill_ticks,
        fill_wall,
        max_per_minute,
        rate_limited,
        fresh_calls,
        fresh_wall,
        logins_per_lifetime: f64::from(day_logins) / n as f64,
        day_rate_limited: standin.stats().rate_limited - limited,
    })
}

/// The refill of `secrets`, all expired: a scheduled tick and the follow-ups it chains.
async fn refill(
    sm: &Client,
    standin: &Standin,
    n: usize,
    secrets: &[String],
) -> Fallible<RefillRow> {
    let window = Duration::from_secs(60) / FILL_COMPRESSION;
    standin.set_rate_window(window);
    standin.reset_rate_limits();
    standin.set_token_lifetime(Duration::from_secs(86400));
    let expired = || {
        let issued = OffsetDateTime::now_utc() - time::Duration::hours(25);
        TokenRecord::new(AccessToken::new("expired".to_owned()), issued, 86400).to_json()
    };
    for secret in secrets {
        sm.put_secret_value()
            .secret_id(secret)
            .secret_string(expired())
            .send()
            .await?;
    }
    let lambda = LambdaApi::start().await?;
    lambda.add_function("bench-fleet");
    let lambda_client = aws_sdk_lambda::Client::from_conf(
        aws_sdk_lambda::Config::builder()
            .behavior_version(aws_sdk_lambda::config::BehaviorVersion::latest())
            .endpoint_url(lambda.url())
            .region(aws_sdk_lambda::config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_lambda::config::Credentials::new(
                "testing", "testing", None, None, "bench",
            ))
            .build(),
    );
    let defaults = Config::default();
    let broker = broker(
        sm,
        standin,
        Config::builder()
            .min_login_interval(defaults.min_login_interval() / FILL_COMPRESSION)
            .max_follow_ups(15)
            .build()?,
        window,
    )?
    .with_follow_ups(Some(FollowUps::new(
        lambda_client,
        "bench-fleet".to_owned(),
        Duration::from_secs(2),
    )));
    let limited = standin.stats().rate_limited;
    let invocation = || {
        let starts = Duration::from_secs(120).saturating_sub(Config::default_budget());
        Instant::now() + starts / FILL_COMPRESSION + broker.rotation_budget() + FOLLOW_UP_RESERVE
    };
    let started = Instant::now();
    let mut event = json!({"detail-type": "Scheduled Event", "source": "aws.events", "detail": {}});
    let mut follow_ups = 0;
    loop {
        // A deferred expired token fails the invocation: expected during a refill.
        let _ = broker.handle(&event, invocation()).await;
        match lambda.next_event(Duration::from_millis(200)).await {
            Some(next) => {
                follow_ups += 1;
                eprintln!(
                    "N = {n}: refill follow-up {follow_ups} ({:.1}s)",
                    started.elapsed().as_secs_f64()
                );
                event = next.payload;
            }
            None => break,
        }
    }
    let wall = started.elapsed();
    lambda.shutdown().await;
    let report = broker
        .refresh_fleet(false, Instant::now() + Duration::from_secs(60))
        .await?;
    let all_accepted = report.results.iter().all(|r| r.outcome == Outcome::Fresh);
    let mut starts = Vec::new();
    for secret in secrets {
        let tags = sm.describe_secret().secret_id(secret).send().await?;
        if let Some(at) = tags
            .tags()
            .iter()
            .find(|t| t.key() == Some("iadvize:last-login-attempt"))
            .and_then(|t| t.value())
            .and_then(parse_rfc3339)
        {
            starts.push(at);
        }
    }
    Ok(RefillRow {
        n,
        wall,
        follow_ups,
        all_accepted,
        max_per_minute: max_in_window(&mut starts, window),
        rate_limited: standin.stats().rate_limited - limited,
    })
}

/// The most starts in any rolling window.
fn max_in_window(starts: &mut [OffsetDateTime], window: Duration) -> usize {
    starts.sort();
    let window = time::Duration::try_from(window).unwrap_or(time::Duration::MINUTE);
    (0..starts.len())
        .map(|i| {
            starts[i..]
                .iter()
                .take_while(|t| **t - starts[i] < window)
                .count()
        })
        .max()
        .unwrap_or(0)
}
