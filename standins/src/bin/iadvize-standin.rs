//! Runs the local iAdvize stand-in until SIGTERM / SIGINT.
//!
//! ```text
//! iadvize-standin [--port N] [--bind ADDR] [--user NAME:PASSWORD]... [--users-file FILE]
//!                 [--token-lifetime SECONDS] [--per-user-limit N] [--per-ip-limit N]
//! ```
//!
//! Prints one line, `listening on http://HOST:PORT`, once it accepts connections.
//! Passwords and tokens are never printed.

use std::collections::BTreeMap;
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::ExitCode;
use std::time::Duration;

use standins::{Standin, StandinConfig};

const USAGE: &str = "\
usage: iadvize-standin [options]

  --port N                  port to listen on (default 0: a free port)
  --bind ADDR               address to bind (default 127.0.0.1)
  --user NAME:PASSWORD      a user that may log in (repeatable)
  --users-file FILE         a JSON object {\"name\": \"password\", ...} of users
  --token-lifetime SECONDS  lifetime of the tokens issued (default 86400)
  --per-user-limit N        login requests per username per minute (default 10)
  --per-ip-limit N          login requests per client IP per minute (default 100)
  -h, --help                this help";

/// The parsed command line.
struct Options {
    addr: SocketAddr,
    config: StandinConfig,
}

fn parse_number<T: std::str::FromStr>(flag: &str, value: &str) -> Result<T, String> {
    value
        .parse()
        .map_err(|_| format!("{flag}: expected a non-negative number, got {value:?}"))
}

fn parse_args(args: impl IntoIterator<Item = String>) -> Result<Option<Options>, String> {
    let mut port: u16 = 0;
    let mut bind = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let mut config = StandinConfig::default();
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        if arg == "-h" || arg == "--help" {
            return Ok(None);
        }
        let (flag, inline) = match arg.split_once('=') {
            Some((flag, value)) if flag.starts_with("--") => {
                (flag.to_owned(), Some(value.to_owned()))
            }
            _ => (arg.clone(), None),
        };
        let mut value = || {
            inline
                .clone()
                .or_else(|| args.next())
                .ok_or_else(|| format!("{flag} needs a value"))
        };
        match flag.as_str() {
            "--port" => port = parse_number(&flag, &value()?)?,
            "--bind" => {
                let text = value()?;
                bind = text
                    .parse()
                    .map_err(|_| format!("--bind: not an IP address: {text:?}"))?;
            }
            "--user" => {
                let text = value()?;
                // Never echo the value: it holds a password.
                let (name, password) = text
                    .split_once(':')
                    .filter(|(name, _)| !name.is_empty())
                    .ok_or("--user: expected NAME:PASSWORD")?;
                config = config.with_user(name, password);
            }
            "--users-file" => {
                let path = value()?;
                let text = std::fs::read_to_string(&path)
                    .map_err(|error| format!("--users-file: cannot read {path}: {error}"))?;
                let users: BTreeMap<String, String> =
                    serde_json::from_str(&text).map_err(|_| {
                        format!(
                            "--users-file: {path} is not a JSON object of name -> password strings"
                        )
                    })?;
                for (name, password) in &users {
                    config = config.with_user(name, password);
                }
            }
            "--token-lifetime" => {
                config.token_lifetime = Duration::from_secs(parse_number(&flag, &value()?)?);
            }
            "--per-user-limit" => config.per_user_limit = parse_number(&flag, &value()?)?,
            "--per-ip-limit" => config.per_ip_limit = parse_number(&flag, &value()?)?,
            _ => return Err(format!("unknown argument {flag:?}")),
        }
    }
    Ok(Some(Options {
        addr: SocketAddr::new(bind, port),
        config,
    }))
}

/// Resolves on SIGTERM or SIGINT (ctrl-c).
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut terminate) => {
                tokio::select! {
                    _ = terminate.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let options = match parse_args(std::env::args().skip(1)) {
        Ok(Some(options)) => options,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(message) => {
            eprintln!("iadvize-standin: {message}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let standin = match Standin::start_on(options.config, options.addr).await {
        Ok(standin) => standin,
        Err(error) => {
            eprintln!(
                "iadvize-standin: cannot listen on {}: {error}",
                options.addr
            );
            return ExitCode::FAILURE;
        }
    };
    let mut stdout = std::io::stdout().lock();
    if writeln!(stdout, "listening on {}", standin.url())
        .and_then(|()| stdout.flush())
        .is_err()
    {
        // Whoever started us cannot learn the port: no point in running.
        return ExitCode::FAILURE;
    }
    drop(stdout);

    shutdown_signal().await;
    standin.shutdown().await;
    ExitCode::SUCCESS
}
