#!/usr/bin/env bash
# portguard dump: refuses (exit 1) a pid that does not exist, a process that
# has not loaded libportguard (which must survive), one that does not catch
# the signal; sends (exit 0) to one that maps a file named libportguard.so
# and catches or blocks the signal; bad arguments exit 2.
source "$(dirname "$0")/lib.sh"
SW=$ROOT/build/tests/prog_tool_sigwait
CHURN=$ROOT/build/tests/prog_tool_churn
# starts prog_tool_sigwait with the given environment assignments and mode;
# sets $sp to its pid and $so to its output file
start_sw() {
	so=$T/sw.$RANDOM
	env "$@" "$SW" "$T/lib/libportguard.so" "$mode" >"$so" 2>&1 &
	sp=$!
	started "$sp"
	wait_for "$so" '^ready' || notok "prog_tool_sigwait started"
}

for f in "$PG" "$SW"; do
	[ -x "$f" ] || { notok "$f is built"; exit 1; }
done
mkdir -p "$T/lib"
echo stand-in >"$T/lib/libportguard.so"

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
# A negative: nothing is waited for, the check can only pass wrongly.
kill -0 "$sl" 2>/dev/null && ok "and it is still alive" || notok "and it is still alive"
"$PG" dump -s USR2 "$sl" 2>/dev/null; check "-s USR2 does not change that" 1 $?
kill -0 "$sl" 2>/dev/null && ok "and it is still alive after -s USR2" || notok "still alive after -s USR2"

mode=catch:10 start_sw
"$PG" dump "$sp" 2>/dev/null; check "library mapped, SIGUSR1 caught: exit 0" 0 $?
wait_for "$so" '^got 10' && ok "the process got SIGUSR1" || notok "the process got SIGUSR1"

mode=catch:12 start_sw
"$PG" dump -s SIGUSR2 "$sp" 2>/dev/null; check "-s SIGUSR2: exit 0" 0 $?
wait_for "$so" '^got 12' && ok "the process got SIGUSR2" || notok "the process got SIGUSR2"

mode=catch:$(($(kill -l RTMIN) + 3)) start_sw
"$PG" dump -s RTMIN+3 "$sp" 2>/dev/null; check "-s RTMIN+3: exit 0" 0 $?
wait_for "$so" "^got $(($(kill -l RTMIN) + 3))" && ok "the process got SIGRTMIN+3" || notok "the process got SIGRTMIN+3"

mode=catch:10 start_sw
"$PG" dump -s 10 "$sp" 2>/dev/null; check "-s 10 (a number): exit 0" 0 $?
wait_for "$so" '^got 10' && ok "the process got signal 10" || notok "the process got signal 10"

# Without -s, the signal comes from the process's own PORTGUARD_OPTIONS;
# blocked in every thread but a sigwait()ing one counts as handled.
mode=block:12 start_sw PORTGUARD_OPTIONS='log_path="/tmp/a b":report_signal=USR2'
err=$("$PG" dump "$sp" 2>&1); rc=$?
check "report_signal=USR2 in its environment: sent SIGUSR2, exit 0" 0 "$rc"
wait_for "$so" '^got 12' && ok "the process got SIGUSR2" || notok "the process got SIGUSR2"
[[ $err == *"log_path=/tmp/a b"* ]] && ok "and dump names its log_path" || notok "and dump names its log_path (got: $err)"

mode=none start_sw
err=$("$PG" dump "$sp" 2>&1); rc=$?
check "library mapped but SIGUSR1 not caught: exit 1" 1 "$rc"
[[ $err == *"does not catch SIGUSR1"* ]] && ok "and says so" || notok "and says so (got: $err)"
kill -0 "$sp" 2>/dev/null && ok "and it is still alive" || notok "and it is still alive"

mode=none start_sw PORTGUARD_OPTIONS=report_signal=0
err=$("$PG" dump "$sp" 2>&1); rc=$?
check "report_signal=0: exit 1" 1 "$rc"
[[ $err == *"report_signal=0"* ]] && ok "and says so" || notok "and says so (got: $err)"

if [ "$(id -u)" -eq 0 ] && command -v setpriv >/dev/null; then
	mode=catch:10 start_sw
	err=$(setpriv --reuid=65534 --regid=65534 --clear-groups "$PG" dump "$sp" 2>&1); rc=$?
	check "another user's process: exit 1" 1 "$rc"
	[[ $err == *"may not signal"* ]] && ok "and says so" || notok "and says so (got: $err)"
	grep -q '^got' "$so" && notok "and it got no signal" || ok "and it got no signal"
fi

usage() {
	local what=$1 want=$2 err rc
	shift 2
	err=$("$PG" dump "$@" 2>&1 >/dev/null); rc=$?
	if [ "$rc" -eq "$want" ] && [[ $err == *"usage: portguard dump"* ]]; then ok "$what"; else notok "$what (rc $rc)"; fi
}
usage "no PID: usage, exit 2" 2
usage "PID abc: usage, exit 2" 2 abc
usage "PID 0 (a process group): usage, exit 2" 2 0
usage "PID -1: usage, exit 2" 2 -- -1
usage "two PIDs: usage, exit 2" 2 "$sl" "$sl"
usage "-s BOGUS: usage, exit 2" 2 -s BOGUS "$sl"
usage "-s 0: usage, exit 2" 2 -s 0 "$sl"
usage "-s without a value: usage, exit 2" 2 -s
out=$("$PG" dump --help); rc=$?
[ "$rc" -eq 0 ] && [[ $out == "usage: portguard dump"* ]] && ok "dump --help: usage on stdout, exit 0" || notok "dump --help"

# With the real library, when it is built: a signal report arrives.
if [ -e "$ROOT/build/libportguard.so" ] && [ -x "$CHURN" ]; then
	mkdir -p "$T/rep"
	"$PG" run --json -o "$T/rep/pg" -- "$CHURN" -e 2 -T 60 >"$T/churn.out" 2>&1 &
	cp=$!; started "$cp"
	if wait_for "$T/churn.out" '^ready'; then
		"$PG" dump "$cp" 2>/dev/null; check "a process under portguard run: exit 0" 0 $?
		if wait_for "$T/rep/pg.$cp" '"reason": *"signal"'; then ok "its signal report arrived"
		else notok "its signal report arrived"; fi
		kill -0 "$cp" 2>/dev/null && ok "and it is still alive" || notok "and it is still alive"
	else
		notok "prog_tool_churn started under portguard run"
	fi
	# A process that has made no socket has no report thread yet: dump
	# says when it will answer, and the process lives on.
	LD_PRELOAD="$ROOT/build/libportguard.so" sleep 30 &
	ns=$!; started "$ns"
	wait_until 10 "the library to be loaded" pg_mapped "$ns"
	msg=$("$PG" dump "$ns" 2>&1); rc=$?
	check "a process with no socket yet: exit 0" 0 "$rc"
	[[ $msg == *"has not created a socket yet"*"first socket, or with its exit report"* ]] &&
		ok "dump says it will answer at its first socket or at exit" ||
		notok "dump says it will answer at its first socket or at exit"
	kill -0 "$ns" 2>/dev/null && ok "and it is still alive" || notok "and the socket-less process is still alive"
fi
exit $((fails > 0))
