//! The terminal client's settings: `$XDG_CONFIG_HOME/confab/config.toml`.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use serde::Deserialize;

use super::keymap::Keymap;
use crate::text::Ambiguous;

/// One key or several.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Keys {
    One(String),
    Many(Vec<String>),
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Server address used when none is given.
    pub server: Option<String>,
    /// `default` or `vim`.
    pub keymap: Option<String>,
    /// Per-action overrides: `switcher = "ctrl-g"`, `newline = ["alt-enter", "ctrl-j"]`.
    pub keys: BTreeMap<String, Keys>,
    /// 2 when the terminal draws East Asian ambiguous characters wide.
    pub ambiguous_width: Option<u8>,
    /// Offset from UTC for message times, in minutes (default: the system's local time zone).
    pub utc_offset_minutes: Option<i32>,
    /// `bell`, `osc` (bell plus OSC 9/777), or `off`. Default `osc`.
    pub notify: Option<String>,
    /// Colours: `true` (16-colour theme, default) or `false`. NO_COLOR also turns them off.
    pub color: Option<bool>,
    /// Mouse wheel scrolling (captures the mouse, so terminal selection needs Shift). Default off.
    pub mouse: Option<bool>,
}

/// How notifications are delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Notify {
    Off,
    Bell,
    Osc,
}

/// How message times become wall-clock times: the UTC offset in effect at each instant.
#[derive(Clone)]
pub enum Zone {
    /// One offset in seconds for every time (`utc_offset_minutes`, tests).
    Fixed(i64),
    /// The offset in seconds at a Unix time in milliseconds: the system zone's rules, so
    /// messages on either side of a daylight-saving change each get their own offset. The
    /// run loop supplies it; the reducer and drawing only call it.
    Rules(Arc<dyn Fn(i64) -> i64 + Send + Sync>),
}

impl Zone {
    /// The offset from UTC, in seconds, at `ts_ms`.
    pub fn offset_s(&self, ts_ms: i64) -> i64 {
        match self {
            Zone::Fixed(s) => *s,
            Zone::Rules(f) => f(ts_ms),
        }
    }
}

impl fmt::Debug for Zone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Zone::Fixed(s) => write!(f, "Fixed({s})"),
            Zone::Rules(_) => f.write_str("Rules"),
        }
    }
}

/// The parsed config, ready to use.
#[derive(Debug, Clone)]
pub struct Settings {
    pub server: Option<String>,
    pub keymap: Keymap,
    pub ambiguous: Ambiguous,
    pub zone: Zone,
    /// Whether the config set the offset; otherwise the caller fills in the local zone.
    pub utc_offset_set: bool,
    pub notify: Notify,
    pub color: bool,
    pub mouse: bool,
    /// Problems found in the config, shown at start.
    pub problems: Vec<String>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings::from_config(Config::default(), false)
    }
}

impl Settings {
    pub fn from_config(c: Config, no_color: bool) -> Self {
        let overrides: Vec<(String, Vec<String>)> = c
            .keys
            .into_iter()
            .map(|(k, v)| {
                (
                    k,
                    match v {
                        Keys::One(s) => vec![s],
                        Keys::Many(v) => v,
                    },
                )
            })
            .collect();
        let keymap = Keymap::build(c.keymap.as_deref().unwrap_or("default"), &overrides);
        let mut problems = keymap.problems.clone();
        let notify = match c.notify.as_deref() {
            None | Some("osc") => Notify::Osc,
            Some("bell") => Notify::Bell,
            Some("off") => Notify::Off,
            Some(other) => {
                problems.push(format!("notify = {other:?}: expected osc, bell or off"));
                Notify::Osc
            }
        };
        Settings {
            server: c.server,
            keymap,
            ambiguous: if c.ambiguous_width == Some(2) {
                Ambiguous::Wide
            } else {
                Ambiguous::Narrow
            },
            zone: Zone::Fixed(i64::from(c.utc_offset_minutes.unwrap_or(0)) * 60),
            utc_offset_set: c.utc_offset_minutes.is_some(),
            notify,
            color: c.color.unwrap_or(true) && !no_color,
            mouse: c.mouse.unwrap_or(false),
            problems,
        }
    }

    /// Parses config text; a broken file gives defaults plus the error as a problem.
    pub fn parse(text: &str, no_color: bool) -> Self {
        match toml::from_str::<Config>(text) {
            Ok(c) => Self::from_config(c, no_color),
            Err(e) => {
                let mut s = Self::from_config(Config::default(), no_color);
                s.problems
                    .push(format!("config.toml: {}", e.message().trim()));
                s
            }
        }
    }
}

/// The documented example config.
pub const EXAMPLE: &str = r#"# ~/.config/confab/config.toml
server = "chat.example.org:7000"
keymap = "default"          # or "vim"
ambiguous_width = 1         # 2 if your terminal draws ambiguous-width characters wide
utc_offset_minutes = 480    # message times in UTC+8
notify = "osc"              # "osc" (bell + OSC 9/777), "bell" or "off"
color = true                # NO_COLOR in the environment also turns colours off
mouse = false               # true: wheel scrolls the chat (hold Shift to select text)

[keys]
switcher = "ctrl-g"
newline = ["alt-enter", "ctrl-j"]
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_parses_and_applies() {
        let s = Settings::parse(EXAMPLE, false);
        assert!(s.problems.is_empty(), "{:?}", s.problems);
        assert_eq!(s.zone.offset_s(0), 480 * 60);
        assert!(s.utc_offset_set);
        assert_eq!(
            s.keymap.first(super::super::keymap::Action::Switcher),
            "Ctrl-G"
        );
        assert!(Settings::parse(EXAMPLE, true).color.eq(&false));
    }

    #[test]
    fn broken_config_is_reported_not_fatal() {
        let s = Settings::parse("keymap = [", false);
        assert_eq!(s.problems.len(), 1);
        let s = Settings::parse("colour = true", false);
        assert_eq!(s.problems.len(), 1, "unknown keys are reported");
    }
}
