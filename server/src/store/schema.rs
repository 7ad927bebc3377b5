//! The embedded (SQLite) schema. The MySQL schema is `schema.sql` at the repository root; both
//! hold the same tables and keys.

/// Bumped when the schema changes; recorded in `schema_version`. (2: resume tokens in their own
/// table, `messages.group_change`, group name keys; 3: blocks; 4: devices.client and
/// devices.address; 5: group bans; 6: account states, deleted groups, invitations, audit log;
/// 7: the message search index; 8: replies and reactions.)
pub const SCHEMA_VERSION: i64 = 8;

/// The oldest version this server migrates from (2 is the first release's layout).
pub const OLDEST_MIGRATABLE: i64 = 2;

/// One step of the schema, from `to - 1` to `to`, for each store. A new database gets the whole
/// schema at once (SQLITE_SCHEMA, schema.sql), which already holds every step; an existing one
/// runs the steps it lacks, in order, each recorded in `schema_version`. Each step is safe to run
/// again (MySQL DDL is not transactional): `IF NOT EXISTS` throughout.
pub struct Migration {
    pub to: i64,
    pub what: &'static str,
    pub sqlite: &'static str,
    pub mysql: &'static str,
}

pub const MIGRATIONS: &[Migration] = &[
    Migration {
        to: 3,
        what: "blocks (users blocked by a user)",
        sqlite: "CREATE TABLE IF NOT EXISTS blocks (
        user_id INTEGER NOT NULL,
        blocked_id INTEGER NOT NULL,
        created_ms INTEGER NOT NULL,
        PRIMARY KEY (user_id, blocked_id)
    ) WITHOUT ROWID;
    CREATE INDEX IF NOT EXISTS blocks_blocked ON blocks(blocked_id);",
        mysql: "CREATE TABLE IF NOT EXISTS blocks (
        user_id BIGINT NOT NULL,
        blocked_id BIGINT NOT NULL,
        created_ms BIGINT NOT NULL,
        PRIMARY KEY (user_id, blocked_id),
        KEY blocks_blocked (blocked_id)
    ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin",
    },
    Migration {
        to: 4,
        what: "devices.client and devices.address (ListDevices)",
        // SQLite: the step runs in its transaction with its version row, once.
        sqlite: "ALTER TABLE devices ADD COLUMN client TEXT NOT NULL DEFAULT '';
    ALTER TABLE devices ADD COLUMN address TEXT NOT NULL DEFAULT '';",
        mysql: "ALTER TABLE devices ADD COLUMN IF NOT EXISTS client VARCHAR(64) NOT NULL DEFAULT '', \
            ADD COLUMN IF NOT EXISTS address VARCHAR(64) NOT NULL DEFAULT ''",
    },
    Migration {
        to: 5,
        what: "group_bans",
        sqlite: "CREATE TABLE IF NOT EXISTS group_bans (
        group_id INTEGER NOT NULL,
        user_id INTEGER NOT NULL,
        banned_by INTEGER NOT NULL,
        created_ms INTEGER NOT NULL,
        PRIMARY KEY (group_id, user_id)
    ) WITHOUT ROWID;",
        mysql: "CREATE TABLE IF NOT EXISTS group_bans (
        group_id BIGINT NOT NULL,
        user_id BIGINT NOT NULL,
        banned_by BIGINT NOT NULL,
        created_ms BIGINT NOT NULL,
        PRIMARY KEY (group_id, user_id)
    ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin",
    },
    Migration {
        to: 6,
        what: "users.disabled_ms/deleted_ms/is_admin, chat_groups.deleted_ms, invites, audit_log",
        sqlite: "ALTER TABLE users ADD COLUMN disabled_ms INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE users ADD COLUMN deleted_ms INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE users ADD COLUMN is_admin INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE chat_groups ADD COLUMN deleted_ms INTEGER NOT NULL DEFAULT 0;
    CREATE TABLE IF NOT EXISTS invites (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        secret_hash BLOB NOT NULL,
        uses INTEGER NOT NULL,
        used INTEGER NOT NULL DEFAULT 0,
        created_ms INTEGER NOT NULL,
        expires_ms INTEGER NOT NULL,
        revoked INTEGER NOT NULL DEFAULT 0,
        created_by TEXT NOT NULL,
        note TEXT NOT NULL
    );
    CREATE TABLE IF NOT EXISTS audit_log (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        at_ms INTEGER NOT NULL,
        actor_id INTEGER NOT NULL,
        actor TEXT NOT NULL,
        action TEXT NOT NULL,
        target TEXT NOT NULL,
        detail TEXT NOT NULL
    );",
        mysql: "ALTER TABLE users ADD COLUMN IF NOT EXISTS disabled_ms BIGINT NOT NULL DEFAULT 0, \
            ADD COLUMN IF NOT EXISTS deleted_ms BIGINT NOT NULL DEFAULT 0, \
            ADD COLUMN IF NOT EXISTS is_admin TINYINT NOT NULL DEFAULT 0;
    ALTER TABLE chat_groups ADD COLUMN IF NOT EXISTS deleted_ms BIGINT NOT NULL DEFAULT 0;
    CREATE TABLE IF NOT EXISTS invites (
        id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
        secret_hash VARBINARY(32) NOT NULL,
        uses INT NOT NULL,
        used INT NOT NULL DEFAULT 0,
        created_ms BIGINT NOT NULL,
        expires_ms BIGINT NOT NULL,
        revoked TINYINT NOT NULL DEFAULT 0,
        created_by VARCHAR(64) NOT NULL,
        note TEXT NOT NULL
    ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
    CREATE TABLE IF NOT EXISTS audit_log (
        id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
        at_ms BIGINT NOT NULL,
        actor_id BIGINT NOT NULL,
        actor VARCHAR(64) NOT NULL,
        action VARCHAR(64) NOT NULL,
        target VARCHAR(255) NOT NULL,
        detail TEXT NOT NULL
    ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin",
    },
    Migration {
        to: 7,
        what: "message_search (full-text index of text messages), search_backfill",
        sqlite: "CREATE VIRTUAL TABLE IF NOT EXISTS message_search USING fts5(terms, content = '', contentless_delete = 1, tokenize = 'ascii');
    CREATE TABLE IF NOT EXISTS search_backfill (
        id INTEGER PRIMARY KEY,
        upto INTEGER NOT NULL,
        target INTEGER NOT NULL
    );
    INSERT OR IGNORE INTO search_backfill (id, upto, target)
        SELECT 1, 0, COALESCE(MAX(message_id), 0) FROM messages;",
        mysql: "CREATE TABLE IF NOT EXISTS message_search (
        message_id BIGINT NOT NULL PRIMARY KEY,
        terms MEDIUMTEXT NOT NULL,
        FULLTEXT KEY message_search_terms (terms)
    ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
    CREATE TABLE IF NOT EXISTS search_backfill (
        id BIGINT NOT NULL PRIMARY KEY,
        upto BIGINT NOT NULL,
        target BIGINT NOT NULL
    ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
    INSERT IGNORE INTO search_backfill (id, upto, target)
        SELECT 1, 0, COALESCE(MAX(message_id), 0) FROM messages",
    },
    Migration {
        to: 8,
        what: "messages.reply_to and reactions_seq, reactions",
        sqlite: "ALTER TABLE messages ADD COLUMN reply_to INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE messages ADD COLUMN reactions_seq INTEGER NOT NULL DEFAULT 0;
    CREATE TABLE IF NOT EXISTS reactions (
        thread_id INTEGER NOT NULL,
        target_seq INTEGER NOT NULL,
        user_id INTEGER NOT NULL,
        emoji TEXT NOT NULL,
        seq INTEGER NOT NULL,
        PRIMARY KEY (thread_id, target_seq, user_id, emoji)
    ) WITHOUT ROWID;",
        mysql: "ALTER TABLE messages ADD COLUMN IF NOT EXISTS reply_to BIGINT NOT NULL DEFAULT 0, \
            ADD COLUMN IF NOT EXISTS reactions_seq BIGINT NOT NULL DEFAULT 0;
    CREATE TABLE IF NOT EXISTS reactions (
        thread_id BIGINT NOT NULL,
        target_seq BIGINT NOT NULL,
        user_id BIGINT NOT NULL,
        emoji VARCHAR(64) NOT NULL,
        seq BIGINT NOT NULL,
        PRIMARY KEY (thread_id, target_seq, user_id, emoji)
    ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin",
    },
];

/// The steps a database at version `found` needs, or why it cannot be served.
pub fn steps_from(found: Option<i64>) -> Result<Vec<&'static Migration>, super::StoreError> {
    match found {
        Some(v) if v > SCHEMA_VERSION => Err(super::StoreError::Unavailable(format!(
            "the database has schema version {v}, newer than this server's {SCHEMA_VERSION}: upgrade the server"
        ))),
        Some(v) if v < OLDEST_MIGRATABLE => Err(super::StoreError::Unavailable(format!(
            "the database has schema version {v}, older than any this server migrates from ({OLDEST_MIGRATABLE})"
        ))),
        Some(v) => Ok(MIGRATIONS.iter().filter(|m| m.to > v).collect()),
        None => Err(super::StoreError::Unavailable(
            "the database has a schema_version table but no version recorded".into(),
        )),
    }
}

pub const SQLITE_SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS schema_version (
    version INTEGER NOT NULL PRIMARY KEY,
    applied_ms INTEGER NOT NULL
);

-- Accounts. name_key is the NFC-normalized, case-folded name: the uniqueness key.
-- 6: disabled_ms, deactivated by an admin at (0: active); deleted_ms, deleted by its user at
-- (0: not deleted). A deleted account keeps its row with an empty name, so its messages keep
-- a sender. is_admin: a server admin.
CREATE TABLE IF NOT EXISTS users (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    name_key TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    event_seq INTEGER NOT NULL DEFAULT 0,
    last_seen_ms INTEGER NOT NULL DEFAULT 0,
    disabled_ms INTEGER NOT NULL DEFAULT 0,
    deleted_ms INTEGER NOT NULL DEFAULT 0,
    is_admin INTEGER NOT NULL DEFAULT 0
);

-- Device sessions: one per login.
CREATE TABLE IF NOT EXISTS devices (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id INTEGER NOT NULL REFERENCES users(id),
    name TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    last_seen_ms INTEGER NOT NULL,
    revoked INTEGER NOT NULL DEFAULT 0,
    client TEXT NOT NULL DEFAULT '',
    address TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS devices_user ON devices(user_id);

-- Resume tokens of device sessions, stored only as SHA-256 hashes. A token stays valid until it
-- is used; then it expires after a grace period (expires_ms, 0 = not used yet) and the resume
-- hands out a new one. Several processes of one session (a watcher and a sender) each keep a
-- valid token this way.
CREATE TABLE IF NOT EXISTS device_tokens (
    token_hash BLOB NOT NULL PRIMARY KEY,
    device_id INTEGER NOT NULL,
    expires_ms INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS device_tokens_device ON device_tokens(device_id);

-- The durable per-user event stream (friend requests, invitations, membership changes).
CREATE TABLE IF NOT EXISTS user_events (
    user_id INTEGER NOT NULL,
    event_seq INTEGER NOT NULL,
    ts_ms INTEGER NOT NULL,
    payload BLOB NOT NULL,
    PRIMARY KEY (user_id, event_seq)
) WITHOUT ROWID;

-- Friend requests with their state (1 pending, 2 accepted, 3 declined, 4 cancelled).
CREATE TABLE IF NOT EXISTS friend_requests (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    from_id INTEGER NOT NULL,
    to_id INTEGER NOT NULL,
    note TEXT NOT NULL,
    state INTEGER NOT NULL,
    created_ms INTEGER NOT NULL,
    answered_ms INTEGER NOT NULL DEFAULT 0,
    thread_id INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS friend_requests_to ON friend_requests(to_id, state);
CREATE INDEX IF NOT EXISTS friend_requests_from ON friend_requests(from_id, state);

-- Friendships, one row per direction.
CREATE TABLE IF NOT EXISTS friendships (
    user_id INTEGER NOT NULL,
    friend_id INTEGER NOT NULL,
    thread_id INTEGER NOT NULL,
    since_ms INTEGER NOT NULL,
    PRIMARY KEY (user_id, friend_id)
) WITHOUT ROWID;

-- Groups; each has one thread.
CREATE TABLE IF NOT EXISTS chat_groups (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    thread_id INTEGER NOT NULL,
    name TEXT NOT NULL,
    name_key TEXT NOT NULL,
    description TEXT NOT NULL,
    open INTEGER NOT NULL,
    owner_id INTEGER NOT NULL,
    member_count INTEGER NOT NULL DEFAULT 0,
    created_ms INTEGER NOT NULL,
    deleted_ms INTEGER NOT NULL DEFAULT 0
);

-- Group members with their role (1 member, 2 admin, 3 owner).
CREATE TABLE IF NOT EXISTS group_members (
    group_id INTEGER NOT NULL,
    user_id INTEGER NOT NULL,
    role INTEGER NOT NULL,
    joined_ms INTEGER NOT NULL,
    PRIMARY KEY (group_id, user_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS group_members_user ON group_members(user_id);

-- Pending group invitations.
CREATE TABLE IF NOT EXISTS group_invites (
    group_id INTEGER NOT NULL,
    user_id INTEGER NOT NULL,
    inviter_id INTEGER NOT NULL,
    created_ms INTEGER NOT NULL,
    PRIMARY KEY (group_id, user_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS group_invites_user ON group_invites(user_id);

-- Threads: kind 1 private (user_a < user_b), 2 group (user_a, user_b NULL). last_seq is the per-thread sequence,
-- allocated by an atomic update inside each insert transaction.
CREATE TABLE IF NOT EXISTS threads (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind INTEGER NOT NULL,
    group_id INTEGER NOT NULL DEFAULT 0,
    user_a INTEGER,
    user_b INTEGER,
    last_seq INTEGER NOT NULL DEFAULT 0,
    activity_id INTEGER NOT NULL,
    created_ms INTEGER NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS threads_pair ON threads(user_a, user_b);

-- Who may read a thread; active members may also send and receive pushes. A former member
-- reads up to left_seq. read_seq is the user's read marker.
CREATE TABLE IF NOT EXISTS thread_members (
    thread_id INTEGER NOT NULL,
    user_id INTEGER NOT NULL,
    active INTEGER NOT NULL,
    read_seq INTEGER NOT NULL DEFAULT 0,
    left_seq INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (thread_id, user_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS thread_members_user ON thread_members(user_id);

-- Per-device delivery markers.
CREATE TABLE IF NOT EXISTS device_cursors (
    device_id INTEGER NOT NULL,
    thread_id INTEGER NOT NULL,
    delivered_seq INTEGER NOT NULL,
    PRIMARY KEY (device_id, thread_id)
) WITHOUT ROWID;

-- Thread entries, keyed by (thread_id, seq). Nothing is deleted on delivery. client_msg_id is
-- NULL for entries no client sent (group changes), so the dedupe key ignores them.
CREATE TABLE IF NOT EXISTS messages (
    thread_id INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    message_id INTEGER NOT NULL UNIQUE,
    sender_id INTEGER NOT NULL,
    sender_device_id INTEGER NOT NULL,
    client_msg_id TEXT,
    kind INTEGER NOT NULL,
    body TEXT NOT NULL,
    target_message_id INTEGER NOT NULL DEFAULT 0,
    group_change BLOB,
    created_ms INTEGER NOT NULL,
    recalled INTEGER NOT NULL DEFAULT 0,
    edited_ms INTEGER NOT NULL DEFAULT 0,
    reply_to INTEGER NOT NULL DEFAULT 0,
    reactions_seq INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (thread_id, seq)
) WITHOUT ROWID;
CREATE UNIQUE INDEX IF NOT EXISTS messages_dedupe ON messages(sender_device_id, client_msg_id);

-- Who blocked whom (3): the blocked user cannot send friend requests, DM or invite the blocker.
CREATE TABLE IF NOT EXISTS blocks (
    user_id INTEGER NOT NULL,
    blocked_id INTEGER NOT NULL,
    created_ms INTEGER NOT NULL,
    PRIMARY KEY (user_id, blocked_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS blocks_blocked ON blocks(blocked_id);

-- Users barred from a group (5): no rejoin, invitation or search result.
CREATE TABLE IF NOT EXISTS group_bans (
    group_id INTEGER NOT NULL,
    user_id INTEGER NOT NULL,
    banned_by INTEGER NOT NULL,
    created_ms INTEGER NOT NULL,
    PRIMARY KEY (group_id, user_id)
) WITHOUT ROWID;

-- Invitation codes for registration (6). The code is `ID.SECRET`; only SHA-256(SECRET) is kept.
CREATE TABLE IF NOT EXISTS invites (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    secret_hash BLOB NOT NULL,
    uses INTEGER NOT NULL,
    used INTEGER NOT NULL DEFAULT 0,
    created_ms INTEGER NOT NULL,
    expires_ms INTEGER NOT NULL,
    revoked INTEGER NOT NULL DEFAULT 0,
    created_by TEXT NOT NULL,
    note TEXT NOT NULL
);

-- Every admin and moderation action (6): who, what, when, to whom.
CREATE TABLE IF NOT EXISTS audit_log (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at_ms INTEGER NOT NULL,
    actor_id INTEGER NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    detail TEXT NOT NULL
);

-- Message search (7): a text message's terms (store/search.rs: words, CJK bigrams), rowid =
-- message_id, written in the message's own transaction. Contentless:
-- only the inverted index is kept (no copy of the terms), a cheaper write.
CREATE VIRTUAL TABLE IF NOT EXISTS message_search USING fts5(terms, content = '', contentless_delete = 1, tokenize = 'ascii');

-- Messages stored before the index existed are indexed in the background, oldest first: up to
-- `upto` done, `target` the newest to do. No row: nothing to do.
CREATE TABLE IF NOT EXISTS search_backfill (
    id INTEGER PRIMARY KEY,
    upto INTEGER NOT NULL,
    target INTEGER NOT NULL
);

-- Reactions (8): who reacted to which TEXT message (thread, target_seq) with what, and the seq
-- of the REACTION_ADDED entry. One row per user and emoji; a removal deletes the row.
CREATE TABLE IF NOT EXISTS reactions (
    thread_id INTEGER NOT NULL,
    target_seq INTEGER NOT NULL,
    user_id INTEGER NOT NULL,
    emoji TEXT NOT NULL,
    seq INTEGER NOT NULL,
    PRIMARY KEY (thread_id, target_seq, user_id, emoji)
) WITHOUT ROWID;
"#;
