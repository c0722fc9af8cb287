#!/usr/bin/env bash
# Where reports go (SPEC section 4): a process with nothing of its own to say
# writes no file (a shell, a forked child that only inherited sockets); a
# report that cannot go where it was asked to goes to $TMPDIR/portguard.PID,
# never lost in silence; the report names the program as it was run (argv0).
source "$(dirname "$0")/lib.sh"
PY=$(python3 -c 'import sys; print(sys.executable)')
[ -x "$PY" ] || { notok "python3 found"; exit 1; }

# A shell and its true: no socket, nothing to say, no file.
mkdir "$T/none"
LD_PRELOAD=$LIB PORTGUARD_OPTIONS="log_path=$T/none/r format=json" sh -c 'true; /bin/true'
check "sh -c true under the library: exit 0" 0 $?
n=$(ls "$T/none" | wc -l)
check "no report file from processes without a socket ($n files)" 0 "$n"

# A forking parent: its child inherits the socket and exits cleanly (no
# file); the parent, which created it, writes one.
mkdir "$T/fork"
LD_PRELOAD=$LIB PORTGUARD_OPTIONS="log_path=$T/fork/r format=json" "$PY" -c '
import os, socket, sys
s = socket.socket()
pid = os.fork()
if pid == 0:
    sys.exit(0)
os.waitpid(pid, 0)
s.close()'
check "the forking python: exit 0" 0 $?
files=$(ls "$T/fork")
n=$(echo "$files" | grep -c .)
check "one report file, the parent's ($files)" 1 "$n"
python3 -c 'import json,sys; j=json.loads(open(sys.argv[1]).readline()); assert j["totals"]["created"]==1' "$T/fork/$files" &&
	ok "and it is the one that created the socket" || notok "and it is the one that created the socket"

# A forked child's exit report: its own descriptors (it closed the
# inherited one behind the library's back), and names without file:line
# (loading debug information in every child of a forking server costs more
# than its connection); symbolize=2 gives file:line there too.
child='
import ctypes, os, socket, sys
s = socket.socket()
pid = os.fork()
if pid == 0:
    fd = socket.socket(socket.AF_INET, socket.SOCK_DGRAM).detach()
    ctypes.CDLL(None).__close(s.detach())   # glibc alias of close: unseen
    sys.exit(0)
os.waitpid(pid, 0)
s.close()
print(pid)'
for sym in 1 2; do
	mkdir "$T/child$sym"
	kid=$(LD_PRELOAD=$LIB PORTGUARD_OPTIONS="log_path=$T/child$sym/r format=json symbolize=$sym" "$PY" -c "$child")
	python3 -c '
import json, sys
j = json.loads(open(sys.argv[1]).readline())
t = j["totals"]
assert (t["inherited"], t["closed_unseen"], t["created"], t["open"], t["leaked"]) == (1, 1, 1, 1, 1), t
frames = [f for s in j["sites"] for f in s["frames"]]
assert frames and any("function" in f for f in frames), frames[:3]
# C frames: a Python frame has its file and line whatever symbolize says.
files = [f for f in frames if "file" in f and "language" not in f]
assert (len(files) == 0) == (sys.argv[2] == "1"), (sys.argv[2], len(files))
' "$T/child$sym/r.$kid" "$sym" && ok "symbolize=$sym: a forked child reports its own descriptors; file:line $([ $sym = 1 ] && echo "left out" || echo "given")" ||
		notok "symbolize=$sym: a forked child's exit report"
done

leak='import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(); fd = s.detach()'
# stderr moved to a log file after start: the report goes to the fallback
# file, not into the log, and no line (stderr is not the program's).
mkdir "$T/tmp1"
TMPDIR=$T/tmp1 LD_PRELOAD=$LIB "$PY" -c "import os; fd = os.open('$T/app.log', os.O_WRONLY | os.O_CREAT); os.dup2(fd, 2); $leak" 2>"$T/err1"
pid_files=$(ls "$T/tmp1")
[[ $pid_files == portguard.* ]] && ok "stderr moved: the report went to \$TMPDIR/portguard.PID" || notok "stderr moved: the report went to the fallback file (got: $pid_files)"
grep -q 'SUMMARY: portguard: 1 socket(s) leaked' "$T/tmp1"/portguard.* 2>/dev/null && ok "and it is the whole report" || notok "and it is the whole report"
[ -s "$T/app.log" ] && notok "nothing went into the program's log" || ok "nothing went into the program's log"

# An unwritable log_path: fallback file, and one line on stderr naming it.
mkdir "$T/tmp2"
TMPDIR=$T/tmp2 LD_PRELOAD=$LIB PORTGUARD_OPTIONS="log_path=$T/no/such/dir/r" "$PY" -c "$leak" 2>"$T/err2"
f=$(ls "$T/tmp2")
[[ $f == portguard.* ]] && ok "log_path unwritable: the report went to \$TMPDIR/portguard.PID" || notok "log_path unwritable: fallback file (got: $f)"
n=$(grep -c "reports go to $T/tmp2/portguard\." "$T/err2")
check "one line on stderr names it" 1 "$n"

# argv0: what the user ran, beside the resolved exe.
ln -s "$PY" "$T/my-server"
mkdir "$T/argv"
LD_PRELOAD=$LIB PORTGUARD_OPTIONS="log_path=$T/argv/r format=json" "$T/my-server" -c "$leak"
python3 -c 'import json,sys,os; j=json.loads(open(sys.argv[1]).readline()); assert j["argv0"]==sys.argv[2], j["argv0"]; assert j["exe"]==os.path.realpath(sys.argv[3]), j["exe"]' "$T"/argv/r.* "$T/my-server" "$PY" &&
	ok "JSON: argv0 is the link the user ran, exe the file" || notok "JSON: argv0 and exe"
out=$(LD_PRELOAD=$LIB "$T/my-server" -c "$leak" 2>&1)
[[ $(echo "$out" | head -1) == *"exit report of $(readlink -f "$PY") (run as $T/my-server)" ]] &&
	ok "text: the header shows both" || notok "text: the header shows both (got: $(echo "$out" | head -1))"
finish
