//! How the admin tool prints replies: aligned columns, times in UTC (RFC 3339).

use confab_wire::pb;

/// A unix-ms time as RFC 3339 (UTC, seconds), "-" for 0.
fn when(ms: i64) -> String {
    if ms <= 0 {
        return "-".into();
    }
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms.unsigned_abs());
    humantime::format_rfc3339_seconds(t).to_string()
}

/// `s` padded with spaces to `w` terminal columns (CJK characters take two).
fn pad(s: &str, w: usize) -> String {
    let used = unicode_width::UnicodeWidthStr::width(s);
    format!("{s}{}", " ".repeat(w.saturating_sub(used)))
}

fn name(u: Option<&pb::User>) -> String {
    match u {
        Some(u) if u.name.is_empty() => format!("(deleted account {})", u.user_id),
        Some(u) => u.name.clone(),
        None => "-".into(),
    }
}

fn flags(u: &pb::AdminUser) -> String {
    let mut f = Vec::new();
    if u.admin {
        f.push("admin");
    }
    if u.disabled_ms != 0 {
        f.push("deactivated");
    }
    if u.deleted_ms != 0 {
        f.push("deleted");
    }
    if f.is_empty() {
        "-".into()
    } else {
        f.join(",")
    }
}

pub fn users(list: &[pb::AdminUser]) {
    println!(
        "{:>6}  {:<24} {:<20} {:<20} {:>7} {:>6}  flags",
        "id", "name", "created", "last seen", "devices", "groups"
    );
    for u in list {
        println!(
            "{:>6}  {} {:<20} {:<20} {:>7} {:>6}  {}",
            u.user.as_ref().map_or(0, |u| u.user_id),
            pad(&name(u.user.as_ref()), 24),
            when(u.created_ms),
            when(u.last_seen_ms),
            u.devices,
            u.groups,
            flags(u)
        );
    }
}

pub fn user(u: &pb::AdminUser) {
    println!("id:        {}", u.user.as_ref().map_or(0, |u| u.user_id));
    println!("name:      {}", name(u.user.as_ref()));
    println!("created:   {}", when(u.created_ms));
    println!("last seen: {}", when(u.last_seen_ms));
    println!("flags:     {}", flags(u));
    if u.disabled_ms != 0 {
        println!("deactivated: {}", when(u.disabled_ms));
    }
    if u.deleted_ms != 0 {
        println!("deleted:   {}", when(u.deleted_ms));
    }
    println!("groups:    {}", u.groups);
    println!("sessions:  {}", u.devices);
    if !u.sessions.is_empty() {
        sessions(&u.sessions);
    }
}

pub fn sessions(list: &[pb::Device]) {
    println!(
        "{:>6}  {:<20} {:<20} {:<20} {:<20} address",
        "device", "name", "client", "created", "last seen"
    );
    for d in list {
        println!(
            "{:>6}  {:<20} {:<20} {:<20} {:<20} {}",
            d.device_id,
            d.name,
            d.client,
            when(d.created_ms),
            when(d.last_seen_ms),
            d.address
        );
    }
}

pub fn groups(list: &[pb::AdminGroup]) {
    println!(
        "{:>6}  {:<24} {:<16} {:>7} {:<6} {:<20}",
        "id", "name", "owner", "members", "open", "last activity"
    );
    for g in list {
        let Some(info) = g.group.as_ref() else {
            continue;
        };
        println!(
            "{:>6}  {} {} {:>7} {:<6} {:<20}",
            info.group_id,
            pad(&info.name, 24),
            pad(&name(g.owner.as_ref()), 16),
            info.member_count,
            if info.open { "open" } else { "closed" },
            when(g.last_activity_ms)
        );
    }
}

pub fn group(g: &pb::AdminGroup) {
    let Some(info) = g.group.as_ref() else {
        return;
    };
    println!("id:        {}", info.group_id);
    println!("name:      {}", info.name);
    println!("topic:     {}", info.description);
    println!("owner:     {}", name(g.owner.as_ref()));
    println!("members:   {}", info.member_count);
    println!(
        "open:      {}",
        if info.open {
            "yes"
        } else {
            "no (invitation only)"
        }
    );
    println!("created:   {}", when(info.created_ms));
    println!("activity:  {}", when(g.last_activity_ms));
    println!("thread:    {}", info.thread_id);
}

pub fn invite_terms(i: &pb::AdminInvite) -> String {
    let state = if i.revoked {
        "revoked".to_owned()
    } else if i.expires_ms != 0 && i.expires_ms <= crate::ids::now_ms() {
        "expired".to_owned()
    } else if i.used >= i.uses {
        "used up".to_owned()
    } else {
        "valid".to_owned()
    };
    format!(
        "invitation {}: used {}/{}, expires {}, {state}{}",
        i.invite_id,
        i.used,
        i.uses,
        if i.expires_ms == 0 {
            "never".to_owned()
        } else {
            when(i.expires_ms)
        },
        if i.note.is_empty() {
            String::new()
        } else {
            format!(" ({})", i.note)
        }
    )
}

pub fn invites(list: &[pb::AdminInvite]) {
    for i in list {
        println!(
            "{}  [made {} by {}]",
            invite_terms(i),
            when(i.created_ms),
            i.created_by
        );
    }
    if list.is_empty() {
        println!("no invitations");
    }
}

pub fn stats(s: &pb::AdminStats) {
    println!(
        "users:        {} ({} deactivated)",
        s.users, s.disabled_users
    );
    println!("groups:       {}", s.groups);
    println!("messages:     {}", s.messages);
    println!(
        "store:        {:.1} MiB",
        s.store_bytes as f64 / 1_048_576.0
    );
    println!(
        "online here:  {} users, {} connections",
        s.online_users, s.connections
    );
}

pub fn audit(entries: &[pb::AuditEntry]) {
    if !entries.is_empty() {
        println!(
            "{:>5}  {:<20}  {:<16} {:<22} target",
            "id", "when", "who", "action"
        );
    }
    for e in entries {
        let detail = if e.detail.is_empty() {
            String::new()
        } else {
            format!("  ({})", e.detail)
        };
        println!(
            "{:>5}  {}  {} {:<22} {}{detail}",
            e.id,
            when(e.at_ms),
            pad(&e.actor, 16),
            e.action,
            e.target
        );
    }
    if entries.is_empty() {
        println!("the audit log is empty");
    }
}
