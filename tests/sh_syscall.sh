#!/usr/bin/env bash
# syscall() (issue 14, SPEC section 2): descriptors made, copied and closed
# through syscall() are followed as through their wrappers; every other
# number passes through with the same return value and errno. A C program
# (tests/prog_syscall.c) against a run without the library; node, whose
# libuv closes with syscall(SYS_close), churning short connections it
# closes first, and closing one descriptor twice.
source "$(dirname "$0")/lib.sh"

build/tests/prog_syscall >"$T/bare" 2>&1
LD_PRELOAD=$LIB PORTGUARD_OPTIONS="log_path=$T/c format=json" build/tests/prog_syscall \
	>"$T/lib" 2>&1
cond "prog_syscall: every line (return value, errno) as without the library" \
	"$(diff "$T/bare" "$T/lib" >"$T/diff"; echo $?)"
[ -s "$T/diff" ] && sed 's/^/# /' "$T/diff" | head -20
check "prog_syscall: the table ran (40 lines)" 40 "$(wc -l <"$T/lib")"
t=$(jq -r 'select(.reason == "exit") | .totals |
	"\(.created) \(.closed) \(.closed_unseen) \(.open) \(.leaked) \(.double_closes)"' "$T"/c.*)
check "syscall(SYS_close) counts closed, not closed unseen; one leak, one double close" \
	"8 7 0 1 1 1" "$t"
line=$(grep -n LEAK-SYSCALL tests/prog_syscall.c | cut -d: -f1)
check "the leak is at its syscall(SYS_socket) line" "main:$line" \
	"$(jq -r 'select(.reason == "exit") | .sites[] | select(.leaked > 0) |
		"\(.frames[0].function):\(.frames[0].line)"' "$T"/c.*)"
first=$(grep -n 'SHOW(syscall(SYS_close, s));' tests/prog_syscall.c | head -1 | cut -d: -f1)
check "the double close: created, closed and closed again at their lines" \
	"$((first - 1)) $first $((first + 1))" \
	"$(jq -r 'select(.reason == "exit") | .double_closes[0] |
		"\(.created[0].line) \(.closed[0].line) \(.closed_again[0].line)"' "$T"/c.*)"

if ! command -v node >/dev/null; then
	echo "ok - node under the library # SKIP node is not installed (make deps installs nodejs)"
	finish
fi
echo "churn warn_per_sec=50" >"$T/policy"
LD_PRELOAD=$LIB PORTGUARD_OPTIONS="log_path=$T/n format=json policy=$T/policy" \
	timeout 120 node tests/node/churn.js 2000 >"$T/node.out" 2>&1
check "node: churn.js runs to its end" "0 done" "$? $(cat "$T/node.out")"
rep=$(grep -l '"reason": "exit"' "$T"/n.* | head -1)
t=$(jq -r 'select(.reason == "exit") | .totals |
	"\(.created) \(.closed) \(.closed_unseen) \(.double_closes)"' "${rep:-/dev/null}")
echo "# node totals: created closed closed_unseen double_closes = $t"
read -r created closed unseen dcs <<<"$t"
cond "node: its closes (syscall(SYS_close)) count as closed, none unseen (of $created)" \
	"$([ "${created:-0}" -ge 4000 ] && [ "$closed" = "$created" ] && [ "$unseen" = 0 ]; echo $?)"
check "node: its double close is reported" 1 "$dcs"
check "node: closed again by libuv's close" uv__close_nocancel \
	"$(jq -r 'select(.reason == "exit") | .double_closes[0].closed_again[0].function' "$rep")"
warns=$(grep -h '"event": "churn"' "$T"/n.* | jq -rs 'map(.forecast) | join(" ")')
echo "# node churn warnings: $warns"
# 2,000 closes in a second or two forecast exhaustion (>= 377 a second pins 80 %
# of the default range); a machine slow enough to take over 5 s still warns.
cond "node: the churn warning comes (exhaustion foretold, or a warning on a slow machine)" \
	"$([ -n "$warns" ] && case ${warns##* } in exhaustion | warning) true ;; *) false ;; esac; echo $?)"
ac=$(jq -r 'select(.reason == "exit") | .destinations[0].active_closes' "$rep")
cond "node: the exit report's destination counts every active close ($ac)" \
	"$([ "${ac:-0}" -ge 2000 ]; echo $?)"
finish
