//! The chat pane: the rows [`layout::chat_rows`] lays out (day separators, `HH:MM`, the sender
//! gutter, text wrapped by display width with a hanging indent, marks on my own messages, the
//! "new" divider), styled and drawn.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};

use super::paint::{fg, put, rule};
use crate::app::keymap::Action;
use crate::app::layout::{self, GUTTER, MarkKind, Row};
use crate::app::{State, ThreadView};
use crate::text::clock::day_label;

/// All lines of a thread at a pane width.
pub fn lines(s: &State, t: &ThreadView, pane_w: usize) -> Vec<Line<'static>> {
    window(s, t, pane_w, usize::MAX).0
}

/// The last `need` (or a few more) lines of a thread, and whether they start at the oldest
/// loaded message.
pub fn window(s: &State, t: &ThreadView, pane_w: usize, need: usize) -> (Vec<Line<'static>>, bool) {
    let laid = layout::chat_rows(s, t, pane_w, need);
    let lines = laid.rows.iter().map(|r| line(s, r, pane_w)).collect();
    (lines, laid.complete)
}

/// One row, styled.
fn line(s: &State, row: &Row, pane_w: usize) -> Line<'static> {
    let dim = Style::default().add_modifier(Modifier::DIM);
    let mark_style = |k: MarkKind| match k {
        MarkKind::Edited | MarkKind::Sending | MarkKind::Sent => dim,
        MarkKind::Read => fg(s, Color::Green),
        MarkKind::Failed => fg(s, Color::Red),
    };
    match row {
        Row::Day(day) => Line::styled(rule(s, &day_label(*day), pane_w), dim),
        Row::New => Line::styled(rule(s, "new", pane_w), fg(s, Color::Red)),
        Row::Start => Line::styled(rule(s, "start of conversation", pane_w), dim),
        Row::Mark(m) => Line::from(vec![
            Span::raw(" ".repeat(GUTTER)),
            Span::styled(m.text.clone(), mark_style(m.kind)),
        ]),
        Row::Reactions(pieces) => {
            // Mine stand out (reversed also without colours); the rest are dim.
            let mine = if s.settings.color {
                fg(s, Color::Cyan).add_modifier(Modifier::BOLD)
            } else {
                Style::default().add_modifier(Modifier::REVERSED)
            };
            let mut spans = vec![Span::raw(" ".repeat(GUTTER))];
            for (i, (p, m)) in pieces.iter().enumerate() {
                if i > 0 {
                    spans.push(Span::raw("  "));
                }
                spans.push(Span::styled(p.clone(), if *m { mine } else { dim }));
            }
            Line::from(spans)
        }
        Row::Text {
            head,
            text,
            dim: dimmed,
            mark,
            hl,
            picked,
        } => {
            let mut spans = Vec::new();
            match head {
                Some(h) => {
                    let name_style = if h.sender_id == s.my_id() {
                        fg(s, Color::Cyan)
                    } else {
                        fg(s, sender_color(h.sender_id)).add_modifier(Modifier::BOLD)
                    };
                    spans.push(Span::styled(format!(" {} ", h.time), dim));
                    spans.push(Span::styled(h.name.clone(), name_style));
                    spans.push(Span::raw(" ".repeat(h.pad + 1)));
                }
                None => spans.push(Span::raw(" ".repeat(GUTTER))),
            }
            let mut body = if *dimmed { dim } else { Style::default() };
            if *picked {
                body = body.add_modifier(Modifier::REVERSED);
            }
            // Mentions of me and highlight words: bold yellow (bold underlined without colour).
            let hl_style = if s.settings.color {
                body.fg(Color::Yellow).add_modifier(Modifier::BOLD)
            } else {
                body.add_modifier(Modifier::BOLD | Modifier::UNDERLINED)
            };
            let piece = |r: std::ops::Range<usize>| text.get(r).unwrap_or_default().to_owned();
            let mut at = 0;
            for r in hl {
                if r.start > at {
                    spans.push(Span::styled(piece(at..r.start), body));
                }
                spans.push(Span::styled(piece(r.clone()), hl_style));
                at = r.end;
            }
            if at < text.len() || hl.is_empty() {
                spans.push(Span::styled(piece(at..text.len()), body));
            }
            if let Some(m) = mark {
                spans.push(Span::styled(m.text.clone(), mark_style(m.kind)));
            }
            Line::from(spans)
        }
    }
}

/// Draws the chat pane: the newest rows at the bottom, scrolled up by the thread's
/// `scroll`, with the marks for the top of the conversation and for more below.
pub(super) fn draw_chat(buf: &mut Buffer, s: &State, r: Rect) {
    let h = usize::from(r.height);
    let w = usize::from(r.width);
    let dim = Style::default().add_modifier(Modifier::DIM);
    let Some(t) = s.current() else {
        let help = [
            "No conversation yet.".to_owned(),
            String::new(),
            format!(
                "{}  add a friend (or /add NAME)",
                s.settings.keymap.first(Action::AddFriend)
            ),
            format!(
                "{}  create or join a group",
                s.settings.keymap.first(Action::Group)
            ),
            format!(
                "{}  friend requests",
                s.settings.keymap.first(Action::Requests)
            ),
            format!("{}  all keys", s.settings.keymap.first(Action::Help)),
        ];
        for (i, l) in help.iter().enumerate().take(h) {
            put(
                buf,
                r.x + 2,
                r.y + 1 + u16::try_from(i).unwrap_or(0),
                l,
                w.saturating_sub(2),
                dim,
            );
        }
        return;
    };
    let (lines, complete) = window(s, t, w, h + t.scroll);
    if lines.is_empty() {
        let msg = if t.loading {
            "loading…"
        } else {
            "No messages yet. Say hello!"
        };
        put(buf, r.x + 2, r.y + 1, msg, w.saturating_sub(2), dim);
        return;
    }
    let total = lines.len();
    let scroll = t.scroll.min(total.saturating_sub(h));
    let end = total - scroll;
    let start = end.saturating_sub(h);
    // Short threads sit at the bottom, next to the composer, like every chat.
    let top_pad = h.saturating_sub(end - start);
    for (i, line) in lines[start..end].iter().enumerate() {
        let y = r.y + u16::try_from(top_pad + i).unwrap_or(0);
        buf.set_line(r.x, y, line, r.width);
    }
    if start == 0 && complete && t.loading {
        put(
            buf,
            r.x,
            r.y,
            &rule(s, "loading older messages…", w),
            w,
            dim,
        );
    }
    if scroll > 0 {
        let label = if t.new_below > 0 {
            format!(
                "{} new below ({})",
                t.new_below,
                s.settings.keymap.first(Action::ScrollBottom)
            )
        } else {
            format!(
                "more below ({})",
                s.settings.keymap.first(Action::ScrollBottom)
            )
        };
        let st = fg(s, Color::Yellow).add_modifier(Modifier::BOLD);
        let line = Line::styled(rule(s, &label, w), st);
        buf.set_line(r.x, r.bottom() - 1, &line, r.width);
    }
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
