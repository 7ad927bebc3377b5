//! One test binary for the crate's integration tests: each file under tests/ is a module
//! here. One binary instead of one per file keeps a clean test build small (each binary
//! links the whole dependency tree) and lets cargo run the modules' tests in one pool.

mod common;

mod accounts;
mod admin;
mod admin_cli;
mod bans;
mod blocks;
mod data_dir_env;
mod delivery;
mod devices;
mod friends;
mod groups;
mod install;
mod messaging;
mod metrics;
mod mysql;
mod protocol;
mod relations;
mod schema;
mod search;
mod service_fuzz_corpus;
mod shutdown;
mod store_files;
mod tls;
mod writer;
