-- confab schema for MySQL 8 and MariaDB 10.11 (InnoDB). Applied by confab-server at start when
-- the tables are missing; `schema_version` records what was applied so later versions can
-- migrate. Statements end with a semicolon at the end of a line (the server splits on that).
--
-- Character set utf8mb4 throughout (CJK and 4-byte emoji round-trip). Collation utf8mb4_bin on
-- purpose: names are compared through `name_key`, which the server normalizes itself (NFC,
-- Unicode lowercase), so the database must compare bytes exactly and never fold case or accents
-- a second time with rules of its own (which differ between MySQL and MariaDB versions).
-- Everything a send touches is keyed by thread_id, so the schema shards by thread.

-- Which schema versions were applied.
CREATE TABLE IF NOT EXISTS schema_version (
    version BIGINT NOT NULL PRIMARY KEY,
    applied_ms BIGINT NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- Accounts; name_key is the normalized name, the uniqueness key; event_seq numbers user events.
CREATE TABLE IF NOT EXISTS users (
    id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    name VARCHAR(64) NOT NULL,
    name_key VARCHAR(128) NOT NULL,
    password_hash VARCHAR(255) NOT NULL,
    created_ms BIGINT NOT NULL,
    event_seq BIGINT NOT NULL DEFAULT 0,
    last_seen_ms BIGINT NOT NULL DEFAULT 0,
    -- 6: deactivated at / deleted at (0: not); a deleted account keeps its row with an empty
    -- name, so its messages keep a sender. is_admin: a server admin.
    disabled_ms BIGINT NOT NULL DEFAULT 0,
    deleted_ms BIGINT NOT NULL DEFAULT 0,
    is_admin TINYINT NOT NULL DEFAULT 0,
    UNIQUE KEY users_name_key (name_key)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- Device sessions, one per login; revoked at logout and on password change.
CREATE TABLE IF NOT EXISTS devices (
    id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    user_id BIGINT NOT NULL,
    name VARCHAR(64) NOT NULL,
    created_ms BIGINT NOT NULL,
    last_seen_ms BIGINT NOT NULL,
    revoked TINYINT NOT NULL DEFAULT 0,
    client VARCHAR(64) NOT NULL DEFAULT '',
    address VARCHAR(64) NOT NULL DEFAULT '',
    KEY devices_user (user_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- Resume tokens as SHA-256 hashes; a used token expires after a grace period (0 = unused).
CREATE TABLE IF NOT EXISTS device_tokens (
    token_hash VARBINARY(32) NOT NULL PRIMARY KEY,
    device_id BIGINT NOT NULL,
    expires_ms BIGINT NOT NULL DEFAULT 0,
    KEY device_tokens_device (device_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- The durable per-user event stream (protobuf-encoded UserEvent payloads).
CREATE TABLE IF NOT EXISTS user_events (
    user_id BIGINT NOT NULL,
    event_seq BIGINT NOT NULL,
    ts_ms BIGINT NOT NULL,
    payload MEDIUMBLOB NOT NULL,
    PRIMARY KEY (user_id, event_seq)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- Friend requests (state 1 pending, 2 accepted, 3 declined, 4 cancelled).
CREATE TABLE IF NOT EXISTS friend_requests (
    id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    from_id BIGINT NOT NULL,
    to_id BIGINT NOT NULL,
    note TEXT NOT NULL,
    state TINYINT NOT NULL,
    created_ms BIGINT NOT NULL,
    answered_ms BIGINT NOT NULL DEFAULT 0,
    thread_id BIGINT NOT NULL DEFAULT 0,
    KEY friend_requests_to (to_id, state),
    KEY friend_requests_from (from_id, state)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- Friendships, one row per direction, with the pair's private thread.
CREATE TABLE IF NOT EXISTS friendships (
    user_id BIGINT NOT NULL,
    friend_id BIGINT NOT NULL,
    thread_id BIGINT NOT NULL,
    since_ms BIGINT NOT NULL,
    PRIMARY KEY (user_id, friend_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- Groups; each has one thread; name_key serves case-insensitive search.
CREATE TABLE IF NOT EXISTS chat_groups (
    id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    thread_id BIGINT NOT NULL,
    name VARCHAR(255) NOT NULL,
    name_key VARCHAR(255) NOT NULL,
    description TEXT NOT NULL,
    open TINYINT NOT NULL,
    owner_id BIGINT NOT NULL,
    member_count INT NOT NULL DEFAULT 0,
    created_ms BIGINT NOT NULL,
    deleted_ms BIGINT NOT NULL DEFAULT 0
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- Group members with roles (1 member, 2 admin, 3 owner).
CREATE TABLE IF NOT EXISTS group_members (
    group_id BIGINT NOT NULL,
    user_id BIGINT NOT NULL,
    role TINYINT NOT NULL,
    joined_ms BIGINT NOT NULL,
    PRIMARY KEY (group_id, user_id),
    KEY group_members_user (user_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- Pending group invitations.
CREATE TABLE IF NOT EXISTS group_invites (
    group_id BIGINT NOT NULL,
    user_id BIGINT NOT NULL,
    inviter_id BIGINT NOT NULL,
    created_ms BIGINT NOT NULL,
    PRIMARY KEY (group_id, user_id),
    KEY group_invites_user (user_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- Threads (kind 1 private with user_a < user_b, 2 group with both NULL); last_seq is allocated
-- by `UPDATE threads SET last_seq = LAST_INSERT_ID(last_seq + 1)` inside each insert transaction.
CREATE TABLE IF NOT EXISTS threads (
    id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    kind TINYINT NOT NULL,
    group_id BIGINT NOT NULL DEFAULT 0,
    user_a BIGINT NULL,
    user_b BIGINT NULL,
    last_seq BIGINT NOT NULL DEFAULT 0,
    activity_id BIGINT NOT NULL,
    created_ms BIGINT NOT NULL,
    UNIQUE KEY threads_pair (user_a, user_b)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- Thread membership with the read marker; former members read up to left_seq.
CREATE TABLE IF NOT EXISTS thread_members (
    thread_id BIGINT NOT NULL,
    user_id BIGINT NOT NULL,
    active TINYINT NOT NULL,
    read_seq BIGINT NOT NULL DEFAULT 0,
    left_seq BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (thread_id, user_id),
    KEY thread_members_user (user_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- Per-device delivery markers.
CREATE TABLE IF NOT EXISTS device_cursors (
    device_id BIGINT NOT NULL,
    thread_id BIGINT NOT NULL,
    delivered_seq BIGINT NOT NULL,
    PRIMARY KEY (device_id, thread_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- Thread entries keyed by (thread_id, seq); message_id unique; (device, client_msg_id) unique
-- for dedupe (NULL for entries no client sent). Nothing is deleted on delivery.
CREATE TABLE IF NOT EXISTS messages (
    thread_id BIGINT NOT NULL,
    seq BIGINT NOT NULL,
    message_id BIGINT NOT NULL,
    sender_id BIGINT NOT NULL,
    sender_device_id BIGINT NOT NULL,
    client_msg_id VARCHAR(64) NULL,
    kind TINYINT NOT NULL,
    body TEXT NOT NULL,
    target_message_id BIGINT NOT NULL DEFAULT 0,
    group_change BLOB NULL,
    created_ms BIGINT NOT NULL,
    recalled TINYINT NOT NULL DEFAULT 0,
    edited_ms BIGINT NOT NULL DEFAULT 0,
    -- 8: the message a reply answers (0: none); the seq of the newest reaction entry to it.
    reply_to BIGINT NOT NULL DEFAULT 0,
    reactions_seq BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (thread_id, seq),
    UNIQUE KEY messages_id (message_id),
    UNIQUE KEY messages_dedupe (sender_device_id, client_msg_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- Who blocked whom (schema 3): the blocked user cannot send friend requests, DM or invite the
-- blocker.
CREATE TABLE IF NOT EXISTS blocks (
    user_id BIGINT NOT NULL,
    blocked_id BIGINT NOT NULL,
    created_ms BIGINT NOT NULL,
    PRIMARY KEY (user_id, blocked_id),
    KEY blocks_blocked (blocked_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- Users barred from a group (schema 5): no rejoin, invitation or search result.
CREATE TABLE IF NOT EXISTS group_bans (
    group_id BIGINT NOT NULL,
    user_id BIGINT NOT NULL,
    banned_by BIGINT NOT NULL,
    created_ms BIGINT NOT NULL,
    PRIMARY KEY (group_id, user_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- Invitation codes for registration (6). The code is `ID.SECRET`; only SHA-256(SECRET) is kept.
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

-- Every admin and moderation action (6): who, what, when, to whom.
CREATE TABLE IF NOT EXISTS audit_log (
    id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    at_ms BIGINT NOT NULL,
    actor_id BIGINT NOT NULL,
    actor VARCHAR(64) NOT NULL,
    action VARCHAR(64) NOT NULL,
    target VARCHAR(255) NOT NULL,
    detail TEXT NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- Message search (7): a text message's terms (server/src/store/search.rs: words, CJK bigrams,
-- each prefixed with "zq" so that none is below InnoDB's 3-character minimum), written in the
-- message's own transaction.
CREATE TABLE IF NOT EXISTS message_search (
    message_id BIGINT NOT NULL PRIMARY KEY,
    terms MEDIUMTEXT NOT NULL,
    FULLTEXT KEY message_search_terms (terms)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- Messages stored before the index existed are indexed in the background (no row: none).
CREATE TABLE IF NOT EXISTS search_backfill (
    id BIGINT NOT NULL PRIMARY KEY,
    upto BIGINT NOT NULL,
    target BIGINT NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- Reactions (8): who reacted to which TEXT message (thread, target_seq) with what, and the seq
-- of the REACTION_ADDED entry. One row per user and emoji; a removal deletes the row.
CREATE TABLE IF NOT EXISTS reactions (
    thread_id BIGINT NOT NULL,
    target_seq BIGINT NOT NULL,
    user_id BIGINT NOT NULL,
    emoji VARCHAR(64) NOT NULL,
    seq BIGINT NOT NULL,
    PRIMARY KEY (thread_id, target_seq, user_id, emoji)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
