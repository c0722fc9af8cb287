#!/usr/bin/env bash
# portguard run: which library goes into LD_PRELOAD, how PORTGUARD_OPTIONS is
# composed, argument and exit status passthrough, 126/127, bad arguments.
# The layouts are built from copies of the tool next to stand-in library
# files (ld.so says it cannot preload them and runs the program anyway), so
# this does not depend on the state of the library.
source "$(dirname "$0")/lib.sh"
ENVP=$ROOT/build/tests/prog_tool_env

for f in "$PG" "$ENVP"; do
	[ -x "$f" ] || { notok "$f is built"; exit 1; }
done

# run CMD in a clean environment plus the given assignments; prints stdout.
clean() { env -u LD_PRELOAD -u PORTGUARD_OPTIONS "$@" 2>/dev/null; }
var() { sed -n "s/^$1=//p"; }

mkdir -p "$T/tree" "$T/inst/bin" "$T/inst/lib" "$T/bare" "$T/link"
cp "$PG" "$T/tree/portguard"; : >"$T/tree/libportguard.so"
cp "$PG" "$T/inst/bin/portguard"; : >"$T/inst/lib/libportguard.so"
cp "$PG" "$T/bare/portguard"
ln -s "$T/inst/bin/portguard" "$T/link/portguard"

out=$(clean "$T/tree/portguard" run -- "$ENVP" 0)
check "library next to the tool" "$T/tree/libportguard.so" "$(var LD_PRELOAD <<<"$out")"
out=$(clean "$T/inst/bin/portguard" run -- "$ENVP" 0)
check "installed library in ../lib" "$T/inst/lib/libportguard.so" "$(var LD_PRELOAD <<<"$out")"
out=$(clean "$T/bare/portguard" run -- "$ENVP" 0)
check "bare name when there is no library beside the tool" "libportguard.so" "$(var LD_PRELOAD <<<"$out")"
out=$(clean "$T/link/portguard" run -- "$ENVP" 0)
check "a symlink to the tool finds the tool's own library" "$T/inst/lib/libportguard.so" "$(var LD_PRELOAD <<<"$out")"
if [ -e "$ROOT/build/libportguard.so" ]; then
	out=$(clean "$PG" run -- "$ENVP" 0)
	check "build tree: build/libportguard.so" "$ROOT/build/libportguard.so" "$(var LD_PRELOAD <<<"$out")"
fi

TL=$T/tree/libportguard.so
out=$(clean LD_PRELOAD=/nonexistent/libfoo.so "$T/tree/portguard" run -- "$ENVP" 0)
check "an LD_PRELOAD already set is kept, ours appended" "/nonexistent/libfoo.so $TL" "$(var LD_PRELOAD <<<"$out")"
out=$(clean LD_PRELOAD="$TL" "$T/tree/portguard" run -- "$ENVP" 0)
check "the library is not added twice" "$TL" "$(var LD_PRELOAD <<<"$out")"

out=$(clean "$T/tree/portguard" run -- "$ENVP" 0)
check "no flags: PORTGUARD_OPTIONS stays unset" "PORTGUARD_OPTIONS unset" "$(grep '^PORTGUARD_OPTIONS' <<<"$out")"
out=$(cd "$T" && clean "$T/tree/portguard" run -o logs/pg --json --exitcode 3 --policy ./p.conf \
	--option verbosity=2 --option stack_depth=4 -- "$ENVP" 0)
check "flags become PORTGUARD_OPTIONS, relative paths made absolute" \
	"log_path=$T/logs/pg:format=json:exitcode=3:policy=$T/p.conf:verbosity=2:stack_depth=4" \
	"$(var PORTGUARD_OPTIONS <<<"$out")"
out=$(clean PORTGUARD_OPTIONS="format=text stack_depth=2" "$T/tree/portguard" run --json -- "$ENVP" 0)
check "an existing PORTGUARD_OPTIONS comes first, ours after it" "format=text stack_depth=2:format=json" \
	"$(var PORTGUARD_OPTIONS <<<"$out")"
out=$(clean "$T/tree/portguard" run -o stderr -- "$ENVP" 0)
check "-o stderr is passed as is" "log_path=stderr" "$(var PORTGUARD_OPTIONS <<<"$out")"
out=$(clean "$T/tree/portguard" run -o "/tmp/a dir/pg" --policy /etc/x:y -- "$ENVP" 0)
check "paths with blanks or ':' are quoted" 'log_path="/tmp/a dir/pg":policy="/etc/x:y"' \
	"$(var PORTGUARD_OPTIONS <<<"$out")"

out=$(clean "$T/tree/portguard" run "$ENVP" 0 -x "a b" -- --json)
check "CMD's arguments pass untouched (no -- needed)" "argv[1]=-x|argv[2]=a b|argv[3]=--|argv[4]=--json" \
	"$(grep '^argv' <<<"$out" | paste -sd'|')"
clean "$T/tree/portguard" run -- "$ENVP" 0 >/dev/null; check "exit status 0 passes through" 0 $?
clean "$T/tree/portguard" run -- "$ENVP" 42 >/dev/null; check "exit status 42 passes through" 42 $?
# (bash reports "Terminated" on stderr for a child killed by a signal)
(clean "$T/tree/portguard" run -- "$ENVP" kill >/dev/null) 2>/dev/null
check "death by SIGTERM passes through (143)" 143 $?

err=$("$T/tree/portguard" run -- no-such-command-pg 2>&1 >/dev/null); rc=$?
check "a command not found exits 127" 127 "$rc"
[[ $err == *"no-such-command-pg: command not found"* ]] && ok "and says so" || notok "and says so (got: $err)"
"$T/tree/portguard" run -- "$T/nope/x" 2>/dev/null; check "a missing path exits 127" 127 $?
: >"$T/noexec"; chmod 0644 "$T/noexec"
if [ "$(id -u)" -ne 0 ] || [ ! -x "$T/noexec" ]; then
	"$T/tree/portguard" run -- "$T/noexec" 2>/dev/null; check "a file that is not executable exits 126" 126 $?
fi
"$T/tree/portguard" run -- "$T" 2>/dev/null; check "a directory exits 126" 126 $?

usage() { # what expected-rc args...
	local what=$1 want=$2 err rc
	shift 2
	err=$("$PG" run "$@" 2>&1 >/dev/null); rc=$?
	if [ "$rc" -eq "$want" ] && [[ $err == *"usage: portguard run"* ]]; then ok "$what"; else notok "$what (rc $rc)"; fi
}
usage "no command: usage, exit 2" 2
usage "unknown option: usage, exit 2" 2 --bogus -- true
usage "--exitcode 300: usage, exit 2" 2 --exitcode 300 -- true
usage "--exitcode x: usage, exit 2" 2 --exitcode x -- true
usage "--option without '=': usage, exit 2" 2 --option verbosity -- true
usage "-o without a value: usage, exit 2" 2 -o
out=$("$PG" run --help); rc=$?
[ "$rc" -eq 0 ] && [[ $out == "usage: portguard run"* ]] && ok "run --help: usage on stdout, exit 0" || notok "run --help"

# With the real library, when it is built: the report lands where -o says.
if [ -e "$ROOT/build/libportguard.so" ]; then
	mkdir -p "$T/rep"
	# A process writes a report only when it has something of its own
	# to say: one socket, made and closed.
	PY=$(python3 -c 'import sys; print(sys.executable)')
	clean "$PG" run --json -o "$T/rep/pg" -- "$PY" -c 'import socket, sys; socket.socket().close(); sys.exit(7)' >/dev/null; rc=$?
	check "under the library the status still passes through" 7 "$rc"
	f=$(ls "$T"/rep/pg.* 2>/dev/null | head -n1)
	if [ -n "$f" ] && grep -q '"reason": *"exit"' "$f"; then ok "the library wrote its JSON exit report to -o PATH.PID"
	else notok "the library wrote its JSON exit report to -o PATH.PID"; fi
fi
exit $((fails > 0))
