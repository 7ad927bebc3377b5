//! `confab`: the terminal client, and a scriptable command line on the same client core
//! (`confab_tui::cli`).

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    confab_tui::cli::main().await
}
