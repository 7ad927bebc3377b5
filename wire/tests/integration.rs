//! One test binary for the crate's integration tests: each file under tests/ is a module
//! here. One binary instead of one per file keeps a clean test build small (each binary
//! links the whole dependency tree) and lets cargo run the modules' tests in one pool.

mod codec;
mod fuzz_corpus;
mod properties;
mod vectors;
