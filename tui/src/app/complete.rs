//! Tab completion in the composer: `/commands`, `/group` subcommands, names after a command,
//! and `@member` in a group (recent speakers first). Several candidates: the first Tab puts the
//! first one in, each further Tab the next (Shift-Tab the previous), as in irssi and weechat;
//! any other key keeps what is there.

use super::commands::{COMMANDS, GROUP_SUBS};
use super::state::{Kind, State};
use crate::text::nfc;

/// A completion in progress: what the text was before the word, and the candidates cycled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cycle {
    head: String,
    cands: Vec<String>,
    at: usize,
}

/// The candidates for the last word of `text` (after `head`), given names for `@` and for
/// arguments.
fn candidates(head: &str, word: &str, at_names: &[String], names: &[String]) -> Vec<String> {
    let lower = word.to_lowercase();
    let pool: Vec<String> = if head.is_empty() && word.starts_with('/') {
        COMMANDS.iter().map(|(c, _)| (*c).to_owned()).collect()
    } else if head.trim() == "/group" {
        GROUP_SUBS.iter().map(|s| (*s).to_owned()).collect()
    } else if let Some(w) = word.strip_prefix('@') {
        let w = w.to_lowercase();
        return at_names
            .iter()
            .filter(|n| n.to_lowercase().starts_with(&w))
            .map(|n| format!("@{n}"))
            .collect();
    } else {
        names.to_vec()
    };
    pool.into_iter()
        .filter(|c| c.to_lowercase().starts_with(&lower))
        .collect()
}

/// Splits `text` at the start of its last word.
fn split_last_word(text: &str) -> (&str, &str) {
    let start = text.rfind(char::is_whitespace).map_or(0, |i| {
        i + text[i..].chars().next().map_or(1, char::len_utf8)
    });
    text.split_at(start)
}

/// Who `@` completes to in the shown conversation: a group's members, those who spoke last
/// first (then the rest by name), without me; a friend's name in a private conversation.
pub fn at_names(s: &State) -> Vec<String> {
    let Some(t) = s.current() else {
        return Vec::new();
    };
    let me = s.my_id();
    let mut out: Vec<String> = Vec::new();
    let mut push = |n: &str| {
        let n = nfc(n);
        if !n.is_empty() && !out.contains(&n) {
            out.push(n);
        }
    };
    if t.kind == Kind::Private {
        push(&t.name);
        return out;
    }
    let members = t.members.as_deref().unwrap_or_default();
    for m in t.messages.values().rev().take(500) {
        if let Some(u) = &m.sender
            && u.user_id != me
            && (members.is_empty() || members.iter().any(|x| x.0 == u.user_id))
        {
            push(&u.name);
        }
    }
    let mut rest: Vec<&(u64, String)> = members.iter().filter(|m| m.0 != me).collect();
    rest.sort_by(|a, b| a.1.cmp(&b.1));
    for m in rest {
        push(&m.1);
    }
    out
}

/// Tab (or Shift-Tab with `back`): completes the composer's last word or steps the cycle.
pub(super) fn tab(s: &mut State, back: bool) {
    if let Some(c) = &mut s.completion {
        let n = c.cands.len();
        c.at = if back {
            (c.at + n - 1) % n
        } else {
            (c.at + 1) % n
        };
        let text = format!("{}{} ", c.head, c.cands[c.at]);
        let list = listing(c);
        s.composer.set(&text);
        s.notice(list);
        return;
    }
    let text = s.composer.text().to_owned();
    let (head, word) = split_last_word(&text);
    // After a command that takes a person, people only (not group names).
    let people = [
        "/msg",
        "/add",
        "/unfriend",
        "/block",
        "/unblock",
        "/accept",
        "/decline",
    ];
    let names = if people.contains(&head.trim()) {
        let mut v: Vec<String> = s
            .friends
            .iter()
            .filter_map(|f| f.user.as_ref().map(|u| u.name.clone()))
            .chain(
                s.requests
                    .iter()
                    .filter_map(|r| r.from.as_ref().map(|u| u.name.clone())),
            )
            .collect();
        v.sort();
        v.dedup();
        v
    } else {
        s.names()
    };
    let cands = candidates(head, word, &at_names(s), &names);
    match cands.len() {
        0 => s.notice(format!("nothing to complete for {word:?}")),
        1 => s.composer.set(&format!("{head}{} ", cands[0])),
        n => {
            let at = if back { n - 1 } else { 0 };
            let c = Cycle {
                head: head.to_owned(),
                cands,
                at,
            };
            s.composer.set(&format!("{head}{} ", c.cands[at]));
            s.notice(listing(&c));
            s.completion = Some(c);
        }
    }
}

/// The candidates with the one in the composer in brackets.
fn listing(c: &Cycle) -> String {
    c.cands
        .iter()
        .enumerate()
        .map(|(i, n)| {
            if i == c.at {
                format!("[{n}]")
            } else {
                n.clone()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_subcommands_and_names() {
        let (h, w) = split_last_word("/ac");
        assert_eq!(candidates(h, w, &[], &[]), vec!["/accept".to_owned()]);
        assert_eq!(candidates("", "/", &[], &[]).len(), COMMANDS.len());
        assert_eq!(
            candidates("/group ", "cr", &[], &[]),
            vec!["create".to_owned()]
        );
        let names = vec!["张三".to_owned(), "张三丰".to_owned(), "alice".to_owned()];
        assert_eq!(
            candidates("/msg ", "AL", &[], &names),
            vec!["alice".to_owned()]
        );
        let at = vec!["王五".to_owned(), "李四".to_owned()];
        assert_eq!(candidates("hi ", "@", &at, &names), vec!["@王五", "@李四"]);
        assert_eq!(candidates("hi ", "@李", &at, &names), vec!["@李四"]);
        assert!(
            candidates("hi ", "@张", &at, &names).is_empty(),
            "not a member"
        );
    }
}
