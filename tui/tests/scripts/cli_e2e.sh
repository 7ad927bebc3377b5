#!/usr/bin/env bash
# End-to-end use of the `confab` command line, as a user's script would do it.
# Inputs: CONFAB (the binary), CONFAB_SERVER (host:port), OUT (a directory for outputs).
# Each user has its own data directory (CONFAB_DATA_DIR), as on separate machines.
set -euo pipefail

as() { local who=$1; shift; CONFAB_DATA_DIR="$OUT/$who" "$CONFAB" "$@"; }
# Waits (at most 5 s) until FILE has a line matching PATTERN; the checks that follow say
# what was missing.
wait_line() {
  for _ in $(seq 1 50); do
    grep -q "$2" "$1" 2>/dev/null && return 0
    sleep 0.1
  done
}

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
wait_line "$OUT/watch.jsonl" 'second line'
# A group bob joins: his watch prints the event and the group's SYSTEM entry as typed JSON.
as alice group create 研发群 > "$OUT/group_create.jsonl"
as bob group join 研发群 > "$OUT/group_join.jsonl"
wait_line "$OUT/watch.jsonl" '"JOINED"'
kill -TERM "$watcher"
wait "$watcher" || true

# A fresh login on another machine, then the thread list shows the messages.
echo 's3cret-s3cret' | as bob2 login 小明 > "$OUT/login_bob2.jsonl"
as bob2 threads > "$OUT/threads_bob2.jsonl"

# Everything else a script does: requests both ways, standard input, history, edits, groups.
mid_of() { grep -o '"message_id":[0-9]*' "$1" | head -1 | cut -d: -f2; }
CONFAB_PASSWORD='carol-password' as carol register carol > "$OUT/register_carol.jsonl"
as carol add alice --note 'hi alice' > "$OUT/add_carol.jsonl"
as carol requests > "$OUT/requests_carol.jsonl"
as alice requests > "$OUT/requests_alice.jsonl"
as carol cancel alice > "$OUT/cancel.jsonl"
as carol add alice > "$OUT/add_carol2.jsonl"
as alice decline carol > "$OUT/decline.jsonl"
as alice add carol > "$OUT/add_alice_carol.jsonl"
as carol accept alice > "$OUT/accept_carol.jsonl"
as carol friends > "$OUT/friends_carol.jsonl"

printf 'line one\nline two\n\nline three\n' | as alice send --to 小明 --lines - > "$OUT/send_lines.jsonl"
echo '一条消息 from stdin' | as alice send --to 小明 --json - > "$OUT/send_stdin.jsonl"
as bob history --to alice > "$OUT/history_all.jsonl"
as bob history --to alice --since 2 --limit 2 > "$OUT/history_since.jsonl"
as bob history --to alice --before 4 > "$OUT/history_before.jsonl"
as bob history --to alice --limit 2 > "$OUT/history_newest.jsonl"
as alice edit --to 小明 "$(mid_of "$OUT/send_stdin.jsonl")" '一条消息 (edited)' > "$OUT/edit.jsonl"
as alice recall --thread 小明 "$(mid_of "$OUT/send_lines.jsonl")" > "$OUT/recall.jsonl"
as bob read --to alice > "$OUT/read.jsonl"
as bob threads > "$OUT/threads_bob_read.jsonl"

as alice group invite 研发群 carol > "$OUT/invite.jsonl"
as carol group join 研发群 > "$OUT/carol_join.jsonl"
as alice group role 研发群 carol admin > "$OUT/role.jsonl"
as alice group members 研发群 > "$OUT/members.jsonl"
as alice group rename 研发群 研发二群 > "$OUT/rename.jsonl"
as alice group kick 研发二群 小明 > "$OUT/kick.jsonl"
as alice group transfer 研发二群 carol > "$OUT/transfer.jsonl"
as alice group leave 研发二群 > "$OUT/leave.jsonl"
as carol groups > "$OUT/groups_carol.jsonl"
as carol history --group 研发二群 > "$OUT/history_group.jsonl"
# Bans (1.4): alice, who left, is kept out (the group is not even found for her), then let back.
as carol group ban 研发二群 alice > "$OUT/ban.jsonl"
set +e
as alice group join 研发二群 2> "$OUT/ban_join.err"
echo "$?" > "$OUT/ban_join.code"
set -e
as carol group unban 研发二群 alice > "$OUT/unban.jsonl"

# One thread, from now on: the old messages and everyone else's events stay out.
CONFAB_DATA_DIR="$OUT/bob" "$CONFAB" watch --thread alice --since-now > "$OUT/watch_thread.jsonl" &
watcher=$!
wait_line "$OUT/watch_thread.jsonl" '"synced"'
as carol send --to alice 'not for that watch' > /dev/null
as alice send --to 小明 'live one' > /dev/null
wait_line "$OUT/watch_thread.jsonl" 'live one'
kill -TERM "$watcher"
wait "$watcher" || true

as carol unfriend alice > "$OUT/unfriend.jsonl"
set +e
as alice threads | head -1 > "$OUT/threads_head.jsonl"
echo "${PIPESTATUS[0]}" > "$OUT/threads_head.code"
set -e
# Blocks (1.4): carol's request and 小明's message to alice are refused (exit 5), unblocking
# gives the message back.
as alice block carol > "$OUT/block.jsonl"
as alice block 小明 > /dev/null
as alice blocked > "$OUT/blocked.jsonl"
set +e
as carol add alice 2> "$OUT/request_blocked.err"
echo "$?" > "$OUT/request_blocked.code"
as bob send --to alice 'blocked one' 2> "$OUT/send_blocked.err"
echo "$?" > "$OUT/send_blocked.code"
set -e
as alice unblock 小明 > "$OUT/unblock.jsonl"
as bob send --to alice 'after the unblock' > /dev/null
# Devices (1.4): 小明 has two sessions here (bob, bob2); a third is revoked from the first.
echo 's3cret-s3cret' | as bob3 login 小明 > /dev/null
as bob devices > "$OUT/devices.jsonl"
bob3_id=$(grep '"current":false' "$OUT/devices.jsonl" | tail -1 | sed 's/.*"device_id":\([0-9]*\).*/\1/')
as bob devices revoke "$bob3_id" > "$OUT/revoke.jsonl"
set +e
as bob3 threads 2> "$OUT/revoked_threads.err"
echo "$?" > "$OUT/revoked_threads.code"
set -e
# Search (1.6): a Chinese word inside a sentence, on the server.
as bob search '你好' > "$OUT/search.jsonl"
# Replies and reactions (1.7): the reply quotes the hit; a reaction shows in the history, the
# same again changes nothing, --remove takes it back; an emoji that is two is refused (5).
as bob send --to alice --reply-to "$(mid_of "$OUT/search.jsonl")" '回复你' > "$OUT/reply.jsonl"
as alice react "$(mid_of "$OUT/reply.jsonl")" 👍 > "$OUT/react.jsonl"
as alice react "$(mid_of "$OUT/reply.jsonl")" 👍 > "$OUT/react_again.jsonl"
as bob history --to alice --limit 2 > "$OUT/history_reply.jsonl"
as alice react --to 小明 "$(mid_of "$OUT/reply.jsonl")" 👍 --remove > "$OUT/unreact.jsonl"
set +e
as alice react "$(mid_of "$OUT/reply.jsonl")" '👍👍' 2> "$OUT/react_bad.err"
echo "$?" > "$OUT/react_bad.code"
set -e
as bob2 logout > "$OUT/logout.jsonl"
# Deleting an account (1.5): a wrong password refuses (3), the right one deletes; the name
# cannot log in afterwards (3) and is held (registering it again is refused, 5).
CONFAB_PASSWORD='doomed-password' as doomed register 短命 > /dev/null
set +e
echo 'not-the-password' | as doomed delete-account 2> "$OUT/delete_wrong.err"
echo "$?" > "$OUT/delete_wrong.code"
set -e
echo 'doomed-password' | as doomed delete-account > "$OUT/deleted.jsonl"
set +e
echo 'doomed-password' | as doomed login 短命 2> /dev/null
echo "$?" > "$OUT/deleted_login.code"
echo 'doomed-password' | as doomed2 register 短命 2> "$OUT/deleted_name.err"
echo "$?" > "$OUT/deleted_name.code"
set -e

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
as bob2 threads 2> "$OUT/logged_out.err"
echo "$?" > "$OUT/logged_out.code"
as alice send 'no target' 2> "$OUT/no_target.err"
echo "$?" > "$OUT/no_target.code"
as carol group kick 研发二群 nobody_here 2> "$OUT/kick_unknown.err"
echo "$?" > "$OUT/kick_unknown.code"
set -e
echo done > "$OUT/finished"
