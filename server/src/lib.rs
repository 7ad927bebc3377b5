//! confab-server: accounts, friends, groups, chat and sync over the confab wire protocol.
