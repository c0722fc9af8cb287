#!/usr/bin/env bash
# portguard ports --watch: under tmux (a real terminal), the view is drawn,
# updates as a loopback tuple climbs (prog_tool_churn makes 40 more
# TIME_WAIT sockets at each SIGUSR1), shows the climb in the tuple's
# sparkline, and quits on q and on Ctrl-C with the terminal as it was; a
# small terminal gets the frame cut to its height, the header kept; a tuple
# that appears mid-watch shows its change from 0; SIGTERM quits cleanly.
# Not a terminal: plain frames, no escape sequence, SIGTERM quits with 0.
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
# At least N: a connect may take the port of one of the tuple's TIME_WAIT
# sockets (tcp_tw_reuse on loopback), so a batch of 40 can add 39.
used_ge() { local u; u=$(used_of "$1"); [ -n "$u" ] && [ "$u" -ge "$2" ]; }
done_ok() { [ -s "$1" ]; }
pane_has() { cap "$1"; grep -q -- "$2" "$T/cap.$1"; }
# After quitting: the pane's alternate screen off, cursor shown, lines wrap.
tm_flags() { "${TM[@]}" display-message -p -t "$1" '#{alternate_on} #{cursor_flag} #{wrap_flag}'; }

"${TM[@]}" new-session -d -s a -x 200 -y 50 "$(pane_cmd "$T/rc.a" 3)"
wait_until 20 "the view with $R at 40 ports" used_is a 40 ||
	{ notok "the view drawn with $R at 40 ports"; cat "$T/cap.a"; finish; }
grep -q 'LAST MINUTE' "$T/cap.a"; cond "the view has the LAST MINUTE column" $?
check "the first line is the view's header, not scrolled off" "portguard ports --watch 3s" \
	"$(head -1 "$T/cap.a" | cut -c1-26)"
for n in 1 2; do
	kill -USR1 "$CP"
	wait_for "$T/churn" "^batch $n" || notok "batch $n made"
	wait_until 20 "the view to show $R at $((40 + 35 * n))+ ports" used_ge a $((40 + 35 * n)) ||
		notok "the view updated to $((40 + 35 * n))+"
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
rising = (len(set(levels)) >= 3 and all(a <= b for a, b in zip(levels, levels[1:])))
print("%s - the sparkline climbs with the tuple: '%s' (levels %s)" %
      ("ok" if rising else "not ok", spark, levels))
change = row[b:].split()[0]
grew = int(change) if change.lstrip("+-").isdigit() else 0
print("%s - CHANGE over the window: %s (two batches of 40 more ports)" % ("ok" if 70 <= grew <= 80 else "not ok", change))
PYEOF
)
echo "$spark"
fails=$((fails + $(grep -c '^not ok' <<<"$spark")))
"${TM[@]}" send-keys -t a x
"${TM[@]}" send-keys -t a q
wait_until 10 "ports --watch to quit on q" done_ok "$T/rc.a"
check "q: exit 0, the terminal's settings as before" "rc=0 same=yes" "$(cat "$T/rc.a" 2>/dev/null)"
check "q: alternate screen off, cursor shown, lines wrap" "0 1 1" "$(tm_flags a)"
cap a
grep -q 'LAST MINUTE' "$T/cap.a"; cond "after q the view is gone (alternate screen left)" $((!$?))

# A small terminal, quit by Ctrl-C: the frame cut to 12 rows, its header
# kept (which tuples fit depends on what else the machine holds).
"${TM[@]}" new-session -d -s b -x 120 -y 12 "$(pane_cmd "$T/rc.b" 0.2)"
wait_until 20 "the small view's table" pane_has b '^LOCAL ' || notok "the small view drawn"
check "12 rows: the header still on the first line" "portguard ports --watch 0.2s" \
	"$(head -1 "$T/cap.b" | cut -c1-28)"
check "12 rows: the capture is 12 lines" 12 "$(wc -l <"$T/cap.b")"
"${TM[@]}" send-keys -t b C-c
wait_until 10 "ports --watch to quit on Ctrl-C" done_ok "$T/rc.b" || notok "Ctrl-C quit"
check "Ctrl-C: exit 0, the terminal's settings as before" "rc=0 same=yes" "$(cat "$T/rc.b" 2>/dev/null)"
check "Ctrl-C: alternate screen off, cursor shown, lines wrap" "0 1 1" "$(tm_flags b)"

# A tuple that appears while watching: its change counted from 0 (the
# readings before it saw none), so a burst shows with a forecast; then
# SIGTERM quits cleanly.
"${TM[@]}" new-session -d -s c -x 200 -y 50 "$(pane_cmd "$T/rc.c" 0.2)"
wait_until 20 "the third view" pane_has c '^portguard ports --watch' || notok "the third view drawn"
"$CHURN" -t 30 -T 120 >"$T/churn2" 2>&1 &
CP2=$!; started "$CP2"
wait_for "$T/churn2" '^ready' || notok "the second prog_tool_churn started"
R2="127.0.0.1:$(awk '$1 == "listen" {print $3}' "$T/churn2")"
row2() { cap c; awk -v r="$R2" '$2 == r { print; exit }' "$T/cap.c"; }
row2_has_30() { [ "$(row2 | awk '{print $3}')" = 30 ]; }
wait_until 20 "the new tuple $R2 in the view" row2_has_30 || notok "the new tuple drawn"
row=$(row2)
echo "# $row"
change=$(awk '{ for (i = 1; i <= NF; i++) if ($i == "in" && $(i - 1) ~ /^[+-][0-9]+$/) { print $(i - 1); exit } }' <<<"$row")
check "a tuple new while watching: CHANGE from 0" "+30" "$change"
# FULL IN: once the change spans a second or more.
full_of() { awk '{ for (i = 1; i <= NF; i++) if ($i == "in" && $(i + 1) ~ /s$/) { print $(i + 2); exit } }'; }
has_forecast() { [[ $(row2 | full_of) =~ ^[0-9]+[smhd]$ ]]; }
wait_until 20 "a FULL IN forecast for $R2" has_forecast; rc=$?
cond "... and a FULL IN forecast: $(row2 | full_of) ($(row2 | awk '{print $7, $8, $9}'))" "$rc"
wpid=$(pgrep -P "$("${TM[@]}" display-message -p -t c '#{pane_pid}')" -x portguard)
kill -TERM "$wpid"
wait_until 10 "ports --watch to quit on SIGTERM" done_ok "$T/rc.c" || notok "SIGTERM quit"
check "SIGTERM: exit 0, the terminal's settings as before" "rc=0 same=yes" "$(cat "$T/rc.c" 2>/dev/null)"
check "SIGTERM: alternate screen off, cursor shown, lines wrap" "0 1 1" "$(tm_flags c)"

# Not a terminal: plain frames.
"$PG" ports --watch 0.2 </dev/null >"$T/plain" 2>&1 &
WP=$!; started "$WP"
frames() { [ "$(grep -c '^portguard ports --watch' "$T/plain")" -ge "$1" ]; }
wait_until 20 "3 plain frames" frames 3 || notok "3 plain frames"
grep -q "$R" "$T/plain"; cond "plain frames show $R" $?
grep -q $'\033' "$T/plain"; cond "plain frames: no escape sequence" $((!$?))
kill -TERM "$WP"
gone() { ! kill -0 "$WP" 2>/dev/null || grep -q '^State:.*Z' "/proc/$WP/status" 2>/dev/null; }
wait_until 10 "the plain watch to end" gone || notok "the plain watch ended on SIGTERM"
wait "$WP"; rc=$?
check "plain: SIGTERM quits with status 0" 0 "$rc"
"$PG" ports --watch 0 >/dev/null 2>&1; check "--watch 0: usage, exit 2" 2 $?
"$PG" ports --watch --json >/dev/null 2>&1; check "--watch with --json: usage, exit 2" 2 $?
"$PG" ports --watch=0.5 --pid 999999999 </dev/null >/dev/null 2>"$T/err"; rc=$?
check "--watch --pid of no process: exit 3" 3 "$rc"
grep -q 'no process with pid' "$T/err"; cond "... and says so" $?
finish
