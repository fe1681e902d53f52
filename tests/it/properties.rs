//! Properties of every parser of outside input: Lambda events, token records,
//! credentials, iAdvize's login and verification answers, `Retry-After`, and the
//! configuration values. Whatever arrives, a parser returns a typed error, never panics, and
//! never echoes a secret; what it accepts round-trips where a round trip exists.
//! Case counts are modest so the file runs in seconds.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use iadvize_token_broker::Error;
use iadvize_token_broker::config::{parse_api_url, parse_duration};
use iadvize_token_broker::error::{ECHO_MAX_BYTES, echo};
use iadvize_token_broker::events::{Event, Step};
use iadvize_token_broker::iadvize::{
    IadvizeError, MAX_EXPIRES_IN, MAX_RETRY_AFTER, Verification, parse_login, parse_retry_after,
    parse_verification,
};
use iadvize_token_broker::token::{AccessToken, Credentials, TokenRecord};
use proptest::prelude::*;
use serde_json::{Map, Value, json};
use time::OffsetDateTime;

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        // Failures are reported with their minimal input; no persistence files in the tree.
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Any JSON value, a few levels deep.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|f| json!(f)),
        ".{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::btree_map(".{0,8}", inner, 0..5)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// An object made of some of `keys`, each with any value (or a plausible one).
fn object_with(
    keys: &'static [&'static str],
    plausible: Vec<Value>,
) -> impl Strategy<Value = Value> {
    let value = prop_oneof![any_json(), prop::sample::select(plausible)];
    prop::collection::vec((prop::sample::select(keys), value), 0..keys.len() + 2).prop_map(
        |pairs| {
            let mut map = Map::new();
            for (key, value) in pairs {
                map.insert(key.to_owned(), value);
            }
            Value::Object(map)
        },
    )
}

/// A secret-looking string: long and random enough never to occur by chance in a message.
fn secret() -> impl Strategy<Value = String> {
    "[A-Za-z0-9+/]{24,40}"
}

/// An access token as a server might send it: plain, with surrounding whitespace (which has
/// one meaning), or with a character no `Authorization` header can carry (which has none).
fn token_variation() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => secret(),
        1 => secret().prop_map(|t| format!(" {t}\n")),
        1 => secret().prop_map(|t| format!("{t}\u{1}")),
        1 => secret().prop_map(|t| format!("{t} {t}")),
        1 => secret().prop_map(|t| format!("{t}é")),
        1 => Just("  ".to_owned()),
    ]
}

/// The token a value means: a string, surrounding whitespace aside, of visible ASCII.
fn usable_token(value: &Value) -> Option<String> {
    let token = value
        .as_str()?
        .trim_matches(|c: char| c.is_ascii_whitespace());
    (!token.is_empty() && token.bytes().all(|b| b.is_ascii_graphic())).then(|| token.to_owned())
}

/// Whether a `token_type` means Bearer: absent, null, blank, or Bearer in any case and spacing.
fn bearer_meant(value: Option<&Value>) -> bool {
    match value {
        None | Some(Value::Null) => true,
        Some(Value::String(s)) => s.trim().is_empty() || s.trim().eq_ignore_ascii_case("bearer"),
        Some(_) => false,
    }
}

/// The seconds a value means: a JSON number, or a string holding one in JSON's syntax, not
/// negative, a fraction rounded down.
fn seconds_meant(value: &Value) -> Option<u64> {
    let number: serde_json::Number = match value {
        Value::Number(n) => n.clone(),
        Value::String(s) => serde_json::from_str(s.trim()).ok()?,
        _ => return None,
    };
    match number.as_u64() {
        Some(n) => Some(n),
        None => {
            let f = number.as_f64()?;
            (f >= 0.0 && f < u64::MAX as f64).then(|| f.floor() as u64)
        }
    }
}

/// Times the broker meets: now ± 50 years, to the second.
fn plausible_time() -> impl Strategy<Value = OffsetDateTime> {
    (-50 * 365 * 86_400i64..50 * 365 * 86_400).prop_map(|offset| {
        let now = OffsetDateTime::now_utc().unix_timestamp();
        OffsetDateTime::from_unix_timestamp(now + offset).expect("in range")
    })
}

const EVENT_KEYS: &[&str] = &[
    "Step",
    "SecretId",
    "ClientRequestToken",
    "RotationToken",
    "action",
    "force",
    "secret_ids",
    "detail-type",
    "source",
    "Records",
];

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn any_json_event_is_classified_or_refused_with_a_typed_error(event in any_json()) {
        match Event::parse(&event) {
            Ok(_) => {}
            Err(Error::InvalidEvent(message)) => prop_assert!(!message.is_empty()),
            Err(other) => prop_assert!(false, "not an InvalidEvent: {other:?}"),
        }
    }

    #[test]
    fn an_event_shaped_object_never_echoes_its_rotation_token(
        event in object_with(EVENT_KEYS, vec![
            json!("createSecret"), json!("finishSecret"), json!("refresh"), json!("status"),
            json!("Scheduled Event"), json!("aws.events"), json!(["a"]), json!([]), json!(true),
            json!("arn:aws:secretsmanager:us-east-1:1:secret:x"),
        ]),
        rotation_token in secret(),
    ) {
        let mut event = event;
        if let Value::Object(map) = &mut event {
            map.insert("RotationToken".into(), json!(rotation_token));
        }
        match Event::parse(&event) {
            Ok(Event::Step(step)) => {
                let debug = format!("{:?}", step);
                prop_assert!(!debug.contains(&rotation_token));
            }
            Ok(_) => {}
            Err(Error::InvalidEvent(message)) => {
                prop_assert!(!message.contains(&rotation_token), "{message}");
            }
            Err(other) => prop_assert!(false, "not an InvalidEvent: {other:?}"),
        }
    }

    #[test]
    fn a_well_formed_step_event_parses_to_what_it_says(
        step in prop::sample::select(vec![
            Step::CreateSecret, Step::SetSecret, Step::TestSecret, Step::FinishSecret,
        ]),
        secret_id in "[A-Za-z0-9:/_+=.@-]{1,80}",
        token in "[a-f0-9-]{1,40}",
        rotation_token in prop::option::of(secret()),
    ) {
        let mut event = json!({
            "Step": step.as_str(), "SecretId": secret_id, "ClientRequestToken": token,
        });
        if let Some(rt) = &rotation_token {
            event["RotationToken"] = json!(rt);
        }
        match Event::parse(&event) {
            Ok(Event::Step(parsed)) => {
                prop_assert_eq!(parsed.step, step);
                prop_assert_eq!(parsed.secret_id, secret_id);
                prop_assert_eq!(parsed.token, token);
                prop_assert_eq!(parsed.rotation_token.is_some(), rotation_token.is_some());
            }
            other => prop_assert!(false, "{other:?}"),
        }
    }

    #[test]
    fn any_string_is_a_token_record_or_a_record_error(value in ".{0,200}") {
        let _ = TokenRecord::parse(&value);
    }

    #[test]
    fn a_record_shaped_value_never_echoes_its_token(
        value in object_with(
            &["access_token", "token_type", "issued_at", "expires_at", "expires_in", "extra"],
            vec![
                json!("Bearer"), json!("bearer"), json!("2026-11-26T11:00:00Z"),
                json!("2026-11-27T11:00:00Z"), json!("9999-12-31T23:59:59Z"),
                json!("0000-01-01T00:00:00Z"), json!(86400), json!(-1), json!(u64::MAX),
            ],
        ),
        token in secret(),
    ) {
        let mut value = value;
        if let Value::Object(map) = &mut value {
            map.insert("access_token".into(), json!(token));
        }
        match TokenRecord::parse(&value.to_string()) {
            Ok(record) => {
                prop_assert_eq!(record.access_token.expose(), token.as_str());
                prop_assert!(record.expires_at > record.issued_at);
                let debug = format!("{:?}", record);
                prop_assert!(!debug.contains(&token));
                // Whatever the dates, the clock arithmetic the tick does cannot panic.
                let now = OffsetDateTime::now_utc();
                let _ = (record.remaining(now), record.is_expired(now));
            }
            Err(e) => prop_assert!(!e.to_string().contains(&token), "{e}"),
        }
    }

    #[test]
    fn a_token_record_round_trips_through_its_json(
        // Visible ASCII: what an Authorization header can carry (RFC 6750 b64token is a subset).
        token in "[!-~]{1,64}",
        issued_at in plausible_time(),
        expires_in in 1..=MAX_EXPIRES_IN,
    ) {
        let record = TokenRecord::new(AccessToken::new(token.clone()), issued_at, expires_in);
        let parsed = TokenRecord::parse(&record.to_json());
        prop_assert!(parsed.is_ok(), "{:?}", parsed.err());
        let parsed = parsed.expect("checked");
        prop_assert_eq!(parsed.access_token.expose(), token.as_str());
        prop_assert_eq!(parsed.issued_at, record.issued_at);
        prop_assert_eq!(parsed.expires_at, record.expires_at);
        prop_assert_eq!(parsed.expires_in, expires_in);
        prop_assert_eq!(parsed.to_json(), record.to_json());
    }

    #[test]
    fn credentials_parse_or_name_the_field_never_the_value(
        value in object_with(&["username", "password", "extra"], vec![json!(""), json!(null)]),
        username in secret(),
        password in secret(),
        with_username in any::<bool>(),
        with_password in any::<bool>(),
    ) {
        let mut value = value;
        if let Value::Object(map) = &mut value {
            if with_username { map.insert("username".into(), json!(username)); }
            if with_password { map.insert("password".into(), json!(password)); }
        }
        match Credentials::parse(&value.to_string(), "v1".into()) {
            Ok(credentials) => {
                prop_assert!(value["username"].as_str().is_some_and(|u| !u.is_empty()));
                prop_assert!(value["password"].as_str().is_some_and(|p| !p.is_empty()));
                let debug = format!("{:?}", credentials);
                prop_assert!(!debug.contains(&username) && !debug.contains(&password));
                prop_assert_eq!(credentials.version_id, "v1");
            }
            Err(message) => {
                prop_assert!(!message.contains(&username), "{message}");
                prop_assert!(!message.contains(&password), "{message}");
                prop_assert!(message.contains("JSON") || message.contains("username") || message.contains("password"), "{message}");
            }
        }
    }

    #[test]
    fn any_string_is_credentials_or_an_error(value in ".{0,120}") {
        let _ = Credentials::parse(&value, "v".into());
    }

    #[test]
    fn any_login_answer_is_a_record_or_a_bad_response(body in prop::collection::vec(any::<u8>(), 0..300)) {
        match parse_login(&body, OffsetDateTime::now_utc()) {
            Ok(record) => prop_assert!(record.expires_in >= 1 && record.expires_in <= MAX_EXPIRES_IN),
            Err(IadvizeError::BadResponse(_)) => {}
            Err(other) => prop_assert!(false, "not a BadResponse: {other:?}"),
        }
    }

    #[test]
    fn a_login_answer_is_accepted_exactly_when_usable_and_never_echoes_the_token(
        answer in object_with(
            &["access_token", "token_type", "expires_in", "refresh_token"],
            vec![
                json!("Bearer"), json!("bearer"), json!("BEARER"), json!("Bearer "), json!(" bearer\t"),
                json!(""), json!(null), json!("mac"), json!("none"),
                json!(86400), json!("86400"), json!(0), json!(-5), json!(86400.5), json!(86400.0),
                json!("86400.0"), json!(" 86400 "), json!("86400.5"), json!("8.64e4"), json!("-1"),
                json!("0x10"), json!("+60"), json!("1e400"), json!(true), json!([60]),
                json!(MAX_EXPIRES_IN), json!(MAX_EXPIRES_IN + 1), json!(1e300), json!(" 60 "),
            ],
        ),
        token in prop::option::of(token_variation()),
        issued_at in plausible_time(),
    ) {
        let mut answer = answer;
        if let (Value::Object(map), Some(token)) = (&mut answer, &token) {
            map.insert("access_token".into(), json!(token));
        }
        let expected_token = answer.get("access_token").and_then(usable_token);
        let expires_in = answer.get("expires_in").and_then(seconds_meant);
        let usable = expected_token.is_some()
            && bearer_meant(answer.get("token_type"))
            && expires_in.is_some_and(|e| e > 0 && e <= MAX_EXPIRES_IN);
        match parse_login(answer.to_string().as_bytes(), issued_at) {
            Ok(record) => {
                prop_assert!(usable, "accepted {answer}");
                let lifetime = expires_in.expect("usable");
                prop_assert_eq!(record.expires_in, lifetime);
                prop_assert_eq!(Some(record.access_token.expose().to_owned()), expected_token);
                prop_assert_eq!(
                    record.expires_at - record.issued_at,
                    time::Duration::seconds(lifetime as i64)
                );
                prop_assert!((record.issued_at - issued_at).abs() < time::Duration::seconds(1));
            }
            Err(e) => {
                prop_assert!(!usable, "refused a usable answer: {e}");
                let text = e.to_string();
                // Says which field and what it holds.
                prop_assert!(
                    ["access_token", "token_type", "expires_in", "the body"].iter().any(|f| text.contains(f)),
                    "{text}"
                );
                if let Some(token) = &token
                    && !token.trim().is_empty()
                {
                    prop_assert!(!text.contains(token.trim()), "{text}");
                }
            }
        }
    }

    #[test]
    fn a_token_record_with_variations_of_its_fields_parses_by_what_it_means(
        token in token_variation(),
        token_type in prop::sample::select(vec![
            None, Some(json!(null)), Some(json!("Bearer")), Some(json!("bearer ")), Some(json!("")),
            Some(json!("mac")), Some(json!(1)),
        ]),
        issued_at in plausible_time(),
        lifetime in 1..=MAX_EXPIRES_IN,
        padded in any::<bool>(),
        expires_in in prop::sample::select(vec![
            None, Some(json!(null)), Some(json!(86400)), Some(json!("86400")), Some(json!(86400.0)),
            Some(json!(" 86400.5 ")), Some(json!(-1)), Some(json!("soon")), Some(json!(false)),
        ]),
    ) {
        let expires_at = issued_at + time::Duration::seconds(lifetime as i64);
        let time = |at: OffsetDateTime| {
            let text = iadvize_token_broker::token::rfc3339(at);
            if padded { format!(" {text}\n") } else { text }
        };
        let mut value = json!({
            "access_token": token, "issued_at": time(issued_at), "expires_at": time(expires_at),
        });
        if let Some(kind) = &token_type {
            value["token_type"] = kind.clone();
        }
        if let Some(seconds) = &expires_in {
            value["expires_in"] = seconds.clone();
        }
        let expected_token = usable_token(&json!(token));
        let usable = expected_token.is_some()
            && bearer_meant(token_type.as_ref())
            && expires_in.as_ref().is_none_or(|s| s.is_null() || seconds_meant(s).is_some());
        match TokenRecord::parse(&value.to_string()) {
            Ok(record) => {
                prop_assert!(usable, "accepted {value}");
                prop_assert_eq!(Some(record.access_token.expose().to_owned()), expected_token);
                prop_assert_eq!(record.token_type.as_str(), "Bearer");
                prop_assert_eq!(record.issued_at, issued_at);
                prop_assert_eq!(record.expires_at, expires_at);
                let meant = expires_in.as_ref().and_then(seconds_meant).unwrap_or(lifetime);
                prop_assert_eq!(record.expires_in, meant);
            }
            Err(e) => {
                prop_assert!(!usable, "refused {value}: {e}");
                let text = e.to_string();
                if !token.trim().is_empty() {
                    prop_assert!(!text.contains(token.trim()), "{text}");
                }
                prop_assert!(
                    ["access_token", "token_type", "expires_in"].iter().any(|f| text.contains(f)),
                    "{text}"
                );
            }
        }
    }

    #[test]
    fn any_verification_answer_is_classified(
        status in prop_oneof![Just(200u16), Just(400), Just(401), Just(403), Just(429), Just(500), 100u16..600],
        body in prop_oneof![
            prop::collection::vec(any::<u8>(), 0..200),
            object_with(&["authenticated", "error", "error_description"], vec![
                json!(true), json!(false), json!("true"), json!(" TRUE "), json!("false"),
                json!("False\n"), json!("yes"), json!(1), json!(null), json!("invalid_token"),
                json!(" Invalid_Token "), json!("<html>"),
            ]).prop_map(|v| v.to_string().into_bytes()),
        ],
    ) {
        let json: Option<Value> = serde_json::from_slice(&body).ok();
        // What `authenticated` means: a boolean, or "true"/"false" in any case and spacing.
        let meant = json.as_ref().and_then(|j| j.get("authenticated")).and_then(|a| match a {
            Value::Bool(b) => Some(*b),
            Value::String(s) if s.trim().eq_ignore_ascii_case("true") => Some(true),
            Value::String(s) if s.trim().eq_ignore_ascii_case("false") => Some(false),
            _ => None,
        });
        match parse_verification(status, &body) {
            Ok(Verification::Authenticated) => {
                prop_assert_eq!(status, 200);
                prop_assert_eq!(meant, Some(true));
            }
            Ok(Verification::Rejected(reason)) => {
                prop_assert!(matches!(status, 200 | 400 | 401 | 403), "{status}");
                prop_assert!(reason.len() <= 64, "{reason}");
                prop_assert_ne!(meant.filter(|_| status == 200), Some(true));
            }
            Err(IadvizeError::UnexpectedStatus { status: reported, error, .. }) => {
                prop_assert_eq!(reported, status);
                prop_assert!(!matches!(status, 400 | 401 | 403));
                if status == 200 {
                    prop_assert!(meant.is_none());
                    // Says what it received.
                    let what = error.unwrap_or_default();
                    prop_assert!(what.contains("authenticated") || what.contains("not JSON"), "{what}");
                }
            }
            Err(other) => prop_assert!(false, "{other:?}"),
        }
        if matches!(status, 400 | 401 | 403) {
            prop_assert!(matches!(parse_verification(status, &body), Ok(Verification::Rejected(_))));
        }
    }

    #[test]
    fn an_echoed_input_value_is_capped_on_a_character_boundary(
        value in prop_oneof![".{0,50}", "[a-zé€😀]{600,700}", "[a-z]{0,2000}"],
    ) {
        let shown = echo(&value);
        if value.len() <= ECHO_MAX_BYTES {
            prop_assert_eq!(shown.as_ref(), value.as_str());
        } else {
            let marker = format!("…({} bytes)", value.len());
            prop_assert!(shown.ends_with(&marker), "{shown}");
            let kept = &shown[..shown.len() - marker.len()];
            prop_assert!(value.starts_with(kept));
            prop_assert!(kept.len() <= ECHO_MAX_BYTES && kept.len() + 4 > ECHO_MAX_BYTES);
            // Fits a CloudWatch dimension value (1,024 characters).
            prop_assert!(shown.chars().count() <= 1024);
        }
    }

    #[test]
    fn operator_and_step_events_are_read_by_what_they_mean(
        action in prop::sample::select(vec!["refresh", "Refresh", " REFRESH ", "status", "Status\n"]),
        force in prop::sample::select(vec![
            None, Some(json!(null)), Some(json!(true)), Some(json!(false)), Some(json!("true")),
            Some(json!(" FALSE ")), Some(json!(1)), Some(json!("yes")),
        ]),
        ids in prop::collection::vec("[A-Za-z0-9/_+=.@-]{1,20}", 1..4),
        ids_as in 0..4u8,
        step in prop::sample::select(vec!["createSecret", "CREATESECRET", " testSecret", "finishsecret\t", "rotateSecret"]),
        padding in prop::sample::select(vec!["", " ", "\n", "\t "]),
    ) {
        let secret_ids = match ids_as {
            0 => None,
            1 => Some(json!(ids)),
            2 => Some(json!(ids.join(","))),
            _ => Some(json!(ids.iter().map(|id| format!("{padding}{id}{padding}")).collect::<Vec<_>>())),
        };
        let mut event = json!({"action": action});
        if let Some(force) = &force { event["force"] = force.clone(); }
        if let Some(secret_ids) = &secret_ids { event["secret_ids"] = secret_ids.clone(); }
        let force_meant = match &force {
            None | Some(Value::Null) => Some(false),
            Some(Value::Bool(b)) => Some(*b),
            Some(Value::String(s)) if s.trim().eq_ignore_ascii_case("true") => Some(true),
            Some(Value::String(s)) if s.trim().eq_ignore_ascii_case("false") => Some(false),
            _ => None,
        };
        match (Event::parse(&event), force_meant) {
            (Ok(Event::Refresh { force, secret_ids: parsed }), Some(meant)) => {
                prop_assert_eq!(action.trim().to_lowercase(), "refresh");
                prop_assert_eq!(force, meant);
                prop_assert_eq!(parsed, secret_ids.map(|_| ids.clone()));
            }
            (Ok(Event::Status), Some(_)) => prop_assert_eq!(action.trim().to_lowercase(), "status"),
            (Err(Error::InvalidEvent(message)), None) => prop_assert!(message.contains("force is"), "{message}"),
            (other, meant) => prop_assert!(false, "{event} → {other:?} (force {meant:?})"),
        }

        let step_event = json!({
            "Step": step, "SecretId": format!("{padding}{}{padding}", ids[0]),
            "ClientRequestToken": format!("{padding}v-1{padding}"),
        });
        match Event::parse(&step_event) {
            Ok(Event::Step(parsed)) => {
                prop_assert_eq!(parsed.step.as_str().to_lowercase(), step.trim().to_lowercase());
                prop_assert_eq!(&parsed.secret_id, &ids[0]);
                prop_assert_eq!(parsed.token, "v-1");
            }
            Err(Error::InvalidEvent(message)) => {
                prop_assert_eq!(step, "rotateSecret");
                prop_assert!(message.contains("unknown rotation step"), "{message}");
            }
            other => prop_assert!(false, "{other:?}"),
        }
    }

    #[test]
    fn any_string_value_of_an_event_field_is_refused_saying_its_shape_never_its_value(
        field in prop::sample::select(vec!["SecretId", "ClientRequestToken", "secret_ids", "force"]),
        value in prop_oneof![
            secret().prop_map(|s| json!(format!("{s}\u{1}"))),
            secret().prop_map(|s| json!(format!("{s} {s}"))),
            (2100usize..3000).prop_map(|n| json!("x".repeat(n))),
            any::<i64>().prop_map(|n| json!(n)),
            Just(json!(null)), Just(json!({})), Just(json!([[]])),
        ],
    ) {
        let mut event = if matches!(field, "secret_ids" | "force") {
            json!({"action": "refresh"})
        } else {
            json!({"Step": "createSecret", "SecretId": "s", "ClientRequestToken": "v-1"})
        };
        event[field] = value.clone();
        match Event::parse(&event) {
            Ok(parsed) => {
                // Only these have a meaning: absent-like null, or a long valid id within limits.
                prop_assert!(value.is_null() && matches!(field, "secret_ids" | "force"), "{parsed:?}");
            }
            Err(Error::InvalidEvent(message)) => {
                prop_assert!(message.len() < 1024, "{}", message.len());
                if let Value::String(text) = &value
                    && text.len() > 8
                {
                    prop_assert!(!message.contains(text.as_str()), "{message}");
                    prop_assert!(message.contains(&format!("string of {} characters", text.chars().count())), "{message}");
                }
            }
            Err(other) => prop_assert!(false, "{other:?}"),
        }
    }

    #[test]
    fn any_retry_after_is_a_sane_wait_or_absent(value in ".{0,40}", seconds in any::<u64>()) {
        let now = SystemTime::now();
        for text in [value.clone(), seconds.to_string(), format!(" {seconds} "), format!("{seconds}0000000000")] {
            if let Some(wait) = parse_retry_after(&text, now) {
                prop_assert!(wait <= MAX_RETRY_AFTER, "{text:?} → {wait:?}");
            }
        }
        let expected = (seconds <= MAX_RETRY_AFTER.as_secs()).then(|| Duration::from_secs(seconds));
        prop_assert_eq!(parse_retry_after(&seconds.to_string(), now), expected);
    }

    #[test]
    fn an_http_date_retry_after_is_the_time_until_it(offset in -200_000i64..200_000) {
        let now = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let at = if offset >= 0 {
            now + Duration::from_secs(offset as u64)
        } else {
            now - Duration::from_secs(offset.unsigned_abs())
        };
        let expected = Duration::from_secs(offset.max(0) as u64);
        let parsed = parse_retry_after(&httpdate::fmt_http_date(at), now);
        if expected <= MAX_RETRY_AFTER {
            prop_assert_eq!(parsed, Some(expected));
        } else {
            prop_assert_eq!(parsed, None);
        }
    }

    #[test]
    fn configuration_values_parse_or_say_why(text in ".{0,40}", digits in "[0-9]{1,30}", unit in "(s|m|h|d|ms|)") {
        let _ = parse_duration(&text);
        let _ = parse_duration(&format!("{digits}{unit}"));
        if let Ok(url) = parse_api_url(&text) {
            prop_assert!(url.scheme() == "https" || url.scheme() == "http");
        }
    }

    #[test]
    fn plain_http_is_refused_except_for_loopback(host in "[a-z]{1,12}(\\.[a-z]{2,5}){0,2}") {
        let url = format!("http://{host}/");
        let loopback = host == "localhost";
        prop_assert_eq!(parse_api_url(&url).is_ok(), loopback, "{}", url);
        let secure = format!("https://{host}/");
        prop_assert!(parse_api_url(&secure).is_ok());
    }
}
