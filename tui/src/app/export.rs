//! Conversations as plain text: one line per message, `2026-05-03 09:12:05<TAB>张三<TAB>text`,
//! for the log (`log_dir`, like weechat's auto_log) and `/export`. Continuation lines of a
//! multi-line message start with a tab; control characters never reach the file.

use confab_wire::pb;

use super::config::Zone;
use super::layout::system_text;
use crate::text::clock::day_label;
use crate::text::sanitize;

/// The line(s) of one entry, or None for a kind that shows nothing.
pub fn line(m: &pb::ChatMessage, zone: &Zone) -> Option<String> {
    let kind = pb::MessageKind::try_from(m.kind).ok()?;
    let who = m.sender.as_ref().map_or("", |u| u.name.as_str());
    let text = match kind {
        pb::MessageKind::Text if m.recalled => "(message recalled)".to_owned(),
        pb::MessageKind::Text => match &m.quote {
            Some(q) => format!("(reply to {}) {}", quote_line(q), m.body),
            None => m.body.clone(),
        },
        pb::MessageKind::System => format!("-- {}", system_text(m)),
        pb::MessageKind::Edit => format!("(edited a message) {}", m.body),
        pb::MessageKind::Recall => "(recalled a message)".to_owned(),
        pb::MessageKind::ReactionAdded => format!("(reacted {} to a message)", m.body),
        pb::MessageKind::ReactionRemoved => format!("(took back the reaction {})", m.body),
        pb::MessageKind::Unspecified => return None,
    };
    let secs = m.server_ts_ms.div_euclid(1000) + zone.offset_s(m.server_ts_ms);
    let t = secs.rem_euclid(86_400);
    let stamp = format!(
        "{} {:02}:{:02}:{:02}",
        day_label(secs.div_euclid(86_400)),
        t / 3600,
        (t % 3600) / 60,
        t % 60
    );
    let body: Vec<String> = text.split('\n').map(sanitize).collect();
    Some(format!("{stamp}\t{}\t{}", sanitize(who), body.join("\n\t")))
}

/// A quote on one line: `NAME: the start of the text…`.
pub fn quote_line(q: &pb::Quote) -> String {
    let who = q.sender.as_ref().map_or("", |u| u.name.as_str());
    if q.recalled {
        return format!("{who}: (message recalled)");
    }
    let text: String = q.excerpt.split_whitespace().collect::<Vec<_>>().join(" ");
    format!("{who}: {text}{}", if q.truncated { "…" } else { "" })
}

/// A conversation's file name: its name made safe for any file system (`/`, `\`, control
/// characters and a leading dot replaced), groups with `#` in front, `.log` after.
pub fn file_name(name: &str, group: bool) -> String {
    let mut safe: String = name
        .chars()
        .map(|c| {
            if c == '/' || c == '\\' || c.is_control() {
                '_'
            } else {
                c
            }
        })
        .collect();
    if safe.starts_with('.') || safe.is_empty() {
        safe.insert(0, '_');
    }
    format!("{}{safe}.log", if group { "#" } else { "" })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_and_names() {
        let m = pb::ChatMessage {
            sender: Some(pb::User {
                user_id: 2,
                name: "张三".into(),
            }),
            server_ts_ms: 20_576 * 86_400_000 + 9 * 3_600_000 + 12 * 60_000 + 5_000,
            kind: pb::MessageKind::Text as i32,
            body: "第一行\n第二行\x1b[31m".into(),
            ..Default::default()
        };
        assert_eq!(
            line(&m, &Zone::Fixed(0)).unwrap(),
            "2026-05-03 09:12:05\t张三\t第一行\n\t第二行 [31m"
        );
        assert!(
            line(&m, &Zone::Fixed(8 * 3600))
                .unwrap()
                .starts_with("2026-05-03 17:12:05")
        );
        assert_eq!(file_name("研发群", true), "#研发群.log");
        assert_eq!(file_name("../etc", false), "_.._etc.log");
    }
}
