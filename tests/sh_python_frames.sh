#!/usr/bin/env bash
# Python frames in reports (issue 13, SPEC section 2): real CPython
# programs under the library, pyenv's 3.11 (debug information) and Debian's
# /usr/bin/python3.11 (stripped), and pyenv's 3.12 and 3.13 when present: two leaks in two functions of two files
# are two sites with the right function, file and line, in a dump, a
# signal report and the exit report; properly closed sockets are not
# listed; sockets the interpreter's finalizer closed (dropped, a cycle,
# asyncio's __del__, shutdown) are finalized, leaked at exit; a thread making sockets while another holds the GIL, and asyncio,
# get right stacks; --folded and a merge of two processes keep them apart.
. "$(dirname "$0")/lib.sh"
CHECK=$ROOT/tests/py/check_report.py

# The interpreters: real executables (python3 may be pyenv's shell shim,
# which would load the library into bash too).
pys=()
real=$(python3.11 -c 'import sys; print(sys.executable)' 2>/dev/null)
[ -n "$real" ] && [ -x "$real" ] && pys+=("$real")
if [ -x /usr/bin/python3.11 ] && [ "$real" != /usr/bin/python3.11 ]; then pys+=(/usr/bin/python3.11); fi
# And 3.12, 3.13 where pyenv has them (their frames and socket type are
# laid out otherwise; 3.13's are read from its _Py_DebugOffsets).
for p in "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.1[23].*/bin/python3.1[23]; do
	[ -x "$p" ] && pys+=("$p")
done
if [ ${#pys[@]} = 0 ]; then
	echo "ok - no CPython 3.11 on this machine # SKIP make deps installs Debian's python3"
	finish
fi

# start_py NAME PY SCRIPT [ARGS]: under the library, stdin a FIFO we hold;
# sets PID, waits for "ready".
start_py() {
	local name=$1 py=$2
	shift 2
	rm -f "$T/$name.in"
	mkfifo "$T/$name.in"
	PORTGUARD_OPTIONS="log_path=$T/$name format=json ${PYOPTS:-}" LD_PRELOAD=$LIB \
		"$py" "$@" <"$T/$name.in" >"$T/$name.out" 2>"$T/$name.err" &
	PID=$!
	started "$PID"
	exec 7>"$T/$name.in"
	wait_for "$T/$name.out" '^ready' 60 || { cat "$T/$name.err"; return 1; }
}
stop_py() { # ends the program (a line on stdin), waits for it
	exec 7>&-
	wait "$PID"
}

for py in "${pys[@]}"; do
	v=$("$py" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
	echo "# $py (CPython $v)"
	case $v in 3.11 | 3.12 | 3.13) ;; *) notok "$py is not 3.11 to 3.13"; continue ;; esac
	tag=$(echo "$py" | tr -c 'a-z0-9\n' _)

	start_py "app$tag" "$py" tests/py/app.py || { notok "$py: app.py ready"; continue; }
	"$PG" dump --json "$PID" >"$T/dump$tag.json"
	cond "$py: dump --json" $?
	python3 "$CHECK" "$T/dump$tag.json" app | sed "s|^\(not \)\?ok - |&$v dump: |"
	cond "$py: dump checks" "${PIPESTATUS[0]}"
	"$PG" dump "$PID" >"$T/dump$tag.txt"
	line=$(grep -n LEAK-DB tests/py/svc/db.py | cut -d: -f1)
	cond "$py: the text report names 'in connect_backend .../svc/db.py:$line'" \
		"$(grep -q "#[0-9]* in connect_backend .*tests/py/svc/db.py:$line\$" "$T/dump$tag.txt"; echo $?)"
	# A signal report (the program has no handler of its own for USR1).
	kill -USR1 "$PID"
	wait_until 30 "a signal report" grep -q '"reason": "signal"' "$T/app$tag.$PID"
	python3 "$CHECK" "$T/app$tag.$PID" app signal | sed "s|^\(not \)\?ok - |&$v signal: |"
	cond "$py: signal report checks" "${PIPESTATUS[0]}"
	stop_py
	python3 "$CHECK" "$T/app$tag.$PID" exit exit | sed "s|^\(not \)\?ok - |&$v exit: |"
	cond "$py: exit report checks" "${PIPESTATUS[0]}"

	# The same from a thread while the main thread holds the GIL.
	start_py "thr$tag" "$py" tests/py/app.py --thread || { notok "$py: --thread ready"; continue; }
	"$PG" dump --json "$PID" >"$T/thr$tag.json"
	python3 "$CHECK" "$T/thr$tag.json" app | sed "s|^\(not \)\?ok - |&$v thread: |"
	cond "$py: a thread's sockets while another holds the GIL" "${PIPESTATUS[0]}"
	stop_py

	# Sockets closed by the interpreter's finalizer, and by the program.
	start_py "fin$tag" "$py" tests/py/finalize_app.py || { notok "$py: finalize ready"; continue; }
	kill -USR1 "$PID"
	wait_until 30 "a signal report" grep -q '"reason": "signal"' "$T/fin$tag.$PID"
	python3 "$CHECK" "$T/fin$tag.$PID" finalize signal | sed "s|^\(not \)\?ok - |&$v finalizer, running: |"
	cond "$py: finalized sockets listed while it runs, not counted as leaked" "${PIPESTATUS[0]}"
	stop_py
	python3 "$CHECK" "$T/fin$tag.$PID" finalize-exit exit | sed "s|^\(not \)\?ok - |&$v finalizer, exit: |"
	cond "$py: finalized sockets are leaked at exit, closed ones are not" "${PIPESTATUS[0]}"
	"$PG" report "$T/fin$tag.$PID" >"$T/fin$tag.txt"
	check "$py: the merged text report says 4 finalized" 4 \
		"$(grep -c "closed by the interpreter's finalizer, never by the program" "$T/fin$tag.txt")"

	start_py "aio$tag" "$py" tests/py/asyncio_app.py || { notok "$py: asyncio ready"; continue; }
	"$PG" dump --json "$PID" >"$T/aio$tag.json"
	python3 "$CHECK" "$T/aio$tag.json" asyncio | sed "s|^\(not \)\?ok - |&$v asyncio: |"
	cond "$py: asyncio's socket has its coroutine's frames" "${PIPESTATUS[0]}"
	stop_py
done

# A test suite under `portguard run`: pytest (Debian's python3-pytest, for
# the Debian interpreter) names the test that left its socket to the
# garbage collector.
if [ -x /usr/bin/python3.11 ] && /usr/bin/python3.11 -c 'import pytest' 2>/dev/null; then
	"$PG" run -o "$T/pytest" --json -- /usr/bin/python3.11 -m pytest -q -p no:cacheprovider \
		tests/py/suite/leaky_test.py >"$T/pytest.out" 2>&1
	check "pytest under portguard run: the suite passes (exit 0)" 0 $?
	rep=$(grep -l '"reason": "exit"' "$T"/pytest.* 2>/dev/null | head -1)
	want=$(grep -n SUITE-LEAK tests/py/suite/leaky_test.py | cut -d: -f1)
	got=$(jq -r --arg f leaky_test.py 'select(.reason == "exit") | .sites[] |
		select(.leaked > 0) | [.frames[] | select(.language == "python" and
		(.file | endswith($f)))][0] | "\(.function):\(.line)"' "${rep:-/dev/null}" 2>/dev/null)
	check "pytest: the one leaking site is connect_and_forget, line $want" \
		"connect_and_forget:$want" "$got"
	check "pytest: leaked and finalized at exit" "1 1" \
		"$(jq -r 'select(.reason == "exit") | [.sites[] | select(.leaked > 0 and
			([.frames[] | .file // "" | endswith("leaky_test.py")] | any))] |
			"\(map(.leaked) | add) \(map(.sockets[] | select(.closed_by == "finalizer")) | length)"' \
			"${rep:-/dev/null}" 2>/dev/null)"
else
	echo "ok - pytest under portguard run # SKIP no pytest for /usr/bin/python3.11 (make deps installs python3-pytest)"
fi

# native_frames=1 keeps the interpreter's frames; a suppression names a
# Python function (and one a Python file).
printf 'leak:connect_backend\nleak:svc/cache.py\n' >"$T/supp"
PYOPTS="native_frames=1 suppressions=$T/supp" start_py native "${pys[0]}" tests/py/app.py &&
	"$PG" dump "$PID" >"$T/native.txt"
cond "native_frames=1: dump" $?
stop_py
cond "native_frames=1: _PyEval_EvalFrameDefault shown between Python frames" \
	"$(grep -A3 'in socket.__init__' "$T/native.txt" | grep -q _PyEval_EvalFrameDefault; echo $?)"
cond "suppressions match a Python function and a Python file: only the listener leaks" \
	"$(grep -q 'SUMMARY: portguard: 1 socket(s) leaked from 1 call site' "$T/native.txt"; echo $?)"

# --folded, and a merge of two processes of the same interpreter: two
# Python sites stay two, and each sums both processes.
a=${pys[0]}
ta=$(echo "$a" | tr -c 'a-z0-9\n' _)
"$PG" report --folded "$T/dump$ta.json" >"$T/folded"
cond "--folded names connect_backend with its file and line" \
	"$(grep -q 'connect_backend (.*svc/db.py:[0-9]*)' "$T/folded"; echo $?)"
start_py second "$a" tests/py/app.py && "$PG" dump --json "$PID" >"$T/second.json"
cond "a second process dumped" $?
stop_py
"$PG" report "$T/dump$ta.json" "$T/second.json" >"$T/merged"
cond "merged report exits 0" $?
check "merged: one site each for the listener, db.py and cache.py" 3 "$(grep -c '^Leak of' "$T/merged")"
cond "merged: db.py's site has the leaks of both processes (6)" \
	"$(grep -A12 '^Leak of 6 socket' "$T/merged" | grep -q 'in connect_backend .*svc/db.py:[0-9]*$'; echo $?)"
cond "merged: cache.py's site has both (2), shown as 'in FUNCTION FILE:LINE'" \
	"$(grep -A12 '^Leak of 2 socket' "$T/merged" | grep -q 'in open_cache .*svc/cache.py:[0-9]*$'; echo $?)"
finish
