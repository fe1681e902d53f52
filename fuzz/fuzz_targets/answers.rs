//! What comes back from outside: iAdvize's login and verification answers, `Retry-After`,
//! and the secret values the broker reads (token records, credentials).
#![no_main]

use std::time::{Duration, SystemTime};

use iadvize_token_broker::iadvize::{parse_login, parse_retry_after, parse_verification};
use iadvize_token_broker::token::{Credentials, TokenRecord};
use libfuzzer_sys::fuzz_target;

const STATUSES: [u16; 7] = [200, 400, 401, 403, 429, 500, 503];

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    // A fixed clock keeps every run reproducible.
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    if let Ok(issued_at) = time::OffsetDateTime::from_unix_timestamp(1_800_000_000) {
        let _ = parse_login(body, issued_at);
    }
    let _ = parse_verification(STATUSES[usize::from(selector) % STATUSES.len()], body);
    if let Ok(text) = std::str::from_utf8(body) {
        let _ = parse_retry_after(text, now);
        if let Ok(record) = TokenRecord::parse(text) {
            let _ = record.is_expired(time::OffsetDateTime::UNIX_EPOCH);
        }
        let _ = Credentials::parse(text, String::new());
    }
});
