//! confab-tui: the client core ([`client`]), used by the `confab` terminal client and CLI, and
//! the load scenarios ([`load`]) behind `confab-load`.

pub mod client;
pub mod load;
