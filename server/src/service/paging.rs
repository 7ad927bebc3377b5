//! Pages of a list cut to fit a frame: the one rule every list reply follows.

use confab_wire::pb;
use confab_wire::{Body, Envelope};
use prost::Message;

/// A reply that is one page of a list with a `has_more` flag.
pub(super) trait Page: Message + Default {
    type Item;
    /// The page's entries and its `has_more` flag.
    fn parts(&mut self) -> (&mut Vec<Self::Item>, &mut bool);
    fn into_body(self) -> Body;
}

macro_rules! page {
    ($($ty:ident { $items:ident: $item:ident }),* $(,)?) => {$(
        impl Page for pb::$ty {
            type Item = pb::$item;
            fn parts(&mut self) -> (&mut Vec<pb::$item>, &mut bool) {
                (&mut self.$items, &mut self.has_more)
            }
            fn into_body(self) -> Body {
                Body::$ty(self)
            }
        }
    )*};
}

page!(
    UserList { users: Profile },
    FriendList { friends: Friend },
    // Both directions are cut as one list in `incoming`, then split (friends.rs).
    FriendRequestList {
        incoming: FriendRequest
    },
    GroupList { groups: Group },
    GroupMemberList {
        members: GroupMember
    },
    ThreadList { threads: Thread },
    MessagePage {
        messages: ChatMessage
    },
    EventPage { events: UserEvent },
    AdminUserList { users: AdminUser },
    AdminGroupList { groups: AdminGroup },
    AdminAuditPage {
        entries: AuditEntry
    },
    SearchResults { hits: SearchHit },
);

/// Which end of a page gives way when it does not fit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Cut {
    /// A forward page (lists, sync): the last entries go, `has_more` says more follow.
    Back,
    /// A backward page (history): the oldest entries go, `has_more` says older remain.
    Front,
}

/// Drops entries until the page, sent as a reply, is at most `max` bytes; sets `has_more` if
/// any were dropped. One entry always stays: an empty page that says `has_more` would never
/// advance (the configuration keeps every single entry within a frame).
pub(super) fn fit<P: Page>(mut page: P, max: usize, cut: Cut) -> P {
    // The envelope around an empty page with the largest req_id, less the empty page's
    // one-byte length: a page's reply is this plus its length's varint plus its length.
    let shell = Envelope::new(u64::MAX, P::default().into_body())
        .encoded_len()
        .saturating_sub(1);
    let reply_len = |p: &P| {
        let len = p.encoded_len();
        shell + prost::encoding::encoded_len_varint(len as u64) + len
    };
    let more = std::mem::replace(page.parts().1, true);
    // Measured with `has_more` set, as it is sent once anything is dropped.
    let mut dropped = false;
    while page.parts().0.len() > 1 && reply_len(&page) > max {
        let items = page.parts().0;
        let n = (items.len() / 8).max(1);
        match cut {
            Cut::Front => drop(items.drain(..n)),
            Cut::Back => items.truncate(items.len() - n),
        }
        dropped = true;
    }
    *page.parts().1 = more || dropped;
    page
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

    use super::*;

    fn msg(seq: u64, body: &str) -> pb::ChatMessage {
        pb::ChatMessage {
            seq,
            body: body.into(),
            ..Default::default()
        }
    }

    fn page(n: u64) -> pb::MessagePage {
        pb::MessagePage {
            thread_id: 7,
            messages: (1..=n).map(|s| msg(s, &"x".repeat(100))).collect(),
            has_more: false,
            last_seq: n,
        }
    }

    fn sent_len(p: &pb::MessagePage) -> usize {
        Envelope::new(u64::MAX, Body::MessagePage(p.clone())).encoded_len()
    }

    #[test]
    fn a_page_that_fits_is_unchanged() {
        let p = page(5);
        let mut more = p.clone();
        more.has_more = true;
        // The measure has `has_more` set (a cut page says so), so that is the size to allow.
        let max = sent_len(&more);
        assert_eq!(fit(p.clone(), max, Cut::Back), p);
        assert_eq!(fit(more.clone(), max, Cut::Front), more);
    }

    #[test]
    fn a_forward_page_loses_its_last_entries_and_says_more() {
        let p = page(20);
        let max = sent_len(&page(10));
        let cut = fit(p, max, Cut::Back);
        assert!(cut.has_more);
        assert!(sent_len(&cut) <= max, "{} > {max}", sent_len(&cut));
        assert!(cut.messages.len() >= 9 && cut.messages.len() <= 10);
        assert_eq!(cut.messages[0].seq, 1);
    }

    #[test]
    fn a_backward_page_loses_its_first_entries() {
        let cut = fit(page(20), sent_len(&page(10)), Cut::Front);
        assert!(cut.has_more);
        assert_eq!(cut.messages.last().map(|m| m.seq), Some(20));
        assert!(cut.messages[0].seq > 1);
    }

    #[test]
    fn the_measure_is_the_reply_as_sent() {
        // The largest page that fits exactly is kept whole; one byte less and it is cut.
        let mut p = page(12);
        p.has_more = true;
        let max = sent_len(&p);
        p.has_more = false;
        assert_eq!(fit(p.clone(), max, Cut::Back).messages.len(), 12);
        assert!(fit(p, max - 1, Cut::Back).messages.len() < 12);
    }

    #[test]
    fn one_entry_always_stays() {
        let cut = fit(page(3), 10, Cut::Back);
        assert_eq!(cut.messages.len(), 1);
        assert!(cut.has_more);
    }
}
