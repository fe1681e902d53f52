//! Lambda events: any JSON the runtime could hand the broker is classified or refused.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(event) = serde_json::from_slice::<serde_json::Value>(data) {
        let _ = iadvize_token_broker::events::Event::parse(&event);
    }
});
