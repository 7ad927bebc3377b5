//! One test binary for the crate's integration tests: each file under tests/ is a module
//! here. One binary instead of one per file keeps a clean test build small (each binary
//! links the whole dependency tree) and lets cargo run the modules' tests in one pool.

mod common;

mod api;
mod cli;
mod client_core;
mod gap_grace;
mod held_push;
mod load;
mod shared_session;
mod silent_server;
mod sync_settles_send;
mod tls;
mod tmux_e2e;
mod tui;
mod vt;
