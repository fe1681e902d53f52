//! The iAdvize login API: `POST /oauth2/token` and `GET /_authenticated`, with bounded
//! retries: backoff on 429, 5xx and transport errors, `Retry-After` honoured, never past the
//! invocation's deadline, no retry on refused credentials (a retry would only be refused
//! again, and iAdvize counts failed logins against the user).

use std::time::{Duration, SystemTime};

use rand::Rng;
use reqwest::header::{HeaderMap, RETRY_AFTER};
use reqwest::{RequestBuilder, Response, StatusCode, Url};
use secrecy::ExposeSecret;
use serde_json::Value;
use time::OffsetDateTime;
use tokio::time::Instant;

pub use crate::bounds::MAX_RETRY_AFTER;
pub use crate::error::IadvizeError;
use crate::error::Retry;
use crate::throttle::Attempt;
use crate::token::fields::{self, Refused};
use crate::token::{AccessToken, Credentials, TokenRecord};

/// Longest token lifetime the broker believes (`expires_in` above this is absurd).
pub const MAX_EXPIRES_IN: u64 = 30 * 24 * 3600;

/// The most the broker reads of any iAdvize answer; a larger answer is a failure.
pub const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// RFC 6749 §5.2 error codes that mean the credentials themselves are refused.
const REFUSAL_CODES: [&str; 4] = [
    "invalid_grant",
    "invalid_client",
    "unauthorized_client",
    "access_denied",
];

fn is_refusal(code: &str) -> bool {
    REFUSAL_CODES.contains(&code)
}

/// Reads a body chunk by chunk, failing as soon as it passes [`MAX_ANSWER_BYTES`] (a
/// `Content-Length` is not trusted: the limit holds for chunked answers too).
async fn read_limited(mut response: Response, what: &'static str) -> Result<Vec<u8>, IadvizeError> {
    let mut body = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                if body.len() + chunk.len() > MAX_ANSWER_BYTES {
                    return Err(IadvizeError::TooLarge {
                        what,
                        limit: MAX_ANSWER_BYTES,
                    });
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(body),
            Err(e) => {
                return Err(IadvizeError::BadResponse(format!(
                    "the body could not be read ({})",
                    without_url(&e)
                )));
            }
        }
    }
}

/// How failed requests are retried.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Retries after the first attempt.
    pub max_retries: u32,
    /// First backoff delay; doubles on each retry (1 s, 2 s, 4 s, 8 s).
    pub base_delay: Duration,
    /// Time kept free before the deadline for writing results.
    pub safety_margin: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_retries: 4,
            base_delay: Duration::from_secs(1),
            safety_margin: Duration::from_secs(3),
        }
    }
}

/// A successful login.
#[derive(Debug)]
pub struct Login {
    /// The record to store.
    pub record: TokenRecord,
    /// HTTP requests it took (retries included).
    pub attempts: u32,
}

/// The result of asking `/_authenticated` about a token.
#[derive(Debug, PartialEq, Eq)]
pub enum Verification {
    /// `{"authenticated": true}`.
    Authenticated,
    /// iAdvize does not accept the token; the reason is its error code.
    Rejected(String),
}

/// A client of the iAdvize login API. Cheap to clone; build it once per process.
#[derive(Debug, Clone)]
pub struct IadvizeClient {
    http: reqwest::Client,
    base: Url,
    timeout: Duration,
    retry: RetryPolicy,
}

impl IadvizeClient {
    /// Builds the client: rustls, the given per-request timeout, no redirects to follow.
    pub fn new(base: Url, timeout: Duration, retry: RetryPolicy) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            .timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("iadvize-token-broker/", env!("CARGO_PKG_VERSION")))
            .build()?;
        let mut base = base;
        if !base.path().ends_with('/') {
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }
        Ok(IadvizeClient {
            http,
            base,
            timeout,
            retry,
        })
    }

    fn url(&self, path: &str) -> Url {
        // The base always ends with '/', so joining a relative path cannot fail.
        self.base.join(path).unwrap_or_else(|_| self.base.clone())
    }

    /// Logs in with the password grant. `issued_at` is taken just before the request that
    /// succeeded was sent.
    pub async fn login(
        &self,
        credentials: &Credentials,
        deadline: Instant,
    ) -> Result<Login, IadvizeError> {
        self.login_within(credentials, deadline, &mut Attempt::alone())
            .await
    }

    /// [`IadvizeClient::login`] as one of the broker's logins: after a 429 it keeps its
    /// backoff only while it leads the broker's pause (`attempt`, see [`crate::throttle`]),
    /// and it stops retrying while another login leads.
    pub async fn login_within(
        &self,
        credentials: &Credentials,
        deadline: Instant,
        attempt: &mut Attempt,
    ) -> Result<Login, IadvizeError> {
        let url = self.url("oauth2/token");
        let request = || {
            self.http.post(url.clone()).form(&[
                ("grant_type", "password"),
                ("username", credentials.username.expose_secret()),
                ("password", credentials.password.expose_secret()),
            ])
        };
        let sent = self.send(request, deadline, "login", Some(attempt)).await?;
        let status = sent.response.status();
        let body = read_limited(sent.response, "login").await?;
        match status.as_u16() {
            200 => {
                let record = parse_login(&body, sent.issued_at)?;
                Ok(Login {
                    record,
                    attempts: sent.attempts,
                })
            }
            status @ (400 | 401) if oauth_error(&body).as_deref().is_some_and(is_refusal) => {
                Err(IadvizeError::Refused {
                    status,
                    error: oauth_error(&body).unwrap_or_default(),
                })
            }
            // A 401/403 from a proxy or WAF, or an OAuth error that says nothing about the
            // credentials: transient, so nothing is blocked and the next tick tries again.
            status @ 400..=499 => Err(IadvizeError::NotRefused {
                status,
                error: oauth_error(&body),
            }),
            other => Err(IadvizeError::UnexpectedStatus {
                what: "login",
                status: other,
                error: oauth_error(&body),
            }),
        }
    }

    /// Asks `/_authenticated` whether iAdvize accepts the token.
    pub async fn verify(
        &self,
        token: &AccessToken,
        deadline: Instant,
    ) -> Result<Verification, IadvizeError> {
        let url = self.url("_authenticated");
        let request = || self.http.get(url.clone()).bearer_auth(token.expose());
        let sent = self
            .send(request, deadline, "token verification", None)
            .await
            .map_err(|e| match e {
                // The only value of this request taken from outside is the token.
                IadvizeError::Unsendable { what, reason } => IadvizeError::Unsendable {
                    what,
                    reason: format!(
                        "the token cannot be put in an Authorization header ({reason})"
                    ),
                },
                other => other,
            })?;
        let status = sent.response.status();
        let body = read_limited(sent.response, "token verification").await?;
        parse_verification(status.as_u16(), &body)
    }

    /// Sends a request, retrying what [`Retry`] calls transient (408, 429, 5xx, time-outs,
    /// connection failures) with bounded backoff that never runs past `deadline` minus the
    /// safety margin. A permanent failure before any answer (a request that cannot be built)
    /// fails at once; any other answer is returned for the caller to read.
    async fn send(
        &self,
        request: impl Fn() -> RequestBuilder,
        deadline: Instant,
        what: &'static str,
        mut attempt: Option<&mut Attempt>,
    ) -> Result<Sent, IadvizeError> {
        let give_up_at = deadline
            .checked_sub(self.retry.safety_margin)
            .unwrap_or(deadline);
        let mut attempts = 0;
        loop {
            let now = Instant::now();
            if now >= give_up_at {
                return Err(IadvizeError::NoTimeLeft { what });
            }
            attempts += 1;
            let issued_at = OffsetDateTime::now_utc();
            // A request's own timeout replaces the client's: keep the shorter one.
            let timeout = self.timeout.min(give_up_at - now);
            let result = request().timeout(timeout).send().await;
            let (last, retry_after, rate_limited) = match result {
                Ok(response) if response.status() == StatusCode::TOO_MANY_REQUESTS => {
                    let wait = retry_after(response.headers());
                    ("HTTP 429".to_owned(), wait, true)
                }
                Ok(response)
                    if !response.status().is_success()
                        && Retry::of_status(response.status().as_u16()) == Retry::Transient =>
                {
                    let wait = retry_after(response.headers());
                    (format!("HTTP {}", response.status()), wait, false)
                }
                Ok(response) => {
                    tracing::info!(
                        what,
                        attempt = attempts,
                        status = response.status().as_u16(),
                        "iAdvize answered"
                    );
                    return Ok(Sent {
                        response,
                        attempts,
                        issued_at,
                    });
                }
                Err(e) if Retry::of_http(&e) == Retry::Permanent => {
                    tracing::warn!(what, attempt = attempts, error = %without_url(&e), "iAdvize request cannot be sent; not retried");
                    return Err(IadvizeError::Unsendable {
                        what,
                        reason: without_url(&e),
                    });
                }
                Err(e) => (without_url(&e), None, false),
            };
            tracing::warn!(what, attempt = attempts, error = %last, "iAdvize request failed");

            let give_up = |why: &'static str| {
                if rate_limited {
                    IadvizeError::RateLimited { attempts, why }
                } else {
                    IadvizeError::Unavailable {
                        what,
                        attempts,
                        why,
                        last: last.clone(),
                    }
                }
            };
            // A login that is not the one keeping its backoff after a 429 stops here: its
            // retries could only lengthen a block of the whole IP.
            let held = match attempt.as_deref_mut() {
                Some(attempt) if rate_limited => !attempt.rate_limited(retry_after),
                Some(attempt) => !attempt.may_retry(),
                None => false,
            };
            if held {
                return Err(give_up(
                    "because another login waits out iAdvize's 429 (the broker pauses its logins)",
                ));
            }
            if attempts > self.retry.max_retries {
                return Err(give_up("after the last allowed retry"));
            }
            // Retry-After may lengthen a wait, never shorten it below the backoff step.
            let backoff = self.backoff(attempts);
            let wait = retry_after.map_or(backoff, |asked| asked.max(backoff));
            if Instant::now() + wait >= give_up_at {
                return Err(give_up(
                    "because the next retry would pass the invocation deadline",
                ));
            }
            tracing::info!(
                what,
                attempt = attempts,
                wait_ms = wait.as_millis() as u64,
                "retrying iAdvize request"
            );
            tokio::time::sleep(wait).await;
        }
    }

    /// Exponential backoff with up to 25 % jitter: 1 s, 2 s, 4 s, 8 s, …
    fn backoff(&self, attempt: u32) -> Duration {
        let exp = self.retry.base_delay * 2u32.saturating_pow(attempt.saturating_sub(1));
        exp.mul_f64(1.0 + rand::rng().random_range(0.0..0.25))
    }
}

struct Sent {
    response: Response,
    attempts: u32,
    issued_at: OffsetDateTime,
}

/// `Retry-After` of a response, if present and sane (see [`parse_retry_after`]).
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    parse_retry_after(headers.get(RETRY_AFTER)?.to_str().ok()?, SystemTime::now())
}

/// `Retry-After` as delta-seconds or an HTTP date, relative to `now` (a date in the past
/// means zero). Anything else, or a wait longer than [`MAX_RETRY_AFTER`], counts as absent.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    let wait = if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        Duration::from_secs(value.parse::<u64>().ok()?)
    } else {
        let at = httpdate::parse_http_date(value).ok()?;
        at.duration_since(now).unwrap_or(Duration::ZERO)
    };
    (wait <= MAX_RETRY_AFTER).then_some(wait)
}

/// The `error` field of an RFC 6749 §5.2 error body, if any: a string, surrounding whitespace
/// ignored, in any case (the codes are lower case; `INVALID_GRANT` has one meaning). Anything
/// but a short code of letters, digits and `_` (an array, an object, a sentence that may quote
/// the username) counts as no code, and is never echoed.
fn oauth_error(body: &[u8]) -> Option<String> {
    let json: Value = serde_json::from_slice(body).ok()?;
    let code = json.get("error")?.as_str()?.trim().to_ascii_lowercase();
    (!code.is_empty()
        && code.len() <= 64
        && code.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'))
    .then_some(code)
}

/// Parses a 200 login answer into the record to store. Lenient where a variation has one
/// clear meaning (see [`fields`]): `expires_in` as a number or a numeric string (`86400`,
/// `86400.0`, `" 86400 "`; a fraction is rounded down); `token_type` absent, `null`, blank or
/// Bearer in any case with surrounding whitespace; surrounding whitespace around the token.
/// Anything else is refused with what was received (its JSON type and size), never the body.
pub fn parse_login(body: &[u8], issued_at: OffsetDateTime) -> Result<TokenRecord, IadvizeError> {
    let bad = |m: String| IadvizeError::BadResponse(m);
    let json: Value = serde_json::from_slice(body)
        .map_err(|_| bad(format!("the body is not JSON ({} bytes)", body.len())))?;
    let Value::Object(answer) = &json else {
        return Err(bad(format!(
            "the body is {}, expected a JSON object",
            fields::shape(&json)
        )));
    };
    let token = fields::bearer_token(answer.get("access_token"))
        .map_err(|e| bad(format!("access_token {e}")))?;
    fields::token_type(answer.get("token_type")).map_err(|e| bad(format!("token_type {e}")))?;
    let expires_in = answer
        .get("expires_in")
        .map_or(Err(Refused::Missing), fields::seconds)
        .map_err(|e| bad(format!("expires_in {e}")))?;
    if expires_in == 0 || expires_in > MAX_EXPIRES_IN {
        return Err(bad(format!(
            "expires_in is {expires_in} seconds, outside 1..={MAX_EXPIRES_IN}"
        )));
    }
    Ok(TokenRecord::new(token, issued_at, expires_in))
}

/// `authenticated` as a boolean: `true`/`false`, or the strings `"true"`/`"false"` in any case
/// with surrounding whitespace (some servers serialise booleans as text). Anything else (a
/// number, `null`, another string) has no one meaning: what it is, in words.
fn authenticated(value: &Value) -> Result<bool, String> {
    match value {
        Value::Bool(b) => Ok(*b),
        Value::String(s) if s.trim().eq_ignore_ascii_case("true") => Ok(true),
        Value::String(s) if s.trim().eq_ignore_ascii_case("false") => Ok(false),
        other => Err(format!(
            "\"authenticated\" is {}, expected true or false",
            fields::shape(other)
        )),
    }
}

/// Classifies an answer of `/_authenticated`: `{"authenticated": true}` accepts; `false`, a
/// 401/403/400, or an RFC 6749 `invalid_token` error body rejects; anything else is an error
/// that says what was received (its JSON type and size), never the body.
pub fn parse_verification(status: u16, body: &[u8]) -> Result<Verification, IadvizeError> {
    let json: Option<Value> = serde_json::from_slice(body).ok();
    match status {
        200 => {
            let answer = json.as_ref().and_then(|j| j.get("authenticated"));
            match answer.map(authenticated) {
                Some(Ok(true)) => Ok(Verification::Authenticated),
                Some(Ok(false)) => Ok(Verification::Rejected(
                    oauth_error(body).unwrap_or_else(|| "authenticated: false".to_owned()),
                )),
                // The error body iAdvize documents for a refused token, which some servers send
                // with a 200.
                _ if oauth_error(body).as_deref() == Some("invalid_token") => {
                    Ok(Verification::Rejected("invalid_token".to_owned()))
                }
                Some(Err(what)) => Err(IadvizeError::UnexpectedStatus {
                    what: "token verification",
                    status: 200,
                    error: Some(what),
                }),
                None => Err(IadvizeError::UnexpectedStatus {
                    what: "token verification",
                    status: 200,
                    error: Some(match &json {
                        Some(json) => format!(
                            "the answer is {}, without \"authenticated\"",
                            fields::shape(json)
                        ),
                        None => format!("the answer is not JSON ({} bytes)", body.len()),
                    }),
                }),
            }
        }
        400 | 401 | 403 => Ok(Verification::Rejected(
            oauth_error(body).unwrap_or_else(|| format!("HTTP {status}")),
        )),
        other => Err(IadvizeError::UnexpectedStatus {
            what: "token verification",
            status: other,
            error: oauth_error(body),
        }),
    }
}

/// A reqwest error without its URL (the URL holds no secret, but keeps messages short).
fn without_url(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "connection failed"
    } else if e.is_body() || e.is_decode() {
        "the response body could not be read"
    } else {
        "request failed"
    };
    let mut source = std::error::Error::source(e);
    let mut detail = String::new();
    while let Some(s) = source {
        detail = s.to_string();
        source = s.source();
    }
    if detail.is_empty() {
        kind.to_owned()
    } else {
        format!("{kind}: {detail}")
    }
}

impl IadvizeClient {
    /// The time kept free after iAdvize's calls for the Secrets Manager writes.
    pub fn safety_margin(&self) -> Duration {
        self.retry.safety_margin
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, HeaderValue::from_static("3"));
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(3)));
        let later = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(30));
        headers.insert(RETRY_AFTER, HeaderValue::from_str(&later).unwrap());
        let wait = retry_after(&headers).unwrap();
        assert!(
            wait > Duration::from_secs(27) && wait <= Duration::from_secs(30),
            "{wait:?}"
        );
        headers.insert(
            RETRY_AFTER,
            HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"),
        );
        assert_eq!(retry_after(&headers), Some(Duration::ZERO));
        headers.insert(RETRY_AFTER, HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&headers), None);
    }

    #[test]
    fn login_answers_are_validated() {
        let at = OffsetDateTime::now_utc();
        let ok = parse_login(br#"{"access_token":"t","expires_in":86400,"token_type":"bearer","refresh_token":"none","x":1}"#, at).unwrap();
        assert_eq!(ok.expires_in, 86400);
        for body in [
            &br#"{"access_token":"t""#[..],
            br#"{"expires_in":86400}"#,
            br#"{"access_token":"","expires_in":86400}"#,
            br#"{"access_token":"t","expires_in":0}"#,
            br#"{"access_token":"t","expires_in":-5}"#,
            br#"{"access_token":"t","expires_in":2592001}"#,
            br#"{"access_token":"t"}"#,
            br#"{"access_token":"t","expires_in":60,"token_type":"mac"}"#,
        ] {
            assert!(
                parse_login(body, at).is_err(),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn backoff_doubles_with_bounded_jitter() {
        let client = IadvizeClient::new(
            Url::parse("http://127.0.0.1:1").unwrap(),
            Duration::from_secs(1),
            RetryPolicy::default(),
        )
        .unwrap();
        for (attempt, base) in [(1, 1), (2, 2), (3, 4), (4, 8)] {
            let d = client.backoff(attempt);
            assert!(d >= Duration::from_secs(base) && d < Duration::from_secs(base).mul_f64(1.25));
        }
    }

    #[test]
    fn an_invalid_token_body_is_a_rejection_whatever_the_status() {
        let body = br#"{"error":"invalid_token","error_description":"The access token expired"}"#;
        for status in [200, 401] {
            assert_eq!(
                parse_verification(status, body).unwrap(),
                Verification::Rejected("invalid_token".to_owned())
            );
        }
        assert_eq!(
            parse_verification(200, br#"{"authenticated":true}"#).unwrap(),
            Verification::Authenticated
        );
        assert!(parse_verification(200, b"{}").is_err());
        assert!(parse_verification(500, b"").is_err());
    }

    #[test]
    fn retry_after_that_is_not_sane_counts_as_absent() {
        let now = SystemTime::now();
        for value in [
            "99999999999999999999",
            "-1",
            "1.5",
            "",
            "86401",
            "+3",
            "0x10",
        ] {
            assert_eq!(parse_retry_after(value, now), None, "{value:?}");
        }
        assert_eq!(parse_retry_after(" 0 ", now), Some(Duration::ZERO));
        assert_eq!(
            parse_retry_after("86400", now),
            Some(Duration::from_secs(86400))
        );
    }

    #[test]
    fn oauth_error_codes_are_sanitised() {
        assert_eq!(
            oauth_error(br#"{"error":"invalid_grant"}"#).as_deref(),
            Some("invalid_grant")
        );
        assert_eq!(oauth_error(br#"{"error":"bad password: hunter2"}"#), None);
        // Case and surrounding whitespace do not change what a code means.
        assert_eq!(
            oauth_error(br#"{"error":" INVALID_GRANT\n"}"#).as_deref(),
            Some("invalid_grant")
        );
        assert_eq!(oauth_error(br#"{"error":["invalid_grant"]}"#), None);
        assert_eq!(oauth_error(br#"{"error":""}"#), None);
        assert_eq!(oauth_error(b"<html>"), None);
    }
}
