//! Groups and popups: members, roles, the header, read-only threads, change lines.

use super::*;

#[test]
fn popups_act_on_the_selection() {
    let mut s = main_state(80, 24);
    update(&mut s, key(KeyCode::F(2)));
    assert!(matches!(s.popup, Some(Popup::Requests { .. })));
    let cmds = update(&mut s, key(KeyCode::Char('a')));
    assert!(matches!(
        &cmds[..],
        [Cmd::Op(Op::Respond {
            request_id: 77,
            accept: true
        })]
    ));
    update(&mut s, key(KeyCode::Esc));
    assert!(s.popup.is_none());
    // Quick switcher: fuzzy.
    update(&mut s, ctrl('k'));
    type_text(&mut s, "ali");
    update(&mut s, key(KeyCode::Enter));
    assert_eq!(s.selected, Some(DM_ALICE));
    // Members: p toggles admin, x kicks.
    update(&mut s, alt(KeyCode::Char('3')));
    update(&mut s, ctrl('k'));
    type_text(&mut s, "研发");
    update(&mut s, key(KeyCode::Enter));
    assert_eq!(s.selected, Some(GROUP));
    let cmds = update(&mut s, key(KeyCode::F(5)));
    assert!(matches!(&cmds[..], [Cmd::Op(Op::Members(5))]));
    update(&mut s, Msg::Done(Done::Members(5, members())));
    update(&mut s, key(KeyCode::Down));
    let cmds = update(&mut s, key(KeyCode::Char('p')));
    assert!(matches!(
        &cmds[..],
        [Cmd::Op(Op::SetRole(5, ZHANG, _, pb::Role::Admin))]
    ));
    // x asks first; a second x removes.
    let cmds = update(&mut s, key(KeyCode::Char('x')));
    assert!(cmds.is_empty(), "{cmds:?}");
    assert!(screen_text(&s).contains("press x again to remove"));
    let cmds = update(&mut s, key(KeyCode::Char('x')));
    assert!(matches!(&cmds[..], [Cmd::Op(Op::Kick(5, ZHANG, _))]));
    // Another key between the two cancels.
    update(&mut s, key(KeyCode::Char('x')));
    update(&mut s, key(KeyCode::Down));
    let cmds = update(&mut s, key(KeyCode::Char('x')));
    assert!(cmds.is_empty(), "{cmds:?}");
}

#[test]
fn members_cannot_kick_or_promote() {
    let mut s = main_state(80, 24);
    let mut t = group_thread(6, 6, 18 * 100_000 + GROUP * 100 + 6);
    if let Some(g) = t.group.as_mut() {
        g.my_role = pb::Role::Member as i32;
    }
    // A fresh state learns the group with the member role.
    s.threads.retain(|x| x.id != GROUP);
    s.selected = None;
    update(&mut s, Msg::Core(Event::Thread(t)));
    assert_eq!(s.selected, Some(GROUP));
    update(&mut s, key(KeyCode::F(5)));
    update(&mut s, Msg::Done(Done::Members(5, members())));
    assert!(screen_text(&s).contains("Esc close") && !screen_text(&s).contains("x kick"));
    let cmds = update(&mut s, key(KeyCode::Char('x')));
    assert!(cmds.is_empty(), "{cmds:?}");
    assert!(screen_text(&s).contains("only the owner and admins can do that"));
}

/// The group header follows joins, leaves, kicks and renames as their entries arrive.
#[test]
fn the_group_header_follows_its_system_entries() {
    use pb::group_change::Kind as Change;
    let mut s = main_state(80, 24);
    assert!(screen_text(&s).contains("(3 members)"));
    let change = |seq: u64, kind: Change, name: &str| {
        let mut m = msg(GROUP, seq, LI, 19, "");
        m.kind = pb::MessageKind::System as i32;
        m.group_change = Some(pb::GroupChange {
            kind: kind as i32,
            actor: Some(user(LI, "李四")),
            subject: Some(user(LI, "李四")),
            name: name.into(),
            ..Default::default()
        });
        Msg::Core(Event::Message(m))
    };
    update(&mut s, change(7, Change::Joined, ""));
    assert!(
        screen_text(&s).contains("(4 members)"),
        "{}",
        screen_text(&s)
    );
    update(&mut s, change(8, Change::Kicked, ""));
    update(&mut s, change(9, Change::Left, ""));
    assert!(screen_text(&s).contains("(2 members)"));
    // The same entry again (a resync) changes nothing.
    update(&mut s, change(9, Change::Left, ""));
    assert!(screen_text(&s).contains("(2 members)"));
    update(&mut s, change(10, Change::Updated, "研发二群"));
    assert!(screen_text(&s).contains("研发二群"));
}

/// Removed from a group: the composer says so and by whom, sending is refused, the history
/// stays readable.
#[test]
fn a_member_removed_from_a_group_gets_a_read_only_thread_saying_why() {
    let mut s = main_state(80, 24);
    let mut m = msg(GROUP, 7, LI, 19, "");
    m.kind = pb::MessageKind::System as i32;
    m.group_change = Some(pb::GroupChange {
        kind: pb::group_change::Kind::Kicked as i32,
        actor: Some(user(LI, "李四")),
        subject: Some(user(ME, "小明")),
        ..Default::default()
    });
    update(&mut s, Msg::Core(Event::Message(m)));
    assert!(
        screen_text(&s).contains("read only: 李四 removed you from this group"),
        "{}",
        screen_text(&s)
    );
    type_text(&mut s, "还在吗");
    let cmds = update(&mut s, key(KeyCode::Enter));
    assert!(!cmds.iter().any(|c| matches!(c, Cmd::Send { .. })));
    assert!(screen_text(&s).contains("you can no longer write here"));
}

/// The list shows mentions beside the unread count, not instead of it.
#[test]
fn the_list_shows_mentions_beside_the_unread_count() {
    let mut s = main_state(80, 24);
    update(&mut s, Msg::Focus(false));
    update(
        &mut s,
        Msg::Core(Event::Message(msg(GROUP, 7, LI, 19, "大家好"))),
    );
    update(
        &mut s,
        Msg::Core(Event::Message(msg(GROUP, 8, LI, 19, "@小明 看一下"))),
    );
    let screen = screen_text(&s);
    assert!(
        screen
            .lines()
            .any(|l| l.contains("研发群") && l.contains("2@1")),
        "{screen}"
    );
}

/// Group changes say what changed: the new role, the new owner, the new name.
#[test]
fn group_change_lines_say_what_changed() {
    use pb::group_change::Kind as Change;
    let mut s = main_state(100, 30);
    let entry = |seq: u64, kind: Change, role: pb::Role, name: &str| {
        let mut m = msg(GROUP, seq, ME, 19, "");
        m.kind = pb::MessageKind::System as i32;
        m.group_change = Some(pb::GroupChange {
            kind: kind as i32,
            actor: Some(user(ME, "小明")),
            subject: Some(user(LI, "王小明")),
            role: role as i32,
            name: name.into(),
            ..Default::default()
        });
        Msg::Core(Event::Message(m))
    };
    update(&mut s, entry(7, Change::RoleChanged, pb::Role::Admin, ""));
    update(&mut s, entry(8, Change::RoleChanged, pb::Role::Member, ""));
    update(
        &mut s,
        entry(9, Change::OwnerTransferred, pb::Role::Owner, ""),
    );
    update(
        &mut s,
        entry(10, Change::Updated, pb::Role::Unspecified, "新名字"),
    );
    let screen = screen_text(&s);
    for line in [
        "小明 made 王小明 an admin",
        "小明 made 王小明 a member (no longer admin)",
        "小明 made 王小明 the owner",
        "updated the group: 新名字, no topic, closed",
    ] {
        assert!(screen.contains(line), "{line}: {screen}");
    }
}

/// F3 while offline: the search fails and says so; it never claims there is no such user.
#[test]
fn a_user_search_that_fails_does_not_say_no_match() {
    let mut s = main_state(80, 24);
    update(&mut s, key(KeyCode::F(3)));
    type_text(&mut s, "bob");
    let cmds = update(&mut s, key(KeyCode::Enter));
    assert!(
        cmds.iter()
            .any(|c| matches!(c, Cmd::Op(Op::SearchUsers(q)) if q == "bob")),
        "{cmds:?}"
    );
    update(
        &mut s,
        Msg::Done(Done::SearchFailed("not connected".into())),
    );
    let screen = screen_text(&s);
    assert!(!screen.contains("no match"), "{screen}");
    assert!(screen.contains("search failed: not connected"), "{screen}");
    // A search that is answered with nothing does say so.
    update(&mut s, key(KeyCode::Enter));
    update(&mut s, Msg::Done(Done::Users(vec![])));
    assert!(screen_text(&s).contains("no match"));
}

/// After `p` the members popup shows the new role as soon as the server has done it (the
/// operation answers with the list as it is now), and after a kick the member is gone.
#[test]
fn the_members_popup_refreshes_after_a_role_change_and_a_kick() {
    let mut s = main_state(80, 24);
    update(&mut s, key(KeyCode::F(5)));
    update(&mut s, Msg::Done(Done::Members(5, members())));
    // The popup's row of a member (`│*张三 … admin │`), not the thread list's.
    let row = |s: &State, name: &str| {
        screen_text(s)
            .lines()
            .find(|l| l.contains(&format!("│*{name}")) || l.contains(&format!("│ {name}")))
            .unwrap_or_default()
            .to_owned()
    };
    assert!(!row(&s, "张三").contains("admin"), "{}", row(&s, "张三"));
    let mut now = members();
    now[1].role = pb::Role::Admin as i32;
    update(
        &mut s,
        Msg::Done(Done::MembersChanged {
            group_id: 5,
            members: now.clone(),
            info: "张三 is now admin".into(),
        }),
    );
    assert!(row(&s, "张三").contains("admin"), "{}", screen_text(&s));
    assert!(screen_text(&s).contains("张三 is now admin"));
    now.remove(1);
    update(
        &mut s,
        Msg::Done(Done::MembersChanged {
            group_id: 5,
            members: now,
            info: "removed 张三".into(),
        }),
    );
    assert!(screen_text(&s).contains("removed 张三"));
    assert!(row(&s, "张三").is_empty(), "{}", screen_text(&s));
    assert!(row(&s, "李四").contains("admin"));
}

/// A group one was removed from says `/close` takes it off the list; `/close` does, shows the
/// next conversation, keeps the choice (`Cmd::SaveHidden`) and the next listing does not bring
/// it back. A new message there does.
#[test]
fn a_read_only_group_can_be_closed_and_stays_closed() {
    let mut s = main_state(80, 24);
    let mut m = msg(GROUP, 7, LI, 19, "");
    m.kind = pb::MessageKind::System as i32;
    m.group_change = Some(pb::GroupChange {
        kind: pb::group_change::Kind::Kicked as i32,
        actor: Some(user(LI, "李四")),
        subject: Some(user(ME, "小明")),
        ..Default::default()
    });
    update(&mut s, Msg::Core(Event::Message(m)));
    assert!(screen_text(&s).contains("/close takes it off the list"));
    type_text(&mut s, "/close");
    let cmds = update(&mut s, key(KeyCode::Enter));
    let saved = cmds.iter().find_map(|c| match c {
        Cmd::SaveHidden { name, hidden } => Some((name.clone(), hidden.clone())),
        _ => None,
    });
    let (name, hidden) = saved.expect("kept for the next run");
    assert_eq!(name, "小明");
    assert!(hidden.contains_key(&GROUP));
    assert!(s.thread(GROUP).is_none());
    assert!(s.selected.is_some() && s.selected != Some(GROUP));
    assert!(!screen_text(&s).contains("#研发群"), "{}", screen_text(&s));
    // The server still lists it (read only): it stays closed.
    let mut t = group_thread(7, 7, *hidden.get(&GROUP).unwrap());
    t.can_send = false;
    update(&mut s, Msg::Threads(vec![(t, 7)]));
    assert!(s.thread(GROUP).is_none());
    // Something new (invited back, a message): it comes back.
    let cmds = update(
        &mut s,
        Msg::Core(Event::Message(msg(GROUP, 8, LI, 20, "欢迎回来"))),
    );
    assert!(s.thread(GROUP).is_some());
    assert!(
        cmds.iter().any(|c| matches!(c, Cmd::LoadThreads)),
        "{cmds:?}"
    );
    assert!(
        cmds.iter()
            .any(|c| matches!(c, Cmd::SaveHidden { hidden, .. } if hidden.is_empty()))
    );
}

/// Groups from the keyboard: create a closed group, rename, set and clear the topic, open and
/// close it, hand it over, decline an invitation. The header shows the topic and that the
/// group is closed, and follows an UPDATED entry.
#[test]
fn groups_are_managed_from_the_keyboard_and_the_header_shows_the_topic() {
    let mut s = main_state(80, 24);
    let run = |s: &mut State, line: &str| {
        type_text(s, line);
        update(s, key(KeyCode::Enter))
    };
    assert!(matches!(
        &run(&mut s, "/group create 读书会 closed")[..],
        [Cmd::Op(Op::CreateGroup(n, false))] if n == "读书会"
    ));
    let upd = |cmds: Vec<Cmd>| match &cmds[..] {
        [Cmd::Op(Op::UpdateGroup(u))] => u.clone(),
        other => panic!("{other:?}"),
    };
    let u = upd(run(&mut s, "/group rename 研发二组"));
    assert_eq!((u.group_id, u.name.as_deref()), (5, Some("研发二组")));
    let u = upd(run(&mut s, "/group topic 周五 10:00 发布"));
    assert_eq!(u.description.as_deref(), Some("周五 10:00 发布"));
    assert!(u.name.is_none() && u.open.is_none());
    assert_eq!(
        upd(run(&mut s, "/group topic")).description.as_deref(),
        Some("")
    );
    assert_eq!(upd(run(&mut s, "/group closed")).open, Some(false));
    assert_eq!(upd(run(&mut s, "/group open")).open, Some(true));
    assert!(matches!(
        &run(&mut s, "/group transfer 李四")[..],
        [Cmd::Op(Op::Transfer(5, n))] if n == "李四"
    ));
    assert!(matches!(
        &run(&mut s, "/group decline 读书会")[..],
        [Cmd::Op(Op::DeclineInvite(n))] if n == "读书会"
    ));
    // The server's UPDATED entry: the header follows.
    let mut m = msg(GROUP, 7, ME, 19, "");
    m.kind = pb::MessageKind::System as i32;
    m.group_change = Some(pb::GroupChange {
        kind: pb::group_change::Kind::Updated as i32,
        actor: Some(user(ME, "小明")),
        name: "研发二组".into(),
        description: "周五发布".into(),
        open: false,
        ..Default::default()
    });
    update(&mut s, Msg::Core(Event::Message(m)));
    let title = screen_text(&s).lines().next().unwrap().to_owned();
    assert!(
        title.contains("#研发二组 (3 members, closed): 周五发布"),
        "{title}"
    );
}

/// A description of a thread older than the entries shown (the core's listing from before a
/// join) does not take the header back; one as new as them does. A conversation described as
/// no longer writable says why in the composer.
#[test]
fn an_older_listing_does_not_take_the_header_back_and_read_only_says_why() {
    let mut s = main_state(80, 24);
    let mut m = msg(GROUP, 7, ZHANG, 19, "");
    m.kind = pb::MessageKind::System as i32;
    m.group_change = Some(pb::GroupChange {
        kind: pb::group_change::Kind::Joined as i32,
        actor: Some(user(9, "王五")),
        subject: Some(user(9, "王五")),
        ..Default::default()
    });
    update(&mut s, Msg::Core(Event::Message(m)));
    let title = |s: &State| screen_text(s).lines().next().unwrap().to_owned();
    assert!(title(&s).contains("(4 members)"), "{}", title(&s));
    // The listing the core had before that entry (last_seq 6, 3 members).
    update(&mut s, Msg::Threads(vec![(group_thread(6, 6, 60), 6)]));
    assert!(title(&s).contains("(4 members)"), "{}", title(&s));
    // The server's own, as new as the entries, wins.
    let mut fresh = group_thread(7, 7, 70);
    fresh.group.as_mut().unwrap().member_count = 5;
    update(&mut s, Msg::Core(Event::Thread(fresh)));
    assert!(title(&s).contains("(5 members)"), "{}", title(&s));
    // The friendship ended (the core describes the conversation again).
    let mut dm_now = dm(DM_ZHANG, ZHANG, 2, 2, 60);
    dm_now.can_send = false;
    update(&mut s, Msg::Core(Event::Thread(dm_now)));
    update(&mut s, alt(KeyCode::Char('2')));
    assert!(
        screen_text(&s).contains("read only: you are no longer friends"),
        "{}",
        screen_text(&s)
    );
}

/// `/group ban NAME` asks the server to ban; the entry says who banned whom; the banned member's
/// own conversation turns read only saying so.
#[test]
fn a_ban_from_the_keyboard_and_its_entry() {
    let mut s = main_state(80, 24);
    type_text(&mut s, "/group ban 李四");
    let cmds = update(&mut s, key(KeyCode::Enter));
    assert!(
        matches!(&cmds[..], [Cmd::Op(Op::Ban(5, n, true))] if n == "李四"),
        "{cmds:?}"
    );
    type_text(&mut s, "/group unban 李四");
    let cmds = update(&mut s, key(KeyCode::Enter));
    assert!(
        matches!(&cmds[..], [Cmd::Op(Op::Ban(5, n, false))] if n == "李四"),
        "{cmds:?}"
    );
    let entry = |seq, subject: u64, name: &str| {
        let mut m = msg(GROUP, seq, ZHANG, 19, "");
        m.kind = pb::MessageKind::System as i32;
        m.group_change = Some(pb::GroupChange {
            kind: pb::group_change::Kind::Banned as i32,
            actor: Some(user(ZHANG, "张三")),
            subject: Some(user(subject, name)),
            ..Default::default()
        });
        Msg::Core(Event::Message(m))
    };
    update(&mut s, entry(7, LI, "李四"));
    assert!(screen_text(&s).contains("张三 banned 李四"));
    update(&mut s, entry(8, ME, "小明"));
    assert!(screen_text(&s).contains("read only: 张三 banned you from this group"));
}
