#!/usr/bin/env bash
# End-to-end use of the `confab` command line, as a user's script would do it.
# Inputs: CONFAB (the binary), CONFAB_SERVER (host:port), OUT (a directory for outputs).
# Each user has its own data directory (CONFAB_DATA_DIR), as on separate machines.
set -euo pipefail

as() { local who=$1; shift; CONFAB_DATA_DIR="$OUT/$who" "$CONFAB" "$@"; }

# Passwords come from stdin or the environment, never from arguments.
echo 'hunter2hunter2' | as alice register alice > "$OUT/register_alice.jsonl"
CONFAB_PASSWORD='s3cret-s3cret' as bob register 小明 > "$OUT/register_bob.jsonl"

as alice add 小明 --note 'from the meetup' > "$OUT/add.jsonl"
as bob friends > "$OUT/friends_bob.jsonl"
as bob accept alice > "$OUT/accept.jsonl"

# bob watches while alice sends; the watcher is stopped with SIGTERM (background jobs of a
# script ignore SIGINT; at a terminal, Ctrl-C does the same).
# Started directly, not through the `as` function: $! of a backgrounded function is a subshell,
# and signalling it would leave the confab process running.
CONFAB_DATA_DIR="$OUT/bob" "$CONFAB" watch > "$OUT/watch.jsonl" &
watcher=$!
sleep 1
as alice send --to 小明 '你好, 小明! 👋' > "$OUT/send1.jsonl"
as alice send --to 小明 'second line' > "$OUT/send2.jsonl"
for _ in $(seq 1 50); do
  grep -q 'second line' "$OUT/watch.jsonl" 2>/dev/null && break
  sleep 0.1
done
# A group bob joins: his watch prints the event and the group's SYSTEM entry as typed JSON.
as alice group create 研发群 > "$OUT/group_create.jsonl"
as bob group join 研发群 > "$OUT/group_join.jsonl"
for _ in $(seq 1 50); do
  grep -q '"JOINED"' "$OUT/watch.jsonl" 2>/dev/null && break
  sleep 0.1
done
kill -TERM "$watcher"
wait "$watcher" || true

# A fresh login on another machine, then the thread list shows the messages.
echo 's3cret-s3cret' | as bob2 login 小明 > "$OUT/login_bob2.jsonl"
as bob2 threads > "$OUT/threads_bob2.jsonl"

# Failures: wrong password, unknown user, not a friend, not logged in.
set +e
echo 'wrong-password' | as eve login alice 2> "$OUT/wrong_password.err"
echo "$?" > "$OUT/wrong_password.code"
echo 'whatever-pass' | as eve login nobody_here 2> "$OUT/unknown_user.err"
echo "$?" > "$OUT/unknown_user.code"
as alice send --to nobody_here 'hi' 2> "$OUT/send_unknown.err"
echo "$?" > "$OUT/send_unknown.code"
as nobody threads 2> "$OUT/not_logged_in.err"
echo "$?" > "$OUT/not_logged_in.code"
set -e
echo done > "$OUT/finished"
