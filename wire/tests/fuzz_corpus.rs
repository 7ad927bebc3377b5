//! Replays the fuzz corpus (wire/fuzz/corpus/decode) through the fuzz target's body, so every
//! input the fuzzer ever kept is checked by a normal `cargo test`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

#[test]
fn replay_decode_corpus() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/decode");
    let mut count = 0;
    for entry in std::fs::read_dir(&dir).expect("corpus dir") {
        let path = entry.expect("entry").path();
        let data = std::fs::read(&path).expect("corpus file");
        confab_wire::fuzzing::decode_stream(&data);
        count += 1;
    }
    assert!(count >= 10, "corpus at {dir:?} has only {count} inputs");
}
