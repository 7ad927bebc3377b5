//! Replays the service fuzz corpus (server/fuzz/corpus/service) through the fuzz target's own
//! body and checks (server/fuzz/harness.rs), so every input the fuzzer kept is played by a
//! normal `cargo test`, without cargo-fuzz.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

#[path = "../fuzz/harness.rs"]
mod harness;

#[test]
fn replay_service_corpus() {
    // CONFAB_FUZZ_CORPUS=DIR replays another corpus (a fuzzer's working one, say).
    let dir = std::env::var_os("CONFAB_FUZZ_CORPUS").map_or_else(
        || std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/service"),
        std::path::PathBuf::from,
    );
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("corpus dir")
        .map(|e| e.expect("entry").path())
        .collect();
    files.sort();
    let mut h = harness::Harness::new();
    for path in &files {
        let data = std::fs::read(path).expect("corpus file");
        h.run(&data);
    }
    // What the corpus reaches, for `--nocapture`.
    for (kind, n) in &h.replies {
        println!("{n:>6} {kind}");
    }
    assert!(
        files.len() >= 50,
        "corpus at {dir:?} has only {} inputs",
        files.len()
    );
}
