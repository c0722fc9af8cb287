#!/usr/bin/env bash
# portguard dump: prints a running process's report on its own stdout, with
# no signal sent (the library's thread polls for the request): a daemon
# whose SIGUSR1 means "stop" keeps serving, and its own kill -USR1 then
# stops it as without the library; a daemon that rewrote its environment
# and moved fd 2 to a log file is dumped all the same. Refuses (exit 1) a
# pid that does not exist, a process without the library, one with no
# socket yet, another user's; bad arguments exit 2.
source "$(dirname "$0")/lib.sh"
D=$ROOT/build/tests/prog_daemon
for f in "$PG" "$LIB" "$D"; do
	[ -e "$f" ] || { notok "$f is built"; exit 1; }
done

# A pid that surely does not exist: a child that has been reaped.
true & gone=$!; wait "$gone"
err=$("$PG" dump "$gone" 2>&1); rc=$?
check "no such process: exit 1" 1 "$rc"
[[ $err == *"no process with pid $gone"* ]] && ok "and says so" || notok "and says so (got: $err)"

sleep 30 & sl=$!; started "$sl"
wait_until 10 "sleep to start" pg_runs "$sl" "$(readlink -f "$(command -v sleep)")"
err=$("$PG" dump "$sl" 2>&1); rc=$?
check "a process without the library: exit 1" 1 "$rc"
[[ $err == *"has not loaded libportguard"* ]] && ok "and says so" || notok "and says so (got: $err)"
kill -0 "$sl" 2>/dev/null && ok "and it is still alive" || notok "and it is still alive"

# A process with the library and no socket yet: no thread to answer.
LD_PRELOAD=$LIB sleep 30 & ns=$!; started "$ns"
wait_until 10 "the library to be loaded" pg_mapped "$ns"
err=$("$PG" dump --timeout 1 "$ns" 2>&1); rc=$?
check "a process with no socket yet: exit 1" 1 "$rc"
[[ $err == *"has not created a socket yet"* ]] && ok "and says so" || notok "and says so (got: $err)"
kill -0 "$ns" 2>/dev/null && ok "and it is still alive" || notok "and it is still alive"

# connects to 127.0.0.1:$1 and prints what the server says
hello() { python3 -c 'import socket,sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)
print(s.recv(64).decode().strip())' "$1"; }

# starts prog_daemon (env assignments, then its arguments after --); sets
# $dp, $dout, $dport
start_daemon() {
	local envs=()
	while [ $# -gt 0 ] && [ "$1" != -- ]; do envs+=("$1"); shift; done
	shift
	dout=$T/d.$RANDOM
	env "${envs[@]}" "$D" "$@" >"$dout" 2>&1 &
	dp=$!
	started "$dp"
	wait_for "$dout" '^port [0-9]' || notok "prog_daemon started"
	dport=$(sed -n 's/^port //p' "$dout" | head -1)
}

# The daemon whose SIGUSR1 stops it: bare, for what it does by itself.
start_daemon --
kill -USR1 "$dp"; wait "$dp"; bare_rc=$?
bare_out=$(grep -v '^port' "$dout")

mkdir -p "$T/logs"
start_daemon LD_PRELOAD="$LIB" PORTGUARD_OPTIONS="log_path=$T/logs/d format=json" -- --leak-every 1
[ "$(hello "$dport")" = hello ] && ok "the daemon serves under the library" || notok "the daemon serves under the library"
t0=$(pg_now)
out=$("$PG" dump "$dp" 2>"$T/dump.err"); rc=$?
echo "# dump answered in $(pg_since "$t0") s"
check "dump of the daemon: exit 0" 0 "$rc"
[[ $out == "==$dp==portguard: dump report of "* ]] && ok "its report is on dump's stdout" || notok "its report is on dump's stdout (got: ${out:0:200})"
[[ $out == *"LISTEN"* && $out == *"SUMMARY: portguard: 2 socket(s) leaked from 2 call site(s)"* ]] &&
	ok "it lists the listener and the one leak (2 sites)" || notok "it lists the listener and the one leak (got: ${out: -200})"
kill -0 "$dp" 2>/dev/null && ok "the daemon did not stop" || notok "the daemon did not stop"
grep -q Gracefully "$dout" && notok "its SIGUSR1 handler did not run" || ok "its SIGUSR1 handler did not run"
[ "$(hello "$dport")" = hello ] && ok "it keeps serving" || notok "it keeps serving"
json=$("$PG" dump --json "$dp" 2>/dev/null); rc=$?
check "dump --json: exit 0" 0 "$rc"
echo "$json" >"$T/first.json"
python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); assert j["reason"]=="dump", j["reason"]; assert j["totals"]["leaked"]==3, j["totals"]' "$T/first.json" &&
	ok "--json: one object, reason dump, 3 leaked (the listener, 2 connections)" || notok "--json: one object, reason dump, 3 leaked (the listener, 2 connections)"
for i in 1 2 3; do hello "$dport" >/dev/null; done
"$PG" dump --json "$dp" >"$T/second.json" 2>/dev/null
diff=$("$PG" report --json --diff "$T/first.json" "$T/second.json"); rc=$?
check "report --diff of two dumps: exit 0" 0 "$rc"
python3 -c 'import json,sys; d=json.loads(sys.argv[1]); g=[s["grew"] for s in d["sites"]]; assert g==[3], g' "$diff" &&
	ok "and it finds the 3 sockets the daemon leaked between them" || notok "and it finds the growth (got: $diff)"
# Its own SIGUSR1 now: stops it as without the library, no signal report.
kill -USR1 "$dp"; wait "$dp"; rc=$?
check "kill -USR1 stops it with the status it has bare" "$bare_rc" "$rc"
[[ $(grep -v '^port' "$dout") == "${bare_out/0 connection/5 connection}" ]] &&
	ok "and says what it says bare" || notok "and says what it says bare (got: $(cat "$dout"))"
grep -q '"reason": "signal"' "$T"/logs/d.* 2>/dev/null && notok "no signal report was written" || ok "no signal report was written"
grep -q '"reason": "dump"' "$T"/logs/d.* 2>/dev/null && notok "dumps went to dump, not to log_path" || ok "dumps went to dump, not to log_path"
ls "$T"/logs/d.* >/dev/null 2>&1 && ok "its exit report is in log_path" || notok "its exit report is in log_path"
ls /tmp/portguard-dump."$dp"* >/dev/null 2>&1 && notok "dump left no file in /tmp" || ok "dump left no file in /tmp"

# Environment rewritten, fd 2 a log file, report_signal=USR2.
start_daemon LD_PRELOAD="$LIB" PORTGUARD_OPTIONS=report_signal=USR2 -- --rewrite-env --stderr-to "$T/error.log"
hello "$dport" >/dev/null
grep -q PORTGUARD "/proc/$dp/environ" && notok "its environment is rewritten" || ok "its environment is rewritten"
out=$("$PG" dump "$dp" 2>/dev/null); rc=$?
check "dump of a daemon that rewrote its environment and moved fd 2: exit 0" 0 "$rc"
[[ $out == *"dump report of"*"LISTEN"* ]] && ok "its report is printed" || notok "its report is printed (got: ${out:0:200})"
[ -s "$T/error.log" ] && notok "nothing went to its error log" || ok "nothing went to its error log"

if [ "$(id -u)" -eq 0 ] && command -v setpriv >/dev/null; then
	err=$(setpriv --reuid=65534 --regid=65534 --clear-groups "$PG" dump --timeout 1 "$dp" 2>&1); rc=$?
	check "another user's process: exit 1" 1 "$rc"
	[[ $err == *"may not ask"* ]] && ok "and says so" || notok "and says so (got: $err)"
	[ "$(hello "$dport")" = hello ] && ok "and it keeps serving" || notok "and it keeps serving"
fi
kill -USR1 "$dp"; wait "$dp"

# In a pid namespace of its own (a container): it knows itself as pid 1.
if [ "$(id -u)" -eq 0 ] && unshare --pid --fork --mount-proc true 2>/dev/null; then
	unshare --pid --fork --mount-proc env LD_PRELOAD="$LIB" "$D" >"$T/ns.out" 2>&1 &
	ns=$!
	started "$ns"
	wait_for "$T/ns.out" '^port [0-9]' || notok "prog_daemon started in a pid namespace"
	np=$(pgrep -f "^$D\$" | tail -1)
	out=$("$PG" dump "$np" 2>/dev/null); rc=$?
	check "dump of a process in a pid namespace (its pid there: 1): exit 0" 0 "$rc"
	[[ $out == "==1==portguard: dump report of"* ]] && ok "its report, by its own pid" || notok "its report (got: ${out:0:100})"
	# The init of its namespace: SIGTERM without a handler of its own is
	# ignored there (the cleanup then waited for prog_daemon's own 120 s).
	kill -KILL "$np"
	wait "$ns"
fi

usage() {
	local what=$1 want=$2 err rc
	shift 2
	err=$("$PG" dump "$@" 2>&1 >/dev/null); rc=$?
	if [ "$rc" -eq "$want" ] && [[ $err == *"usage: portguard dump"* ]]; then ok "$what"; else notok "$what (rc $rc)"; fi
}
usage "no PID: usage, exit 2" 2
usage "PID abc: usage, exit 2" 2 abc
usage "PID 0: usage, exit 2" 2 0
usage "PID -1: usage, exit 2" 2 -- -1
usage "two PIDs: usage, exit 2" 2 "$sl" "$sl"
usage "--timeout abc: usage, exit 2" 2 --timeout abc "$sl"
usage "--timeout 0: usage, exit 2" 2 --timeout 0 "$sl"
usage "-s (gone): usage, exit 2" 2 -s USR1 "$sl"
out=$("$PG" dump --help); rc=$?
[ "$rc" -eq 0 ] && [[ $out == "usage: portguard dump"* ]] && ok "dump --help: usage on stdout, exit 0" || notok "dump --help"
finish
