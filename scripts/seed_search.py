#!/usr/bin/env python3
"""Seeds a stopped embedded store for the search benchmark (scripts/search_bench.sh).

Adds USERS users (all with the password hash of an existing user, so any can log in with its
password), one private thread between the existing user SEARCHER and each of 50 of them, and
private threads pairing the rest; then MESSAGES text messages, mixed English and Chinese,
spread over the threads (the searcher's 50 threads get 5% of them), with gap-free seqs. The
messages are not indexed here: a `search_backfill` row makes the server index them at start,
through its own code, which the benchmark times too.

The texts are built from word lists with a Zipf-like choice, so common words are common and
the benchmark's query words ("会议", "deploy") are found in about 0.5-2% of messages, as real
words are; the phrase "release notes" is put in 0.5% of them.

Usage: seed_search.py DB SEARCHER [--users N] [--messages N] [--seed S]
"""

import argparse
import random
import sqlite3
import time

EN = (
    "the a to and of in is it you that we for on this be are with have not can will do at "
    "but just so what all if about get one like me my up was time there know out now when "
    "how some think see go more then good make your could they our right here back want "
    "need today tomorrow meeting deploy deployment release notes build test server client "
    "bug fix review merge branch ticket patch ship prod staging queue cache index search "
    "latency error timeout crash restart config docs lunch coffee weekend plan team call "
    "please thanks sure okay maybe later soon done check look update issue question answer"
).split()
ZH = (
    "你好 我们 今天 明天 会议 下午 上午 项目 进度 问题 解决 测试 上线 发布 版本 需要 "
    "可以 没有 已经 什么 时候 大家 一起 吃饭 开会 讨论 方案 客户 服务 数据 系统 功能 "
    "文档 代码 提交 合并 分支 周末 时间 地点 准备 完成 检查 更新 谢谢 好的 收到 辛苦 "
    "部署 服务器 数据库 缓存 搜索 索引 延迟 错误 超时 重启 配置 计划 团队 电话 咖啡"
).split()
PUNCT_ZH = ["，", "。", "！", "？", ""]


def zipf_pick(rng, words):
    # Index ~ exponential: the first words are picked far more often than the last.
    i = int(rng.expovariate(1.0 / (len(words) / 6.0)))
    return words[i % len(words)]


def text(rng):
    if rng.random() < 0.5:
        n = rng.randint(4, 14)
        words = [zipf_pick(rng, EN) for _ in range(n)]
        if rng.random() < 0.01:
            # The benchmark's phrase, in 0.5% of messages (its words also come apart).
            words.insert(rng.randint(0, n), "release notes")
        return " ".join(words).capitalize()
    parts = []
    for _ in range(rng.randint(2, 5)):
        parts.append("".join(zipf_pick(rng, ZH) for _ in range(rng.randint(2, 4))))
        parts.append(rng.choice(PUNCT_ZH))
    if rng.random() < 0.2:
        parts.append(" " + " ".join(zipf_pick(rng, EN) for _ in range(rng.randint(1, 4))))
    return "".join(parts)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("db")
    ap.add_argument("searcher")
    ap.add_argument("--users", type=int, default=10_000)
    ap.add_argument("--messages", type=int, default=1_000_000)
    ap.add_argument("--searcher-threads", type=int, default=50)
    ap.add_argument("--seed", type=int, default=7)
    a = ap.parse_args()
    rng = random.Random(a.seed)
    db = sqlite3.connect(a.db)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=OFF")
    row = db.execute(
        "SELECT id, password_hash FROM users WHERE name = ?", (a.searcher,)
    ).fetchone()
    if row is None:
        raise SystemExit(f"no user {a.searcher!r} in {a.db}")
    searcher, pw_hash = row
    now = int(time.time() * 1000)
    start = now - 30 * 86_400_000
    t0 = time.time()
    users = []
    for i in range(a.users - 1):
        name = f"u{i:05d}"
        cur = db.execute(
            "INSERT INTO users (name, name_key, password_hash, created_ms) VALUES (?, ?, ?, ?)",
            (name, name, pw_hash, start),
        )
        users.append(cur.lastrowid)
    # Threads: the searcher with the first N users, then the rest in pairs.
    pairs = [(searcher, u) for u in users[: a.searcher_threads]]
    rest = users[a.searcher_threads :]
    pairs += [(rest[i], rest[i + 1]) for i in range(0, len(rest) - 1, 2)]
    threads = []
    for x, y in pairs:
        lo, hi = min(x, y), max(x, y)
        cur = db.execute(
            "INSERT INTO threads (kind, user_a, user_b, last_seq, activity_id, created_ms) "
            "VALUES (1, ?, ?, 0, 0, ?)",
            (lo, hi, start),
        )
        tid = cur.lastrowid
        threads.append((tid, x, y))
        for u, f in ((x, y), (y, x)):
            db.execute(
                "INSERT INTO thread_members (thread_id, user_id, active) VALUES (?, ?, 1)",
                (tid, u),
            )
            db.execute(
                "INSERT INTO friendships (user_id, friend_id, thread_id, since_ms) VALUES (?, ?, ?, ?)",
                (u, f, tid, start),
            )
    mine = threads[: a.searcher_threads]
    others = threads[a.searcher_threads :]
    seqs = {t[0]: 0 for t in threads}
    last_id = {}
    # Snowflake-like ids: time-ordered and unique (ms << 22 | counter).
    step_ms = (now - start) / a.messages
    batch = []
    for n in range(a.messages):
        tid, x, y = rng.choice(mine) if rng.random() < 0.05 else rng.choice(others)
        seqs[tid] += 1
        ms = int(start + n * step_ms)
        mid = (ms << 22) | (n & 0x3FFFFF)
        sender = x if rng.random() < 0.5 else y
        batch.append((tid, seqs[tid], mid, sender, 0, 1, text(rng), ms))
        last_id[tid] = mid
        if len(batch) == 20_000:
            db.executemany(
                "INSERT INTO messages (thread_id, seq, message_id, sender_id, sender_device_id, "
                "kind, body, created_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                batch,
            )
            batch.clear()
    if batch:
        db.executemany(
            "INSERT INTO messages (thread_id, seq, message_id, sender_id, sender_device_id, "
            "kind, body, created_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            batch,
        )
    for tid, s in seqs.items():
        db.execute(
            "UPDATE threads SET last_seq = ?, activity_id = ? WHERE id = ?",
            (s, last_id.get(tid, 0), tid),
        )
    db.execute("DELETE FROM search_backfill")
    db.execute(
        "INSERT INTO search_backfill (id, upto, target) SELECT 1, 0, MAX(message_id) FROM messages"
    )
    db.commit()
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    print(
        f"seeded {a.users - 1} users, {len(threads)} threads ({a.searcher_threads} of "
        f"{a.searcher}), {a.messages} messages in {time.time() - t0:.1f} s"
    )


if __name__ == "__main__":
    main()
