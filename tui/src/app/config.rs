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
    /// Words that count as a mention of you (notify, `N@M`, highlighted), besides `@name`.
    pub highlight: Vec<String>,
    /// A directory for a plain-text log of every conversation (off when unset); `~/` is the
    /// home directory.
    pub log_dir: Option<String>,
    /// Per conversation (its name as the list shows it): `all` (default), `mentions` or `none`.
    /// `/notify` writes here.
    pub notify_levels: BTreeMap<String, String>,
}

/// What a conversation notifies of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Level {
    /// Every message from someone else.
    #[default]
    All,
    /// Only mentions of you and highlight words.
    Mentions,
    /// Nothing (muted); unread counts still show in the list.
    None,
}

impl Level {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "all" => Some(Level::All),
            "mentions" => Some(Level::Mentions),
            "none" | "mute" | "muted" => Some(Level::None),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Level::All => "all",
            Level::Mentions => "mentions",
            Level::None => "none",
        }
    }
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
    pub highlight: Vec<String>,
    /// Where conversation logs go (None: no logs).
    pub log_dir: Option<std::path::PathBuf>,
    /// Conversations whose level is not `all`, by name.
    pub levels: BTreeMap<String, Level>,
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
        let mut levels = BTreeMap::new();
        for (name, v) in c.notify_levels {
            match Level::parse(&v) {
                Some(Level::All) => {}
                Some(l) => {
                    levels.insert(crate::text::nfc(&name), l);
                }
                None => problems.push(format!(
                    "notify_levels.{name:?} = {v:?}: expected all, mentions or none"
                )),
            }
        }
        let highlight = c
            .highlight
            .into_iter()
            .map(|w| w.trim().to_owned())
            .filter(|w| !w.is_empty())
            .collect();
        let log_dir = c.log_dir.filter(|d| !d.trim().is_empty()).map(|d| {
            match (d.strip_prefix("~/"), std::env::var_os("HOME")) {
                (Some(rest), Some(home)) => std::path::PathBuf::from(home).join(rest),
                _ => std::path::PathBuf::from(d),
            }
        });
        Settings {
            server: c.server,
            highlight,
            log_dir,
            levels,
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

    /// The notification level of a conversation.
    pub fn level(&self, name: &str) -> Level {
        self.levels.get(name).copied().unwrap_or_default()
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

/// The config text with a conversation's level set (`all` removes its entry), everything else
/// kept as written (comments, order). Fails on a file that does not parse.
pub fn with_level(text: &str, name: &str, level: Level) -> Result<String, String> {
    let mut doc: toml_edit::DocumentMut = text.parse().map_err(|e| format!("config.toml: {e}"))?;
    if !doc.contains_key("notify_levels") {
        doc["notify_levels"] = toml_edit::table();
    }
    let Some(t) = doc["notify_levels"].as_table_like_mut() else {
        return Err("config.toml: notify_levels is not a table".into());
    };
    if level == Level::All {
        t.remove(name);
    } else {
        t.insert(name, toml_edit::value(level.as_str()));
    }
    Ok(doc.to_string())
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
highlight = ["deploy", "部署"] # words that count as mentioning you
log_dir = "~/confab-logs"   # a plain-text log of every conversation (off when unset)

[notify_levels]             # per conversation: "all" (default), "mentions" or "none"
"研发群" = "mentions"
"lobby" = "none"

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
    fn levels_are_read_and_written_keeping_the_rest_of_the_file() {
        let s = Settings::parse(EXAMPLE, false);
        assert_eq!(s.level("研发群"), Level::Mentions);
        assert_eq!(s.level("lobby"), Level::None);
        assert_eq!(s.level("bob"), Level::All);
        assert_eq!(s.highlight, vec!["deploy".to_owned(), "部署".to_owned()]);
        let text = with_level(EXAMPLE, "bob", Level::None).unwrap();
        assert!(
            text.contains("# words that count as mentioning you"),
            "{text}"
        );
        let s = Settings::parse(&text, false);
        assert_eq!(s.level("bob"), Level::None);
        assert_eq!(s.level("研发群"), Level::Mentions);
        let text = with_level(&text, "研发群", Level::All).unwrap();
        assert_eq!(Settings::parse(&text, false).level("研发群"), Level::All);
        // An empty file gains the table.
        let text = with_level("", "alice", Level::Mentions).unwrap();
        assert_eq!(
            Settings::parse(&text, false).level("alice"),
            Level::Mentions
        );
        assert!(with_level("keymap = [", "x", Level::None).is_err());
        let bad = Settings::parse("[notify_levels]\nbob = \"loud\"", false);
        assert_eq!(bad.problems.len(), 1, "{:?}", bad.problems);
    }

    #[test]
    fn broken_config_is_reported_not_fatal() {
        let s = Settings::parse("keymap = [", false);
        assert_eq!(s.problems.len(), 1);
        let s = Settings::parse("colour = true", false);
        assert_eq!(s.problems.len(), 1, "unknown keys are reported");
    }
}
