#!/usr/bin/env bash
# portguard report on hand-written reports (SPEC section 4): two processes of
# one program, same call sites at different absolute addresses (different
# module bases); pid 101 wrote a signal report then its exit report, pid 102
# two signal reports and a policy event. Checks the merge, --json, --folded,
# --diff exactly, and the handling of bad input.
source "$(dirname "$0")/lib.sh"
[ -x "$PG" ] || { notok "$PG is built"; exit 1; }
command -v jq >/dev/null || { notok "jq is installed (this test needs it)"; exit 1; }
cd "$T" || exit 2

cat >r.101 <<'JSON'
{"portguard": 1, "pid": 101, "exe": "/opt/app/bin/app", "reason": "signal", "totals": {"created": 20, "closed": 19, "closed_unseen": 0, "open": 1, "leaked": 1, "suppressed": 0, "inherited": 0, "untracked": 0, "double_closes": 0, "lost": 0}, "sites": [{"open": 1, "leaked": 1, "created": 20, "frames": [{"addr": "0x55555556f2c3", "module": "/opt/app/bin/app", "offset": "0x1b2c3", "function": "open_conn", "file": "app.c", "line": 42}, {"addr": "0x555555570000", "module": "/opt/app/bin/app", "offset": "0x1c000", "function": "main", "file": "app.c", "line": 80}, {"addr": "0x7f000002724a", "module": "/lib/x86_64-linux-gnu/libc.so.6", "offset": "0x2724a"}], "sockets": [{"fd": 5, "handles": 1, "inode": 1001, "family": "inet", "type": "stream", "protocol": "tcp", "local": "127.0.0.1:40001", "remote": "127.0.0.1:8080", "state": "ESTABLISHED", "listening": false, "inherited": false, "untracked": false, "leaked": true, "age_ms": 500}]}], "double_closes": [], "destinations": [{"remote": "127.0.0.1:8080", "connects": 20, "active_closes": 19, "peak_per_sec": 10, "forecast": "ok"}], "policy": {"reuseaddr_applied": 0, "bind_no_port_applied": 0, "pool_waits": 0, "pool_denials": 0}}
{"portguard": 1, "pid": 101, "exe": "/opt/app/bin/app", "reason": "exit", "totals": {"created": 53, "closed": 50, "closed_unseen": 0, "open": 4, "leaked": 3, "suppressed": 0, "inherited": 1, "untracked": 0, "double_closes": 1, "lost": 0}, "sites": [{"open": 2, "leaked": 2, "created": 50, "frames": [{"addr": "0x55555556f2c3", "module": "/opt/app/bin/app", "offset": "0x1b2c3", "function": "open_conn", "file": "app.c", "line": 42}, {"addr": "0x555555570000", "module": "/opt/app/bin/app", "offset": "0x1c000", "function": "main", "file": "app.c", "line": 80}, {"addr": "0x7f000002724a", "module": "/lib/x86_64-linux-gnu/libc.so.6", "offset": "0x2724a"}], "sockets": [{"fd": 5, "handles": 1, "inode": 1001, "family": "inet", "type": "stream", "protocol": "tcp", "local": "127.0.0.1:40001", "remote": "127.0.0.1:8080", "state": "ESTABLISHED", "listening": false, "inherited": false, "untracked": false, "leaked": true, "age_ms": 1500}, {"fd": 6, "handles": 1, "inode": 1002, "family": "inet", "type": "stream", "protocol": "tcp", "local": "127.0.0.1:40002", "remote": "127.0.0.1:8080", "state": "CLOSE_WAIT", "listening": false, "inherited": false, "untracked": false, "leaked": true, "age_ms": 900}]}, {"open": 1, "leaked": 1, "created": 3, "frames": [{"addr": "0x55555556f400", "module": "/opt/app/bin/app", "offset": "0x1b400", "function": "open_pool", "file": "pool.c", "line": 10}, {"addr": "0x555555570050", "module": "/opt/app/bin/app", "offset": "0x1c050", "function": "main", "file": "app.c", "line": 85}, {"addr": "0x7f000002724a", "module": "/lib/x86_64-linux-gnu/libc.so.6", "offset": "0x2724a"}], "sockets": [{"fd": 7, "handles": 2, "inode": 1003, "family": "inet6", "type": "stream", "protocol": "tcp", "local": "[::1]:40003", "remote": "[::1]:5432", "state": "ESTABLISHED", "listening": false, "inherited": false, "untracked": false, "leaked": true, "age_ms": 800}]}, {"open": 1, "leaked": 0, "created": 0, "frames": [], "sockets": [{"fd": 3, "handles": 1, "inode": 999, "family": "inet", "type": "stream", "protocol": "tcp", "local": "127.0.0.1:9000", "listening": true, "state": "LISTEN", "inherited": true, "untracked": false, "leaked": false}]}], "double_closes": [{"fd": 9, "count": 1, "created": [{"addr": "0x55555556f2c3", "module": "/opt/app/bin/app", "offset": "0x1b2c3", "function": "open_conn", "file": "app.c", "line": 42}], "closed": [{"addr": "0x555555571000", "module": "/opt/app/bin/app", "offset": "0x1d000", "function": "close_conn", "file": "app.c", "line": 60}], "closed_again": [{"addr": "0x555555571100", "module": "/opt/app/bin/app", "offset": "0x1d100", "function": "cleanup", "file": "app.c", "line": 70}]}], "destinations": [{"remote": "127.0.0.1:8080", "connects": 50, "active_closes": 48, "peak_per_sec": 12, "forecast": "ok"}], "policy": {"reuseaddr_applied": 2, "bind_no_port_applied": 0, "pool_waits": 1, "pool_denials": 0}}
JSON
cat >r.102 <<'JSON'
{"portguard": 1, "pid": 102, "exe": "/opt/app/bin/app", "reason": "signal", "totals": {"created": 5, "closed": 4, "closed_unseen": 0, "open": 1, "leaked": 1, "suppressed": 0, "inherited": 0, "untracked": 0, "double_closes": 0, "lost": 0}, "sites": [{"open": 1, "leaked": 1, "created": 5, "frames": [{"addr": "0x5600aa01b2c3", "module": "/opt/app/bin/app", "offset": "0x1b2c3", "function": "open_conn", "file": "app.c", "line": 42}, {"addr": "0x5600aa01c000", "module": "/opt/app/bin/app", "offset": "0x1c000", "function": "main", "file": "app.c", "line": 80}, {"addr": "0x7f110002724a", "module": "/lib/x86_64-linux-gnu/libc.so.6", "offset": "0x2724a"}], "sockets": [{"fd": 4, "handles": 1, "inode": 2001, "family": "inet", "type": "stream", "protocol": "tcp", "local": "127.0.0.1:41001", "remote": "127.0.0.1:8080", "state": "ESTABLISHED", "listening": false, "inherited": false, "untracked": false, "leaked": true, "age_ms": 100}]}], "double_closes": [], "destinations": [], "policy": {"reuseaddr_applied": 0, "bind_no_port_applied": 0, "pool_waits": 0, "pool_denials": 0}}
{"portguard": 1, "pid": 102, "event": "pool_denied", "dest": "127.0.0.1:5432"}
{"portguard": 1, "pid": 102, "exe": "/opt/app/bin/app", "reason": "signal", "totals": {"created": 21, "closed": 17, "closed_unseen": 0, "open": 4, "leaked": 4, "suppressed": 0, "inherited": 0, "untracked": 0, "double_closes": 0, "lost": 0}, "sites": [{"open": 3, "leaked": 3, "created": 20, "frames": [{"addr": "0x5600aa01b2c3", "module": "/opt/app/bin/app", "offset": "0x001B2C3", "function": "open_conn", "file": "app.c", "line": 42}, {"addr": "0x5600aa01c000", "module": "/opt/app/bin/app", "offset": "0x1c000", "function": "main", "file": "app.c", "line": 80}, {"addr": "0x7f110002724a", "module": "/lib/x86_64-linux-gnu/libc.so.6", "offset": "0x2724a"}], "sockets": [{"fd": 4, "handles": 1, "inode": 2001, "family": "inet", "type": "stream", "protocol": "tcp", "local": "127.0.0.1:41001", "remote": "127.0.0.1:8080", "state": "ESTABLISHED", "listening": false, "inherited": false, "untracked": false, "leaked": true, "age_ms": 2100}, {"fd": 8, "handles": 1, "inode": 2002, "family": "inet", "type": "stream", "protocol": "tcp", "local": "127.0.0.1:41002", "remote": "127.0.0.1:8080", "state": "ESTABLISHED", "listening": false, "inherited": false, "untracked": false, "leaked": true, "age_ms": 1100}, {"fd": 9, "handles": 1, "inode": 2003, "family": "inet", "type": "stream", "protocol": "tcp", "local": "127.0.0.1:41003", "remote": "127.0.0.1:8080", "state": "ESTABLISHED", "listening": false, "inherited": false, "untracked": false, "leaked": true, "age_ms": 300}]}, {"open": 1, "leaked": 1, "created": 1, "frames": [{"addr": "0x7f1100504410", "module": "/opt/app/lib/libx.so", "offset": "0x4410"}], "sockets": [{"fd": 10, "handles": 1, "inode": 2004, "family": "inet", "type": "dgram", "protocol": "udp", "local": "127.0.0.1:41004", "leaked": true, "listening": false, "inherited": false, "untracked": false, "age_ms": 50}]}], "double_closes": [], "destinations": [{"remote": "127.0.0.1:8080", "connects": 21, "active_closes": 17, "peak_per_sec": 30, "forecast": "warning"}, {"remote": "127.0.0.1:5432", "connects": 3, "active_closes": 0, "peak_per_sec": 0, "forecast": "ok"}], "policy": {"reuseaddr_applied": 0, "bind_no_port_applied": 0, "pool_waits": 2, "pool_denials": 1}}
JSON
# The earlier dumps: the first report of each process.
head -n1 r.101 >old.101
head -n1 r.102 >old.102

expect_text=$(cat <<'TEXT'
==101,102==portguard: merged report of 2 process(es) of /opt/app/bin/app: 1 exit, 1 signal report(s)

Leak of 5 socket(s) (5 open, 70 created here) in 2 process(es), from:
    #0 0x55555556f2c3 in open_conn app.c:42
    #1 0x555555570000 in main app.c:80
    #2 0x7f000002724a (/lib/x86_64-linux-gnu/libc.so.6+0x2724a)
  pid 101 fd 5: tcp 127.0.0.1:40001 -> 127.0.0.1:8080 ESTABLISHED, age 1500 ms
  pid 101 fd 6: tcp 127.0.0.1:40002 -> 127.0.0.1:8080 CLOSE_WAIT, age 900 ms
  pid 102 fd 4: tcp 127.0.0.1:41001 -> 127.0.0.1:8080 ESTABLISHED, age 2100 ms
  pid 102 fd 8: tcp 127.0.0.1:41002 -> 127.0.0.1:8080 ESTABLISHED, age 1100 ms
  pid 102 fd 9: tcp 127.0.0.1:41003 -> 127.0.0.1:8080 ESTABLISHED, age 300 ms

Leak of 1 socket(s) (1 open, 3 created here) in 1 process(es), from:
    #0 0x55555556f400 in open_pool pool.c:10
    #1 0x555555570050 in main app.c:85
    #2 0x7f000002724a (/lib/x86_64-linux-gnu/libc.so.6+0x2724a)
  pid 101 fd 7: tcp [::1]:40003 -> [::1]:5432 ESTABLISHED, age 800 ms, 2 descriptors

Leak of 1 socket(s) (1 open, 1 created here) in 1 process(es), from:
    #0 0x7f1100504410 (/opt/app/lib/libx.so+0x4410)
  pid 102 fd 10: udp 127.0.0.1:41004, age 50 ms

Open, not counted as leaked: 1 socket(s) (no creation stack) in 1 process(es):
    <no stack>
  pid 101 fd 3: tcp 127.0.0.1:9000 LISTEN [inherited]

Double close of fd 9 in pid 101 (1 time(s)); closed again at:
    #0 0x555555571100 in cleanup app.c:70
  first closed at:
    #0 0x555555571000 in close_conn app.c:60
  created at:
    #0 0x55555556f2c3 in open_conn app.c:42

Destinations of outgoing connections:
  127.0.0.1:8080: 71 connect(s), 65 active close(s), peak 30/s, forecast warning
  127.0.0.1:5432: 3 connect(s), 0 active close(s), peak 0/s, forecast ok

Policy events: pool_denied 1.
Totals: 74 created, 1 inherited, 0 untracked; 67 closed, 0 closed unseen; 8 open, 7 leaked, 0 suppressed; 1 double close(s).

SUMMARY: portguard: 7 socket(s) leaked from 3 call site(s).
TEXT
)
expect_diff=$(cat <<'TEXT'
==portguard: open sockets by call site, before (pids 101,102) and after (pids 101,102)==

Grew by 3 socket(s) (2 -> 5 open) at:
    #0 0x55555556f2c3 in open_conn app.c:42
    #1 0x555555570000 in main app.c:80
    #2 0x7f000002724a (/lib/x86_64-linux-gnu/libc.so.6+0x2724a)
  pid 101 fd 6: tcp 127.0.0.1:40002 -> 127.0.0.1:8080 CLOSE_WAIT, age 900 ms
  pid 102 fd 8: tcp 127.0.0.1:41002 -> 127.0.0.1:8080 ESTABLISHED, age 1100 ms
  pid 102 fd 9: tcp 127.0.0.1:41003 -> 127.0.0.1:8080 ESTABLISHED, age 300 ms

Grew by 1 socket(s) (0 -> 1 open) at:
    #0 0x55555556f400 in open_pool pool.c:10
    #1 0x555555570050 in main app.c:85
    #2 0x7f000002724a (/lib/x86_64-linux-gnu/libc.so.6+0x2724a)
  pid 101 fd 7: tcp [::1]:40003 -> [::1]:5432 ESTABLISHED, age 800 ms, 2 descriptors

Grew by 1 socket(s) (0 -> 1 open) at:
    <no stack>
  pid 101 fd 3: tcp 127.0.0.1:9000 LISTEN [inherited]

Grew by 1 socket(s) (0 -> 1 open) at:
    #0 0x7f1100504410 (/opt/app/lib/libx.so+0x4410)
  pid 102 fd 10: udp 127.0.0.1:41004, age 50 ms

SUMMARY: portguard: open sockets grew by 6 at 4 call site(s).
TEXT
)

out=$("$PG" report r.101 r.102); rc=$?
check "merge: exit 0" 0 "$rc"
check "merge: the text report" "$expect_text" "$out"
check "--text is the default" "$out" "$("$PG" report --text r.101 r.102)"
check "the same file twice counts once" "$out" "$("$PG" report r.101 r.102 ./r.101)"
check "'-' reads stdin" "$out" "$(cat r.102 | "$PG" report r.101 -)"

out=$("$PG" report --folded r.101 r.102)
check "--folded: outermost first, function or module+offset, count = leaked" \
	"libc.so.6+0x2724a;main;open_conn 5
libc.so.6+0x2724a;main;open_pool 1
libx.so+0x4410 1" "$out"

"$PG" report --json r.101 r.102 >merged.json
check "--json: one line" 1 "$(wc -l <merged.json)"
check "--json: pids, exe, reason, reports" '[[101,102],"/opt/app/bin/app","mixed",{"exit":1,"signal":1}]' \
	"$(jq -c '[.pids, .exe, .reason, .reports]' merged.json)"
check "--json: no pid key, schema version 1" '[false,1]' "$(jq -c '[has("pid"), .portguard]' merged.json)"
check "--json: totals summed over the chosen reports" \
	'{"created":74,"closed":67,"closed_unseen":0,"open":8,"leaked":7,"suppressed":0,"inherited":1,"untracked":0,"double_closes":1,"lost":0}' \
	"$(jq -c .totals merged.json)"
check "--json: sites by module+offset, largest first, counts summed" \
	'[[5,5,70,[101,102],["0x1b2c3","0x1c000","0x2724a"]],[1,1,3,[101],["0x1b400","0x1c050","0x2724a"]],[1,1,1,[102],["0x4410"]],[1,0,0,[101],[]]]' \
	"$(jq -c '[.sites[] | [.open, .leaked, .created, .pids, [.frames[].offset]]]' merged.json)"
check "--json: every socket, with its pid" '["101/5","101/6","102/4","102/8","102/9"]' \
	"$(jq -c '[.sites[0].sockets[] | "\(.pid)/\(.fd)"]' merged.json)"
check "--json: frames as in the first report (addr, function, file, line)" \
	'{"addr":"0x55555556f2c3","module":"/opt/app/bin/app","offset":"0x1b2c3","function":"open_conn","file":"app.c","line":42}' \
	"$(jq -c '.sites[0].frames[0]' merged.json)"
check "--json: events counted apart" '{"pool_denied":1}' "$(jq -c .events merged.json)"
check "--json: policy counters summed" '{"reuseaddr_applied":2,"bind_no_port_applied":0,"pool_waits":3,"pool_denials":1}' \
	"$(jq -c .policy merged.json)"
check "--json: destinations: sums, highest peak, gravest forecast" \
	'[["127.0.0.1:8080",71,65,30,"warning"],["127.0.0.1:5432",3,0,0,"ok"]]' \
	"$(jq -c '[.destinations[] | [.remote, .connects, .active_closes, .peak_per_sec, .forecast]]' merged.json)"
check "--json: double closes carry their pid" '[[101,9]]' "$(jq -c '[.double_closes[] | [.pid, .fd]]' merged.json)"
check "a merged report reads back as the same merge" "$expect_text" "$("$PG" report merged.json)"

out=$("$PG" report --diff old.101 --diff old.102 r.101 r.102); rc=$?
check "--diff: exit 0" 0 "$rc"
check "--diff: the text, largest growth first, the new sockets only" "$expect_diff" "$out"
"$PG" report --json --diff old.101 --diff old.102 r.101 r.102 >diff.json
check "--diff --json: {\"sites\": [...]} only" '["sites"]' "$(jq -c keys diff.json)"
check "--diff --json: frames, open_before, open_after, grew" '["frames","open_before","open_after","grew"]' \
	"$(jq -c '.sites[0] | keys_unsorted' diff.json)"
check "--diff --json: the sites that grew, largest growth first" \
	'[[2,5,3,"0x1b2c3"],[0,1,1,"0x1b400"],[0,1,1,null],[0,1,1,"0x4410"]]' \
	"$(jq -c '[.sites[] | [.open_before, .open_after, .grew, .frames[0].offset]]' diff.json)"
check "--diff --folded: count = growth" \
	"libc.so.6+0x2724a;main;open_conn 3
[no stack] 1
libc.so.6+0x2724a;main;open_pool 1
libx.so+0x4410 1" "$("$PG" report --folded --diff old.101 --diff old.102 r.101 r.102)"
check "--diff against itself: nothing grew" "SUMMARY: portguard: open sockets grew by 0 at 0 call site(s)." \
	"$("$PG" report --diff merged.json r.101 r.102 | tail -n1)"

# Of one process, the exit report wins over a later signal report.
{ sed -n 2p r.101; sed -n 1p r.101; } >exit-first
check "the exit report wins over a later signal report" "SUMMARY: portguard: 3 socket(s) leaked from 2 call site(s)." \
	"$("$PG" report exit-first | tail -n1)"
# Two files with the same pid are two processes (the library gives a reused
# pid a file PATH.PID.N of its own).
cp r.101 r.101.1
check "the same pid in two files: two processes" "SUMMARY: portguard: 6 socket(s) leaked from 2 call site(s)." \
	"$("$PG" report r.101 r.101.1 | tail -n1)"
# The same offset in another module is another call site.
sed 's#/opt/app/lib/libx.so#/opt/app/lib/liby.so#; s/"pid": 102/"pid": 103/g' r.102 >r.103
check "same offset, other module: another site (3 sites, not 2)" 3 \
	"$("$PG" report --json r.102 r.103 | jq '.sites | length')"

bad() { # what file line-fragment
	local err rc
	err=$("$PG" report "$2" 2>&1 >/dev/null); rc=$?
	if [ "$rc" -eq 2 ] && [[ $err == *"$3"* ]] && [ "$(wc -l <<<"$err")" -eq 1 ]; then ok "$1"
	else notok "$1 (rc $rc: $err)"; fi
}
{ head -n1 r.101; echo '{"portguard": 1, "pid": 5, "reason": "exit", "sites": [{"open": 1}'; } >trunc
bad "a truncated line: exit 2, one line naming FILE:LINE" trunc "trunc:2: not JSON"
printf '\n==123==portguard: exit report of /bin/app\n' >text
bad "a text report: exit 2, says to use format=json" text "text:2: a text report"
echo '{"pid": 5, "reason": "exit"}' >nover
bad "no \"portguard\" key: exit 2" nover 'nover:1: not a portguard report'
echo '{"portguard": 2, "pid": 5, "reason": "exit"}' >v2
bad "schema version 2: exit 2" v2 "v2:1: report schema version 2"
echo '{"portguard": 1, "pid": 5, "reason": "exit", "sites": [{"open": "x"}]}' >badtype
bad "a count that is not a number: exit 2" badtype 'badtype:1: sites[0].open is not an integer'
echo '{"portguard": 1, "pid": 5}' >noreason
bad "neither report nor event: exit 2" noreason "noreason:1: neither a report"
bad "a file that cannot be read: exit 2" missing "cannot read missing"
bad "a directory: exit 2" . "cannot read .: it is a directory"
bad "a device: exit 2" /dev/zero "cannot read /dev/zero: not a regular file or pipe"
mkfifo fifo
err=$(timeout 20 "$PG" report fifo 2>&1); rc=$?
cond "a FIFO without a writer reads as empty, never hangs (rc $rc)" "$([ $rc -ne 124 ]; echo $?)"

# Bounded and linear on large input (SPEC section 7). A site of 262,144
# frames folds in linear time (it took minutes when each frame copied the
# line so far).
python3 -c '
import json
frames = [{"addr": hex(0x1000 + i), "module": "/bin/x", "offset": hex(i), "function": "f%d" % i} for i in range(262144)]
print(json.dumps({"portguard": 1, "pid": 1, "exe": "/bin/x", "reason": "exit", "totals": {"created": 1, "closed": 0, "closed_unseen": 0, "open": 1, "leaked": 1}, "sites": [{"open": 1, "leaked": 1, "created": 1, "frames": frames, "sockets": [{"fd": 3, "inode": 5, "leaked": True}]}], "double_closes": []}))' >deep
t0=$(pg_now)
timeout 120 "$PG" report --folded deep >deep.folded; rc=$?
echo "# --folded of one site of 262144 frames: $(pg_since "$t0") s"
check "--folded of 262144 frames: exit 0 within the bound" 0 "$rc"
check "  one line, outermost frame first, count 1" "1 f262143; 1" \
	"$(wc -l <deep.folded) $(cut -d';' -f1 deep.folded); $(awk '{print $NF}' deep.folded)"
# A line longer than the bound is refused with one line, in bounded memory
# (ulimit -v: a reader without a bound would need the whole line and more).
t0=$(pg_now)
err=$( (ulimit -v 1500000; head -c $((513 << 20)) /dev/zero | tr '\0' x | "$PG" report -) 2>&1); rc=$?
echo "# 513 MiB on one line refused after $(pg_since "$t0") s"
if [ "$rc" -eq 2 ] && [[ $err == *"-:1: a line longer than 512 MiB"* ]] && [ "$(wc -l <<<"$err")" -eq 1 ]; then
	ok "a 513 MiB line: exit 2, one line, within 1.5 GB of address space"
else
	notok "a 513 MiB line: exit 2, one line, within 1.5 GB of address space (rc $rc: ${err:0:300})"
fi

usage() {
	local what=$1 want=$2 err rc
	shift 2
	err=$("$PG" report "$@" 2>&1 >/dev/null); rc=$?
	if [ "$rc" -eq "$want" ] && [[ $err == *"usage: portguard report"* ]]; then ok "$what"; else notok "$what (rc $rc)"; fi
}
usage "no FILE: usage, exit 2" 2
usage "--json with --folded: usage, exit 2" 2 --json --folded r.101
usage "--diff without OLD: usage, exit 2" 2 --diff
usage "unknown option: usage, exit 2" 2 --bogus r.101
out=$("$PG" report --help); rc=$?
[ "$rc" -eq 0 ] && [[ $out == "usage: portguard report"* ]] && ok "report --help: usage on stdout, exit 0" || notok "report --help"
exit $((fails > 0))
