//! What every command prints: text for people, or one JSON document on stdout with `--json`.
//!
//! The contract with scripts: with `--json`, stdout carries exactly one JSON document, whether
//! the command succeeded or not (a failure is `{"error": "...", "exit_code": N}`), and the exit
//! code is the same as without it. Messages for people (errors, progress) go to stderr either
//! way. A new command prints its report with [`Output::report`] and its failures with
//! [`Output::fail`].

use serde::Serialize;

/// Everything worked (`status`: every token valid, no credentials blocked; `check`: healthy).
pub const EXIT_OK: u8 = 0;
/// The operation failed (Secrets Manager or iAdvize unreachable, a rotation failed, discovery
/// failed, …; `check`: something to fix).
pub const EXIT_FAILED: u8 = 1;
/// Bad usage or configuration (clap's own usage errors are 2 as well).
pub const EXIT_USAGE: u8 = 2;
/// No usable token: the secret is missing, empty, malformed or expired, or iAdvize refuses it.
pub const EXIT_NO_TOKEN: u8 = 3;
/// iAdvize refused the credentials; the broker will not log in until they change.
pub const EXIT_BLOCKED: u8 = 4;

/// The exit codes, as `--help` shows them (and the README, docs/cli.md).
pub const EXIT_CODES: &str = "\
Exit codes:
  0  success (status: every token valid and no credentials blocked; check: nothing to fix)
  1  the operation failed (Secrets Manager or iAdvize unreachable, a rotation failed, the
     discovery of tagged secrets failed, ...); check: something to fix or not reachable
  2  usage or configuration error (unknown option, no secret to work on, a bad IADVIZE_* value)
  3  no usable token: secret missing, not filled yet, malformed or expired, or iAdvize refuses it
  4  iAdvize refused the credentials: put a corrected value in the credentials secret, then `refresh`

With --json, stdout is one JSON document, also on failure ({\"error\": ..., \"exit_code\": ...}).

AWS settings come from the usual chain (AWS_PROFILE, AWS_REGION, AWS_ENDPOINT_URL, ...);
status, refresh, verify and resume also read the broker's IADVIZE_* variables
(IADVIZE_TOKEN_SECRET_IDS, IADVIZE_CREDENTIALS_SECRET_ID, IADVIZE_API_URL, ...). Only `get`
ever prints a token. More: docs/cli.md.";

/// How a command prints: text or JSON.
#[derive(Debug, Clone, Copy)]
pub struct Output {
    /// `--json`.
    pub json: bool,
}

impl Output {
    /// With `--json`, prints `value` as the command's one JSON document; otherwise runs `text`,
    /// which prints the same for people.
    pub fn report<T: Serialize>(&self, value: &T, text: impl FnOnce(&T)) {
        if self.json {
            print_json(value);
        } else {
            text(value);
        }
    }

    /// A failure that ends the command: `error: …` on stderr and, with `--json`, the error
    /// document on stdout. Returns `code`, the exit code.
    pub fn fail(&self, code: u8, message: impl std::fmt::Display) -> u8 {
        let message = message.to_string();
        eprintln!("error: {message}");
        if self.json {
            print_json(&ErrorDocument {
                error: &message,
                exit_code: code,
            });
        }
        code
    }
}

/// The JSON document of a failed command.
#[derive(Serialize)]
struct ErrorDocument<'a> {
    error: &'a str,
    exit_code: u8,
}

/// `println!` that survives a closed stdout (see [`print_text`]).
macro_rules! say {
    () => {
        $crate::output::print_text("\n")
    };
    ($($arg:tt)*) => {
        $crate::output::print_text(&format!("{}\n", format_args!($($arg)*)))
    };
}

/// How to put the iAdvize API user's credentials in `secret_id` as the README does: the
/// password typed at a prompt and passed on standard input, never written to a file.
pub fn put_credentials(secret_id: &str) -> String {
    format!(
        "put the iAdvize API user's credentials, the password typed and passed on standard input (README, Deploy): read -r -p 'iAdvize API username: ' IADVIZE_USERNAME; read -r -s -p 'iAdvize API password: ' IADVIZE_PASSWORD; echo; export IADVIZE_USERNAME IADVIZE_PASSWORD; jq -n '{{username: env.IADVIZE_USERNAME, password: env.IADVIZE_PASSWORD}}' | aws secretsmanager put-secret-value --secret-id {secret_id} --secret-string file:///dev/stdin; unset IADVIZE_PASSWORD"
    )
}

/// Pretty JSON on stdout.
pub fn print_json(value: &impl Serialize) {
    match serde_json::to_string_pretty(value) {
        Ok(text) => say!("{text}"),
        Err(e) => eprintln!("error: the report could not be written as JSON: {e}"),
    }
}

/// Writes `text` to stdout as it is. A reader that stopped reading (`iadvize-token check |
/// head -1`: a broken pipe) ends the output quietly, where `print!` would panic; the command
/// still ends with its own exit code. Another write error is said on stderr.
pub fn print_text(text: &str) {
    use std::io::Write as _;
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
        Err(e) => eprintln!("error: the output could not be written: {e}"),
    }
}

/// `get --json`: the token record of AWSCURRENT, as validated (the token included: `get` is
/// the one command that prints it).
#[derive(Debug, Serialize)]
pub struct TokenDocument {
    /// The token secret, as given.
    pub secret_id: String,
    /// The bearer token.
    pub access_token: String,
    /// `Bearer`.
    pub token_type: String,
    /// When it was obtained (RFC 3339).
    pub issued_at: String,
    /// When it expires (RFC 3339).
    pub expires_at: String,
    /// Seconds left now (0 once expired).
    pub remaining_seconds: u64,
}

impl TokenDocument {
    /// The document of `record`, read from `secret_id`.
    pub fn of(secret_id: &str, record: &iadvize_token_broker::TokenRecord) -> Self {
        use iadvize_token_broker::token::rfc3339;
        let now = time::OffsetDateTime::now_utc();
        TokenDocument {
            secret_id: secret_id.to_owned(),
            access_token: record.access_token.expose().to_owned(),
            token_type: record.token_type.clone(),
            issued_at: rfc3339(record.issued_at),
            expires_at: rfc3339(record.expires_at),
            remaining_seconds: record.remaining(now).as_secs(),
        }
    }
}

/// `resume --json`: whether a rotation was finished.
#[derive(Debug, Serialize)]
pub struct ResumeDocument {
    /// The token secret, as given.
    pub secret_id: String,
    /// `false`: there was no unfinished rotation.
    pub resumed: bool,
    /// The version the rotation made AWSCURRENT.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version_id: Option<String>,
    /// When its token expires (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
}

impl ResumeDocument {
    /// No unfinished rotation.
    pub fn nothing(secret_id: &str) -> Self {
        ResumeDocument {
            secret_id: secret_id.to_owned(),
            resumed: false,
            version_id: None,
            expires_at: None,
        }
    }

    /// The rotation of `version_id` finished; its token expires at `expires_at`.
    pub fn finished(secret_id: &str, version_id: &str, expires_at: &str) -> Self {
        ResumeDocument {
            secret_id: secret_id.to_owned(),
            resumed: true,
            version_id: Some(version_id.to_owned()),
            expires_at: Some(expires_at.to_owned()),
        }
    }
}
