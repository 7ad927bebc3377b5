//! confab-server: accounts, friends, groups, chat and sync over the confab wire protocol.
//!
//! Layers (dependencies point down): [`net`] (listener, connections) -> [`service`] (requests,
//! rules, fan-out) -> [`store`] (durable state) and [`hub`] (who is online where).

pub mod ids;
pub mod store;
