//! The chat pane's lines: day separators, `HH:MM`, the sender gutter, text wrapped by display
//! width with a hanging indent, marks on my own messages, the "new" divider.

use confab_wire::pb;
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};

use super::{fg, rule};
use crate::app::{Kind, SendState, State, ThreadView};
use crate::text::{self, truncate, width};

/// Columns before the text: pad, `HH:MM`, space, 8-cell sender, space.
pub const GUTTER: usize = 16;
const SENDER_W: usize = 8;

/// (year, month, day) of a day number since 1970-01-01 (proleptic Gregorian).
pub fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// (day number, "HH:MM") of a timestamp shifted by the configured offset.
pub fn day_time(ts_ms: i64, offset_s: i64) -> (i64, String) {
    let secs = ts_ms.div_euclid(1000) + offset_s;
    let day = secs.div_euclid(86_400);
    let t = secs.rem_euclid(86_400);
    (day, format!("{:02}:{:02}", t / 3600, (t % 3600) / 60))
}

pub fn day_label(day: i64) -> String {
    let (y, m, d) = civil(day);
    format!("{y:04}-{m:02}-{d:02}")
}

fn system_text(m: &pb::ChatMessage) -> String {
    use pb::group_change::Kind as G;
    let Some(c) = &m.group_change else {
        return m.body.clone();
    };
    let actor = c.actor.as_ref().map_or("someone", |u| u.name.as_str());
    let subject = c.subject.as_ref().map_or("someone", |u| u.name.as_str());
    match G::try_from(c.kind) {
        Ok(G::Created) => format!("{actor} created the group"),
        Ok(G::Joined) => format!("{subject} joined"),
        Ok(G::Left) => format!("{subject} left"),
        Ok(G::Kicked) => format!("{actor} removed {subject}"),
        Ok(G::Updated) => format!("{actor} updated the group"),
        _ => format!("{actor} changed {subject}'s role"),
    }
}

struct Item<'a> {
    ts_ms: i64,
    sender: String,
    sender_id: u64,
    body: String,
    style: Style,
    suffix: Option<(String, Style)>,
    msg: Option<&'a pb::ChatMessage>,
    system: bool,
}

/// All lines of a thread at a pane width.
pub fn lines<'a>(s: &'a State, t: &'a ThreadView, pane_w: usize) -> Vec<Line<'a>> {
    window(s, t, pane_w, usize::MAX).0
}

/// The last `need` (or a few more) lines of a thread, and whether they start at the oldest
/// loaded message. Only the messages that can be on screen are laid out, so a frame costs the
/// same with 10,000 messages in memory as with 20.
pub fn window<'a>(
    s: &'a State,
    t: &'a ThreadView,
    pane_w: usize,
    need: usize,
) -> (Vec<Line<'a>>, bool) {
    let amb = s.settings.ambiguous;
    let text_w0 = pane_w.saturating_sub(GUTTER).max(8);
    let mut from_seq = 0;
    if t.search.is_none() && need != usize::MAX {
        // A lower bound (separators and marks only add lines): when the loop stops early the
        // window holds at least `need` lines.
        let mut est = t.pending.len();
        for m in t.messages.values().rev() {
            if est > need {
                break;
            }
            est += text::wrap(&m.body, text_w0, amb).len();
            from_seq = m.seq;
        }
    }
    let complete = t
        .messages
        .keys()
        .next()
        .is_none_or(|first| from_seq <= *first);
    let me = s.my_id();
    let my_name = s.me.as_ref().map_or("me".to_owned(), |u| u.name.clone());
    let text_w = pane_w.saturating_sub(GUTTER).max(8);
    let query = t.search.as_ref().map(|q| q.to_lowercase());
    let dim = Style::default().add_modifier(Modifier::DIM);

    // The newest of my messages the peer has read (DM read receipt).
    let read_mark = if t.kind == Kind::Private {
        t.messages
            .values()
            .filter(|m| m.sender.as_ref().is_some_and(|u| u.user_id == me))
            .filter(|m| m.seq <= t.peer_read_seq)
            .map(|m| m.seq)
            .next_back()
    } else {
        None
    };

    let mut items: Vec<Item<'a>> = Vec::new();
    for m in t.messages.range(from_seq..).map(|(_, m)| m) {
        let kind = pb::MessageKind::try_from(m.kind).unwrap_or(pb::MessageKind::Text);
        if matches!(kind, pb::MessageKind::Edit | pb::MessageKind::Recall) {
            continue;
        }
        let system = kind == pb::MessageKind::System;
        let (body, style) = if system {
            (system_text(m), dim)
        } else if m.recalled {
            ("(message recalled)".to_owned(), dim)
        } else {
            (m.body.clone(), Style::default())
        };
        if let Some(q) = &query
            && !body.to_lowercase().contains(q)
        {
            continue;
        }
        let mut suffix = None;
        if m.edited_ts_ms != 0 && !m.recalled {
            suffix = Some((" (edited)".to_owned(), dim));
        }
        if Some(m.seq) == read_mark {
            suffix = Some((" ✓ read".to_owned(), fg(s, Color::Green)));
        }
        let sender = m.sender.as_ref();
        items.push(Item {
            ts_ms: m.server_ts_ms,
            sender: sender.map_or(String::new(), |u| u.name.clone()),
            sender_id: sender.map_or(0, |u| u.user_id),
            body,
            style,
            suffix,
            msg: Some(m),
            system,
        });
    }
    if query.is_none() {
        for p in &t.pending {
            let (label, st) = match &p.state {
                SendState::Queued => (" (sending…)".to_owned(), dim),
                SendState::Acked(_) => (" (sent)".to_owned(), dim),
                SendState::Failed(e) => (
                    format!(
                        " (failed: {e}; {} retries)",
                        s.settings.keymap.first(crate::app::keymap::Action::Retry)
                    ),
                    fg(s, Color::Red),
                ),
            };
            items.push(Item {
                ts_ms: p.created_ms,
                sender: my_name.clone(),
                sender_id: me,
                body: p.body.clone(),
                style: Style::default(),
                suffix: Some((label, st)),
                msg: None,
                system: false,
            });
        }
    }

    let mut out = Vec::new();
    let mut last_day = None;
    let mut prev: Option<(u64, i64)> = None;
    let mut marker_done = t.marker_seq >= t.last_seq || (!complete && t.marker_seq < from_seq);
    for it in items {
        // Each message with the offset in effect at its own time (DST).
        let (day, hm) = day_time(it.ts_ms, s.settings.zone.offset_s(it.ts_ms));
        if last_day != Some(day) {
            out.push(Line::styled(rule(s, &day_label(day), pane_w), dim));
            last_day = Some(day);
            prev = None;
        }
        if !marker_done
            && let Some(m) = it.msg
            && m.seq > t.marker_seq
            && it.sender_id != me
        {
            out.push(Line::styled(rule(s, "new", pane_w), fg(s, Color::Red)));
            marker_done = true;
        }
        let same = prev.is_some_and(|(id, ts)| {
            id == it.sender_id && !it.system && it.ts_ms - ts < 5 * 60 * 1000
        });
        prev = (!it.system).then_some((it.sender_id, it.ts_ms));
        let name_style = if it.sender_id == me {
            fg(s, Color::Cyan)
        } else {
            fg(s, sender_color(it.sender_id)).add_modifier(Modifier::BOLD)
        };
        let gutter_name = if same || it.system {
            String::new()
        } else {
            truncate(&it.sender, SENDER_W, amb)
        };
        let pad = SENDER_W.saturating_sub(width(&gutter_name, amb));
        let wrapped = text::wrap(&it.body, text_w, amb);
        let n = wrapped.len();
        for (i, l) in wrapped.into_iter().enumerate() {
            let mut spans: Vec<Span<'a>> = Vec::new();
            if i == 0 {
                spans.push(Span::styled(format!(" {hm} "), dim));
                spans.push(Span::styled(gutter_name.clone(), name_style));
                spans.push(Span::raw(" ".repeat(pad + 1)));
            } else {
                spans.push(Span::raw(" ".repeat(GUTTER)));
            }
            let lw = width(&l, amb);
            spans.push(Span::styled(l, it.style));
            if i + 1 == n
                && let Some((sfx, st)) = &it.suffix
            {
                // The mark goes on its own line when it does not fit after the text.
                if lw + width(sfx, amb) <= text_w {
                    spans.push(Span::styled(sfx.clone(), *st));
                } else {
                    out.push(Line::from(spans));
                    spans = vec![
                        Span::raw(" ".repeat(GUTTER)),
                        Span::styled(sfx.trim_start().to_owned(), *st),
                    ];
                }
            }
            out.push(Line::from(spans));
        }
    }
    (out, complete)
}

/// A stable colour per user from the 16-colour palette (never black/white/grey).
fn sender_color(id: u64) -> Color {
    const P: [Color; 6] = [
        Color::Green,
        Color::Yellow,
        Color::Blue,
        Color::Magenta,
        Color::LightRed,
        Color::LightGreen,
    ];
    P[(id % P.len() as u64) as usize]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calendar() {
        assert_eq!(civil(0), (1970, 1, 1));
        assert_eq!(day_label(20_576), "2026-05-03");
        assert_eq!(civil(-1), (1969, 12, 31));
        assert_eq!(day_time(3_600_000 * 25 + 61_000, 0), (1, "01:01".into()));
        assert_eq!(day_time(0, 8 * 3600).1, "08:00");
    }
}
