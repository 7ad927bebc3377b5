//! confab client core.
