//! Sequences of requests from a few simulated connections against a service on an embedded
//! store, checked after every step (see ../harness.rs).
//! Run on stable: `cargo fuzz run service --sanitizer none`
#![no_main]

#[path = "../harness.rs"]
mod harness;

use std::sync::{Mutex, OnceLock};

/// One service and store for the process: inputs cannot see each other's state (harness.rs).
static HARNESS: OnceLock<Mutex<harness::Harness>> = OnceLock::new();

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let harness = HARNESS.get_or_init(|| Mutex::new(harness::Harness::new()));
    harness
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .run(data);
});
