#!/usr/bin/env bash
# A socket inherited across exec and closed twice is a double close (SPEC
# section 2: inherited sockets count too, their "created" stack empty): a
# Python program makes a socket, execs a Python program under the library
# that closes its descriptor twice.
source "$(dirname "$0")/lib.sh"
# Debian's python3 (make deps installs it): 3.11, whose Python frames the report has.
PY=/usr/bin/python3
[ -x "$PY" ] || PY=$(python3 -c 'import sys; print(sys.executable)')
cat >"$T/exec.py" <<'PYEOF'
import os, socket, sys
s = socket.socket()
os.set_inheritable(s.fileno(), True)
prog = "import os\nos.close(%d)\ntry:\n    os.close(%d)\nexcept OSError as e:\n    print(e)\n"
os.execv(sys.executable, [sys.executable, "-c", prog % (s.fileno(), s.fileno())])
PYEOF
out=$(LD_PRELOAD=$LIB PORTGUARD_OPTIONS="log_path=$T/r format=json" "$PY" "$T/exec.py")
check "the second close failed (EBADF) as without the library" "[Errno 9] Bad file descriptor" "$out"
# The exec'd process's report: the one with an inherited socket.
rep=$(grep -l '"inherited": 1' "$T"/r.* | head -1)
check "the exec'd process inherited the socket and closed it" "1 1 0" \
	"$(jq -r '.totals | "\(.inherited) \(.closed) \(.leaked)"' "${rep:-/dev/null}")"
check "its double close is reported, created stack empty, both closes at their Python lines" \
	"1 0 2 4" "$(jq -r '.double_closes[0] | "\(.count) \(.created | length) \(
		[.closed[] | select(.language == "python")][0].line) \(
		[.closed_again[] | select(.language == "python")][0].line)"' "${rep:-/dev/null}")"
finish
