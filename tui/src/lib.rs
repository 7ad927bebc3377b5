//! confab-tui: the client core ([`client`]), used by the `confab` terminal client and CLI and
//! by `confab-load`.

pub mod client;
