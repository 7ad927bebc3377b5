//! Replies and reactions on the client side (protocol 1.7): how a REACTION entry changes the
//! counts shown under its message, how a fresh copy of a message keeps the newer counts, and
//! how a recall or an edit reaches the quotes of the replies to it. Pure functions, used by
//! the cache and the terminal client alike.

use confab_wire::pb;
use unicode_segmentation::UnicodeSegmentation;

/// The server's excerpt length (PROTOCOL.md §5.6.2), for quotes the client updates itself.
const EXCERPT_MAX_BYTES: usize = 120;

/// Whether an entry is a reaction change.
pub fn is_reaction(m: &pb::ChatMessage) -> bool {
    matches!(
        pb::MessageKind::try_from(m.kind),
        Ok(pb::MessageKind::ReactionAdded | pb::MessageKind::ReactionRemoved)
    )
}

/// Applies a REACTION_ADDED / REACTION_REMOVED entry to its target, unless the target's counts
/// already include it (its `reactions_seq` is at or past the entry). `me` decides `mine`.
/// Returns whether anything changed.
pub fn apply_reaction(target: &mut pb::ChatMessage, entry: &pb::ChatMessage, me: u64) -> bool {
    if entry.seq <= target.reactions_seq || target.recalled {
        return false;
    }
    target.reactions_seq = entry.seq;
    let mine = entry.sender.as_ref().is_some_and(|u| u.user_id == me);
    let added = entry.kind == pb::MessageKind::ReactionAdded as i32;
    let pos = target.reactions.iter().position(|r| r.emoji == entry.body);
    match (added, pos) {
        (true, Some(i)) => {
            let r = &mut target.reactions[i];
            r.count = r.count.saturating_add(1);
            r.mine |= mine;
        }
        (true, None) => target.reactions.push(pb::Reaction {
            emoji: entry.body.clone(),
            count: 1,
            mine,
        }),
        (false, Some(i)) => {
            let r = &mut target.reactions[i];
            r.count = r.count.saturating_sub(1);
            if mine {
                r.mine = false;
            }
            if r.count == 0 {
                target.reactions.remove(i);
            }
        }
        (false, None) => {}
    }
    true
}

/// A fresh copy of a message replaces an older one, but keeps the older one's reactions when
/// those are newer (a push or a search hit carries none).
pub fn keep_newer_reactions(fresh: &mut pb::ChatMessage, old: &pb::ChatMessage) {
    if old.reactions_seq > fresh.reactions_seq {
        fresh.reactions = old.reactions.clone();
        fresh.reactions_seq = old.reactions_seq;
    }
}

/// Brings the quote of a reply up to date with a RECALL or EDIT of the quoted message.
/// Returns whether it changed.
pub fn amend_quote(reply: &mut pb::ChatMessage, amend: &pb::ChatMessage) -> bool {
    let Some(q) = reply.quote.as_mut() else {
        return false;
    };
    if q.message_id != amend.target_message_id || amend.target_message_id == 0 {
        return false;
    }
    if amend.kind == pb::MessageKind::Recall as i32 {
        q.recalled = true;
        q.excerpt.clear();
        q.truncated = false;
    } else if amend.kind == pb::MessageKind::Edit as i32 {
        let (e, more) = excerpt(&amend.body);
        q.excerpt = e;
        q.truncated = more;
    } else {
        return false;
    }
    true
}

/// The start of a text, whole grapheme clusters, as the server cuts it.
pub fn excerpt(body: &str) -> (String, bool) {
    let mut end = 0;
    for (i, g) in body.grapheme_indices(true) {
        if i + g.len() > EXCERPT_MAX_BYTES {
            return (body[..end].to_owned(), true);
        }
        end = i + g.len();
    }
    (body.to_owned(), false)
}

/// A quote for a reply the client is still sending, from the message it answers.
pub fn quote_of(m: &pb::ChatMessage) -> pb::Quote {
    let (excerpt, truncated) = excerpt(&m.body);
    pb::Quote {
        message_id: m.message_id,
        seq: m.seq,
        sender: m.sender.clone(),
        excerpt,
        truncated,
        recalled: m.recalled,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reaction(seq: u64, user: u64, emoji: &str, added: bool) -> pb::ChatMessage {
        pb::ChatMessage {
            seq,
            kind: if added {
                pb::MessageKind::ReactionAdded
            } else {
                pb::MessageKind::ReactionRemoved
            } as i32,
            body: emoji.into(),
            target_message_id: 7,
            sender: Some(pb::User {
                user_id: user,
                name: String::new(),
            }),
            ..Default::default()
        }
    }

    #[test]
    fn entries_count_once_and_never_below_a_snapshot() {
        let mut m = pb::ChatMessage {
            message_id: 7,
            reactions: vec![pb::Reaction {
                emoji: "👍".into(),
                count: 2,
                mine: false,
            }],
            reactions_seq: 10,
            ..Default::default()
        };
        // Already counted in the snapshot: ignored.
        assert!(!apply_reaction(&mut m, &reaction(9, 1, "👍", true), 1));
        assert!(apply_reaction(&mut m, &reaction(11, 1, "👍", true), 1));
        assert!(apply_reaction(&mut m, &reaction(12, 2, "🎉", true), 1));
        // The same entry twice (a push and then a sync): once.
        assert!(!apply_reaction(&mut m, &reaction(12, 2, "🎉", true), 1));
        assert_eq!(m.reactions.len(), 2);
        assert_eq!((m.reactions[0].count, m.reactions[0].mine), (3, true));
        assert!(apply_reaction(&mut m, &reaction(13, 1, "👍", false), 1));
        assert_eq!((m.reactions[0].count, m.reactions[0].mine), (2, false));
        assert!(apply_reaction(&mut m, &reaction(14, 2, "🎉", false), 1));
        assert_eq!(m.reactions.len(), 1, "a count of 0 goes");
        let mut older = m.clone();
        older.reactions.clear();
        older.reactions_seq = 0;
        keep_newer_reactions(&mut older, &m);
        assert_eq!(older.reactions, m.reactions);
    }

    #[test]
    fn quotes_follow_recalls_and_edits_and_cut_whole_graphemes() {
        let mut r = pb::ChatMessage {
            quote: Some(pb::Quote {
                message_id: 7,
                excerpt: "old".into(),
                ..Default::default()
            }),
            ..Default::default()
        };
        let edit = pb::ChatMessage {
            kind: pb::MessageKind::Edit as i32,
            target_message_id: 7,
            body: "新".repeat(50),
            ..Default::default()
        };
        assert!(amend_quote(&mut r, &edit));
        let q = r.quote.clone().unwrap_or_default();
        assert_eq!((q.excerpt.chars().count(), q.truncated), (40, true));
        let recall = pb::ChatMessage {
            kind: pb::MessageKind::Recall as i32,
            target_message_id: 7,
            ..Default::default()
        };
        assert!(amend_quote(&mut r, &recall));
        let q = r.quote.unwrap_or_default();
        assert!(q.recalled && q.excerpt.is_empty());
        // A flag is two code points, never cut between them.
        let (e, more) = excerpt(&format!("{}🇨🇳", "a".repeat(117)));
        assert_eq!((e.len(), more), (117, true));
    }
}
