//! confab-tui: the client core ([`client`]), used by the `confab` terminal client and CLI; the
//! load scenarios ([`load`]) behind `confab-load`; and terminal text handling ([`text`]: cluster
//! widths, UAX #14 wrapping, the composer's editing model) for the terminal client.

pub mod app;
pub mod cli;
pub mod client;
pub mod load;
pub mod run;
pub mod text;
pub mod ui;
