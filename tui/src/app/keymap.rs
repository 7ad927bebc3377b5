//! The keymap: one table of actions and their keys. Help, `confab --help` text and conflict
//! checks are all generated from it, so the documentation cannot drift from the bindings.

use std::collections::HashMap;
use std::fmt;

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

/// A key with modifiers, as written in the config (`ctrl-k`, `alt-enter`, `f1`, `pgup`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Key {
    pub code: KeyCode,
    pub ctrl: bool,
    pub alt: bool,
    pub shift: bool,
}

/// A key name in the config that names no key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown key {0:?}")]
pub struct UnknownKey(pub String);

impl Key {
    pub const fn new(code: KeyCode) -> Self {
        Self {
            code,
            ctrl: false,
            alt: false,
            shift: false,
        }
    }
    pub const fn ctrl(c: char) -> Self {
        Self {
            code: KeyCode::Char(c),
            ctrl: true,
            alt: false,
            shift: false,
        }
    }
    pub const fn alt(code: KeyCode) -> Self {
        Self {
            code,
            ctrl: false,
            alt: true,
            shift: false,
        }
    }

    /// The key as the keymap sees a terminal event. Shift is folded into the character for
    /// printable keys (the terminal already sent `A`, not `shift-a`).
    pub fn from_event(ev: &KeyEvent) -> Self {
        let m = ev.modifiers;
        let mut code = ev.code;
        let mut shift = m.contains(KeyModifiers::SHIFT);
        if let KeyCode::Char(c) = code {
            shift = false;
            if m.contains(KeyModifiers::CONTROL) {
                code = KeyCode::Char(c.to_ascii_lowercase());
            }
        }
        if code == KeyCode::BackTab {
            code = KeyCode::Tab;
            shift = true;
        }
        Self {
            code,
            ctrl: m.contains(KeyModifiers::CONTROL),
            alt: m.contains(KeyModifiers::ALT),
            shift,
        }
    }

    pub fn parse(s: &str) -> Result<Self, UnknownKey> {
        let lower = s.trim().to_lowercase();
        let mut key = Key::new(KeyCode::Null);
        let mut rest = lower.as_str();
        loop {
            if let Some(r) = rest
                .strip_prefix("ctrl-")
                .or_else(|| rest.strip_prefix("c-"))
            {
                key.ctrl = true;
                rest = r;
            } else if let Some(r) = rest
                .strip_prefix("alt-")
                .or_else(|| rest.strip_prefix("m-"))
                .or_else(|| rest.strip_prefix("meta-"))
            {
                key.alt = true;
                rest = r;
            } else if let Some(r) = rest
                .strip_prefix("shift-")
                .or_else(|| rest.strip_prefix("s-"))
            {
                key.shift = true;
                rest = r;
            } else {
                break;
            }
        }
        key.code = match rest {
            "enter" | "return" => KeyCode::Enter,
            "tab" => KeyCode::Tab,
            "esc" | "escape" => KeyCode::Esc,
            "backspace" | "bs" => KeyCode::Backspace,
            "delete" | "del" => KeyCode::Delete,
            "up" => KeyCode::Up,
            "down" => KeyCode::Down,
            "left" => KeyCode::Left,
            "right" => KeyCode::Right,
            "home" => KeyCode::Home,
            "end" => KeyCode::End,
            "pgup" | "pageup" => KeyCode::PageUp,
            "pgdn" | "pagedown" => KeyCode::PageDown,
            "space" => KeyCode::Char(' '),
            f if f.starts_with('f') && f.len() > 1 && f[1..].parse::<u8>().is_ok() => {
                KeyCode::F(f[1..].parse::<u8>().unwrap_or(1))
            }
            c if c.chars().count() == 1 => KeyCode::Char(c.chars().next().unwrap_or(' ')),
            _ => return Err(UnknownKey(s.to_owned())),
        };
        Ok(key)
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.ctrl {
            f.write_str("Ctrl-")?;
        }
        if self.alt {
            f.write_str("Alt-")?;
        }
        if self.shift {
            f.write_str("Shift-")?;
        }
        match self.code {
            KeyCode::Char(' ') => f.write_str("Space"),
            KeyCode::Char(c) if self.ctrl || self.alt => write!(f, "{}", c.to_ascii_uppercase()),
            KeyCode::Char(c) => write!(f, "{c}"),
            KeyCode::F(n) => write!(f, "F{n}"),
            KeyCode::Enter => f.write_str("Enter"),
            KeyCode::Tab => f.write_str("Tab"),
            KeyCode::Esc => f.write_str("Esc"),
            KeyCode::Backspace => f.write_str("Backspace"),
            KeyCode::Delete => f.write_str("Delete"),
            KeyCode::Up => f.write_str("Up"),
            KeyCode::Down => f.write_str("Down"),
            KeyCode::Left => f.write_str("Left"),
            KeyCode::Right => f.write_str("Right"),
            KeyCode::Home => f.write_str("Home"),
            KeyCode::End => f.write_str("End"),
            KeyCode::PageUp => f.write_str("PgUp"),
            KeyCode::PageDown => f.write_str("PgDn"),
            other => write!(f, "{other:?}"),
        }
    }
}

macro_rules! actions {
    ($($name:ident = $id:literal : $desc:literal),* $(,)?) => {
        /// Everything a key can do in the main screen.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Action { $($name),* }
        impl Action {
            pub const ALL: &'static [Action] = &[$(Action::$name),*];
            /// The name used in the config's `[keys]` table.
            pub fn id(self) -> &'static str { match self { $(Action::$name => $id),* } }
            pub fn describe(self) -> &'static str { match self { $(Action::$name => $desc),* } }
            pub fn from_id(s: &str) -> Option<Self> { match s { $($id => Some(Action::$name),)* _ => None } }
        }
    };
}

actions! {
    Send = "send": "send the message",
    Newline = "newline": "insert a newline",
    Left = "left": "cursor left",
    Right = "right": "cursor right",
    WordLeft = "word_left": "cursor to the previous word",
    WordRight = "word_right": "cursor to the next word",
    LineStart = "line_start": "cursor to the start of the line",
    LineEnd = "line_end": "cursor to the end of the line",
    Backspace = "backspace": "delete the character before the cursor",
    Delete = "delete": "delete the character under the cursor",
    KillWord = "kill_word": "delete the word before the cursor",
    KillToStart = "kill_to_start": "delete to the start of the line",
    KillToEnd = "kill_to_end": "delete to the end of the line",
    Yank = "yank": "paste the last deleted text",
    Undo = "undo": "undo the last edit",
    HistoryPrev = "history_prev": "line up, or the previous sent message",
    HistoryNext = "history_next": "line down, or the next sent message",
    ReverseSearch = "reverse_search": "search sent messages (again: older)",
    Find = "find": "find text in this conversation as you type",
    SearchAll = "search_all": "search every conversation on the server",
    Complete = "complete": "complete a /command, name or @member (again: next)",
    CompletePrev = "complete_prev": "the previous completion",
    NextThread = "next_thread": "next conversation",
    PrevThread = "prev_thread": "previous conversation",
    NextUnread = "next_unread": "next conversation with unread messages",
    Thread1 = "thread_1": "conversation 1",
    Thread2 = "thread_2": "conversation 2",
    Thread3 = "thread_3": "conversation 3",
    Thread4 = "thread_4": "conversation 4",
    Thread5 = "thread_5": "conversation 5",
    Thread6 = "thread_6": "conversation 6",
    Thread7 = "thread_7": "conversation 7",
    Thread8 = "thread_8": "conversation 8",
    Thread9 = "thread_9": "conversation 9",
    ScrollUp = "scroll_up": "scroll up (loads older messages)",
    ScrollDown = "scroll_down": "scroll down",
    ScrollBottom = "scroll_bottom": "jump to the newest message",
    ScrollTop = "scroll_top": "jump to the start of the conversation",
    LinesUp = "lines_up": "scroll up three lines",
    LinesDown = "lines_down": "scroll down three lines",
    FirstUnread = "first_unread": "jump to the first unread message here",
    Pick = "pick": "pick a message (again: older): a reply, + react, y copy, e edit, r recall, d delete, b block",
    LastThread = "last_thread": "back to the conversation shown before",
    Switcher = "switcher": "quick switcher (fuzzy)",
    Help = "help": "this help",
    Requests = "requests": "friend requests",
    AddFriend = "add_friend": "add a friend",
    Group = "group": "create or join a group",
    Members = "members": "members of this group",
    Retry = "retry": "resend failed messages in this conversation",
    DeleteFailed = "delete_failed": "delete the newest failed message here",
    Cancel = "cancel": "close / clear the search (the draft is kept)",
    Interrupt = "interrupt": "clear the composer; twice on an empty one quits",
    Redraw = "redraw": "redraw the screen",
    Suspend = "suspend": "suspend to the shell (fg resumes)",
}

impl Action {
    pub fn thread_index(self) -> Option<usize> {
        use Action::*;
        Some(match self {
            Thread1 => 0,
            Thread2 => 1,
            Thread3 => 2,
            Thread4 => 3,
            Thread5 => 4,
            Thread6 => 5,
            Thread7 => 6,
            Thread8 => 7,
            Thread9 => 8,
            _ => return None,
        })
    }
}

/// The default bindings (readline-style composer, WeeChat/senpai-style navigation).
pub fn defaults() -> Vec<(Action, Vec<Key>)> {
    use Action::*;
    use KeyCode as K;
    let k = Key::new;
    let alt_digit = |c: char| Key::alt(K::Char(c));
    vec![
        (Send, vec![k(K::Enter)]),
        (
            Newline,
            vec![
                Key::alt(K::Enter),
                Key::ctrl('j'),
                Key {
                    shift: true,
                    ..k(K::Enter)
                },
            ],
        ),
        (Left, vec![k(K::Left), Key::ctrl('b')]),
        (Right, vec![k(K::Right), Key::ctrl('f')]),
        (
            WordLeft,
            vec![
                Key::alt(K::Char('b')),
                Key {
                    ctrl: true,
                    ..k(K::Left)
                },
            ],
        ),
        (
            WordRight,
            vec![
                Key::alt(K::Char('f')),
                Key {
                    ctrl: true,
                    ..k(K::Right)
                },
            ],
        ),
        (LineStart, vec![k(K::Home), Key::ctrl('a')]),
        (LineEnd, vec![k(K::End), Key::ctrl('e')]),
        (Backspace, vec![k(K::Backspace), Key::ctrl('h')]),
        (Delete, vec![k(K::Delete), Key::ctrl('d')]),
        (KillWord, vec![Key::ctrl('w'), Key::alt(K::Backspace)]),
        (KillToStart, vec![Key::ctrl('u')]),
        (KillToEnd, vec![Key::alt(K::Char('k'))]),
        (Yank, vec![Key::ctrl('y')]),
        // Terminals send Ctrl-_ (and Ctrl-/) as byte 0x1f, which crossterm reads as Ctrl-7.
        (Undo, vec![Key::ctrl('_'), Key::ctrl('7')]),
        (HistoryPrev, vec![k(K::Up)]),
        (HistoryNext, vec![k(K::Down)]),
        (ReverseSearch, vec![Key::ctrl('r')]),
        (Find, vec![Key::ctrl('s')]),
        (Complete, vec![k(K::Tab)]),
        (
            CompletePrev,
            vec![Key {
                shift: true,
                ..k(K::Tab)
            }],
        ),
        (NextThread, vec![Key::ctrl('n')]),
        (PrevThread, vec![Key::ctrl('p')]),
        (NextUnread, vec![Key::alt(K::Char('a'))]),
        (Thread1, vec![alt_digit('1')]),
        (Thread2, vec![alt_digit('2')]),
        (Thread3, vec![alt_digit('3')]),
        (Thread4, vec![alt_digit('4')]),
        (Thread5, vec![alt_digit('5')]),
        (Thread6, vec![alt_digit('6')]),
        (Thread7, vec![alt_digit('7')]),
        (Thread8, vec![alt_digit('8')]),
        (Thread9, vec![alt_digit('9')]),
        (ScrollUp, vec![k(K::PageUp)]),
        (ScrollDown, vec![k(K::PageDown)]),
        (ScrollBottom, vec![Key::alt(K::End)]),
        (ScrollTop, vec![Key::alt(K::Home)]),
        (LinesUp, vec![Key::alt(K::PageUp)]),
        (LinesDown, vec![Key::alt(K::PageDown)]),
        (FirstUnread, vec![Key::alt(K::Char('u'))]),
        (Pick, vec![Key::alt(K::Up)]),
        (LastThread, vec![Key::alt(K::Char('/'))]),
        (Switcher, vec![Key::ctrl('k')]),
        (Help, vec![k(K::F(1))]),
        (Requests, vec![k(K::F(2))]),
        (AddFriend, vec![k(K::F(3))]),
        (Group, vec![k(K::F(4))]),
        (Members, vec![k(K::F(5))]),
        (SearchAll, vec![k(K::F(6))]),
        (Retry, vec![Key::alt(K::Char('r'))]),
        (DeleteFailed, vec![Key::alt(K::Char('x'))]),
        (Cancel, vec![k(K::Esc)]),
        (Interrupt, vec![Key::ctrl('c')]),
        (Redraw, vec![Key::ctrl('l')]),
        (Suspend, vec![Key::ctrl('z')]),
    ]
}

/// Extra bindings of the `vim` preset: normal-mode-like navigation on Alt (the composer stays
/// modeless, so Esc never eats a draft).
fn vim_extras() -> Vec<(Action, Vec<Key>)> {
    use Action::*;
    use KeyCode as K;
    vec![
        (NextThread, vec![Key::alt(K::Char('j'))]),
        (PrevThread, vec![Key::alt(K::Char('k'))]),
        (ScrollUp, vec![Key::ctrl('u')]),
        (ScrollDown, vec![Key::ctrl('d')]),
        (KillToStart, vec![Key::alt(K::Char('u'))]),
        (Delete, vec![k_del()]),
    ]
}

fn k_del() -> Key {
    Key::new(KeyCode::Delete)
}

/// The active bindings, and any problems found building them.
#[derive(Debug, Clone)]
pub struct Keymap {
    pub table: Vec<(Action, Vec<Key>)>,
    map: HashMap<Key, Action>,
    /// Conflicts and unknown names, reported at start.
    pub problems: Vec<String>,
    /// The vim preset: Esc enters a normal mode for reading (the draft stays).
    pub vim: bool,
}

impl Default for Keymap {
    fn default() -> Self {
        Self::build("default", &[])
    }
}

impl Keymap {
    /// `preset` is `default` or `vim`; `overrides` are `(action id, keys)` from the config
    /// (each replaces that action's keys).
    pub fn build(preset: &str, overrides: &[(String, Vec<String>)]) -> Self {
        let mut table = defaults();
        let mut problems = Vec::new();
        let apply = |table: &mut Vec<(Action, Vec<Key>)>, a: Action, keys: Vec<Key>| {
            if let Some(row) = table.iter_mut().find(|(x, _)| *x == a) {
                row.1 = keys;
            }
        };
        match preset {
            "default" | "" => {}
            "vim" => {
                for (a, keys) in vim_extras() {
                    let mut all = table
                        .iter()
                        .find(|(x, _)| *x == a)
                        .map(|(_, k)| k.clone())
                        .unwrap_or_default();
                    all.extend(keys.iter().copied());
                    all.dedup();
                    // A key the preset takes over leaves its old action.
                    for (_, other) in table.iter_mut() {
                        other.retain(|k| !keys.contains(k));
                    }
                    apply(&mut table, a, all);
                }
            }
            other => problems.push(format!("unknown keymap preset {other:?} (default, vim)")),
        }
        for (id, keys) in overrides {
            let Some(a) = Action::from_id(id) else {
                problems.push(format!("unknown action {id:?} in [keys]"));
                continue;
            };
            let mut parsed = Vec::new();
            for k in keys {
                match Key::parse(k) {
                    Ok(k) => parsed.push(k),
                    Err(e) => problems.push(format!("[keys] {id}: {e}")),
                }
            }
            apply(&mut table, a, parsed);
        }
        let mut map = HashMap::new();
        for (a, keys) in &table {
            for k in keys {
                if let Some(prev) = map.insert(*k, *a)
                    && prev != *a
                {
                    problems.push(format!(
                        "{k} is bound to both {} and {}; {} wins",
                        prev.id(),
                        a.id(),
                        a.id()
                    ));
                }
            }
        }
        Keymap {
            table,
            map,
            problems,
            vim: preset == "vim",
        }
    }

    pub fn action(&self, ev: &KeyEvent) -> Option<Action> {
        let key = Key::from_event(ev);
        self.map.get(&key).copied().or_else(|| {
            // Terminals disagree on whether Ctrl-_ comes with shift: try without it.
            let mut k = key;
            k.shift = false;
            self.map.get(&k).copied()
        })
    }

    /// "Ctrl-K" for the hint line: the first key of an action.
    pub fn first(&self, a: Action) -> String {
        self.table
            .iter()
            .find(|(x, _)| *x == a)
            .and_then(|(_, k)| k.first())
            .map_or_else(|| "unbound".into(), ToString::to_string)
    }

    /// Help rows: keys, description.
    pub fn help_rows(&self) -> Vec<(String, &'static str)> {
        self.table
            .iter()
            .map(|(a, keys)| {
                let k: Vec<String> = keys.iter().map(ToString::to_string).collect();
                (
                    if k.is_empty() {
                        "unbound".into()
                    } else {
                        k.join(" ")
                    },
                    a.describe(),
                )
            })
            .collect()
    }
}

/// The keymap as plain text (for `confab --help` and docs).
pub fn help_text(km: &Keymap) -> String {
    let mut out = String::new();
    for (a, keys) in &km.table {
        let k: Vec<String> = keys.iter().map(ToString::to_string).collect();
        out.push_str(&format!(
            "  {:<28} {:<14} {}\n",
            k.join(" "),
            a.id(),
            a.describe()
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_display_round_trip() {
        for s in [
            "Ctrl-K",
            "Alt-Enter",
            "F1",
            "PgUp",
            "Alt-1",
            "Ctrl-Left",
            "Esc",
        ] {
            let k = Key::parse(s).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(k.to_string(), s);
        }
        assert!(Key::parse("hyper-x").is_err());
    }

    #[test]
    fn defaults_have_no_conflicts_and_overrides_are_checked() {
        assert!(Keymap::default().problems.is_empty());
        assert!(Keymap::build("vim", &[]).problems.is_empty());
        let km = Keymap::build(
            "default",
            &[
                ("switcher".into(), vec!["ctrl-g".into()]),
                ("help".into(), vec!["ctrl-g".into()]),
                ("nope".into(), vec!["f9".into()]),
            ],
        );
        assert_eq!(km.problems.len(), 2, "{:?}", km.problems);
        let ev = KeyEvent::new(KeyCode::Char('k'), KeyModifiers::CONTROL);
        assert_eq!(km.action(&ev), None, "ctrl-k was rebound away");
    }

    #[test]
    fn ctrl_j_is_a_newline_and_enter_sends() {
        let km = Keymap::default();
        let j = KeyEvent::new(KeyCode::Char('j'), KeyModifiers::CONTROL);
        assert_eq!(km.action(&j), Some(Action::Newline));
        let e = KeyEvent::new(KeyCode::Enter, KeyModifiers::NONE);
        assert_eq!(km.action(&e), Some(Action::Send));
        let ae = KeyEvent::new(KeyCode::Enter, KeyModifiers::ALT);
        assert_eq!(km.action(&ae), Some(Action::Newline));
    }

    #[test]
    fn ctrl_z_suspends_and_ctrl_underscore_undoes() {
        let km = Keymap::default();
        let z = KeyEvent::new(KeyCode::Char('z'), KeyModifiers::CONTROL);
        assert_eq!(km.action(&z), Some(Action::Suspend));
        let u = KeyEvent::new(KeyCode::Char('_'), KeyModifiers::CONTROL);
        assert_eq!(km.action(&u), Some(Action::Undo));
        // What tmux and xterm actually deliver for Ctrl-_ (0x1f).
        let seven = KeyEvent::new(KeyCode::Char('7'), KeyModifiers::CONTROL);
        assert_eq!(km.action(&seven), Some(Action::Undo));
        // Rebindable like any other action.
        let km = Keymap::build("default", &[("suspend".into(), vec!["f12".into()])]);
        assert_eq!(km.action(&z), None);
        assert_eq!(
            km.action(&KeyEvent::new(KeyCode::F(12), KeyModifiers::NONE)),
            Some(Action::Suspend)
        );
    }
}
