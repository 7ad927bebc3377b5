//! Arbitrary bytes, in arbitrary chunks, through the frame decoder.
//! Run on stable: `cargo fuzz run decode --sanitizer none -- -max_total_time=60`
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    confab_wire::fuzzing::decode_stream(data);
});
