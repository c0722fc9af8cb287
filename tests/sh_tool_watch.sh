#!/usr/bin/env bash
# portguard ports --watch: under tmux (a real terminal), the view is drawn,
# updates as a loopback tuple climbs (prog_tool_churn makes 40 more
# TIME_WAIT sockets at each SIGUSR1), shows the climb in the tuple's
# sparkline, and quits on q and on Ctrl-C with the terminal as it was; a
# small terminal gets the frame cut to its height, the header kept. Not a
# terminal: plain frames, no escape sequence, SIGINT quits with status 0.
source "$(dirname "$0")/lib.sh"
CHURN=$ROOT/build/tests/prog_tool_churn
command -v tmux >/dev/null || { notok "tmux is not installed (make deps installs it)"; finish; }
TM=(tmux -L "pgwatch$$" -f /dev/null)
tm_cleanup() { "${TM[@]}" kill-server 2>/dev/null; pg_cleanup; }
trap tm_cleanup EXIT

"$CHURN" -t 40 -T 120 >"$T/churn" 2>&1 &
CP=$!; started "$CP"
wait_for "$T/churn" '^ready' || { notok "prog_tool_churn started: $(cat "$T/churn")"; finish; }
P4=$(awk '$1 == "listen" {print $3}' "$T/churn")
R="127.0.0.1:$P4"

# In the pane: the terminal's settings before and after, and the status.
pane_cmd() { # session-file interval
	echo "before=\$(stty -g); env LANG=C.UTF-8 LC_ALL=C.UTF-8 '$PG' ports --watch $2; rc=\$?; " \
		"after=\$(stty -g); [ \"\$before\" = \"\$after\" ] && same=yes || same=no; " \
		"echo \"rc=\$rc same=\$same\" >'$1'; exec sleep 120"
}
cap() { "${TM[@]}" capture-pane -p -t "$1" >"$T/cap.$1"; }
# The USED column of the row of $R in the pane.
used_of() { cap "$1"; awk -v r="$R" '$2 == r { print $3; exit }' "$T/cap.$1"; }
used_is() { [ "$(used_of "$1")" = "$2" ]; }
done_ok() { [ -s "$1" ]; }

"${TM[@]}" new-session -d -s a -x 200 -y 50 "$(pane_cmd "$T/rc.a" 3)"
wait_until 20 "the view with $R at 40 ports" used_is a 40 || { cat "$T/cap.a"; finish; }
grep -q 'LAST MINUTE' "$T/cap.a"; cond "the view has the LAST MINUTE column" $?
check "the first line is the view's header, not scrolled off" "portguard ports --watch 3s" \
	"$(head -1 "$T/cap.a" | cut -c1-26)"
for n in 1 2; do
	kill -USR1 "$CP"
	wait_for "$T/churn" "^batch $n" || notok "batch $n made"
	wait_until 20 "the view to show $R at $((40 + 40 * n)) ports" used_is a $((40 + 40 * n)) ||
		notok "the view updated to $((40 + 40 * n))"
done
cap a
spark=$(python3 - "$T/cap.a" "$R" <<'PYEOF'
import sys
lines = open(sys.argv[1], encoding="utf-8").read().splitlines()
head = next(l for l in lines if "LAST MINUTE" in l)
row = next(l for l in lines if len(l.split()) > 1 and l.split()[1] == sys.argv[2])
a, b = head.index("LAST MINUTE"), head.index("CHANGE")
spark = row[a:b].strip()
bars = "\u2581\u2582\u2583\u2584\u2585\u2586\u2587\u2588"
levels = [bars.index(c) for c in spark if c in bars]
rising = len(levels) >= 3 and levels[-3] < levels[-2] < levels[-1]
print("%s - the sparkline climbs with the tuple: '%s' (levels %s)" %
      ("ok" if rising else "not ok", spark, levels))
change = row[b:].split()[0]
print("%s - CHANGE over the window: %s (80 more ports)" % ("ok" if change == "+80" else "not ok", change))
PYEOF
)
echo "$spark"
fails=$((fails + $(grep -c '^not ok' <<<"$spark")))
"${TM[@]}" send-keys -t a x
"${TM[@]}" send-keys -t a q
wait_until 10 "ports --watch to quit on q" done_ok "$T/rc.a"
check "q: exit 0, the terminal's settings as before" "rc=0 same=yes" "$(cat "$T/rc.a" 2>/dev/null)"
cap a
grep -q 'LAST MINUTE' "$T/cap.a"; cond "after q the view is gone (alternate screen left)" $((!$?))

# A small terminal, quit by Ctrl-C.
"${TM[@]}" new-session -d -s b -x 120 -y 12 "$(pane_cmd "$T/rc.b" 0.2)"
wait_until 20 "the small view with $R" used_is b 120 || cat "$T/cap.b"
check "12 rows: the header still on the first line" "portguard ports --watch 0.2s" \
	"$(head -1 "$T/cap.b" | cut -c1-28)"
"${TM[@]}" send-keys -t b C-c
wait_until 10 "ports --watch to quit on Ctrl-C" done_ok "$T/rc.b"
check "Ctrl-C: exit 0, the terminal's settings as before" "rc=0 same=yes" "$(cat "$T/rc.b" 2>/dev/null)"

# Not a terminal: plain frames.
"$PG" ports --watch 0.2 </dev/null >"$T/plain" 2>&1 &
WP=$!; started "$WP"
frames() { [ "$(grep -c '^portguard ports --watch' "$T/plain")" -ge "$1" ]; }
wait_until 20 "3 plain frames" frames 3
grep -q "$R" "$T/plain"; cond "plain frames show $R" $?
grep -q $'\033' "$T/plain"; cond "plain frames: no escape sequence" $((!$?))
kill -INT "$WP"; wait "$WP"; rc=$?
check "plain: SIGINT quits with status 0" 0 "$rc"
"$PG" ports --watch 0 >/dev/null 2>&1; check "--watch 0: usage, exit 2" 2 $?
"$PG" ports --watch --json >/dev/null 2>&1; check "--watch with --json: usage, exit 2" 2 $?
"$PG" ports --watch=0.5 --pid 999999999 </dev/null >/dev/null 2>"$T/err"; rc=$?
check "--watch --pid of no process: exit 3" 3 "$rc"
grep -q 'no process with pid' "$T/err"; cond "... and says so" $?
finish
