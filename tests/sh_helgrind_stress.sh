#!/usr/bin/env bash
# The stress test under helgrind: 8 threads creating and closing sockets
# (one leak each) under the preloaded library while report signals arrive.
# No race or lock-order error may be reported (tests/helgrind.supp names the
# atomic flags of the signal path, which helgrind cannot read), and the exit
# report must still say exactly 8 leaked. Signals are sent only once the
# program says "ready" (its main runs, so the library's constructor has): a
# signal before that would kill it, and under helgrind that can take seconds.
source "$(dirname "$0")/lib.sh"
if ! command -v valgrind >/dev/null; then
	echo "ok - stress under helgrind # SKIP valgrind is not installed"
	exit 0
fi
THREADS=8 PER=3000

LD_PRELOAD=$LIB PORTGUARD_OPTIONS="log_path=$T/r format=json symbolize=0" \
	valgrind --tool=helgrind --suppressions=tests/helgrind.supp --log-file="$T/hg.log" \
	build/tests/prog_stress $THREADS $PER >"$T/out" 2>&1 &
p=$!
started "$p"
sent=0
if wait_for "$T/out" '^ready' 300; then
	# Bounded: the program ends by itself; at most 3000 signals.
	while kill -0 "$p" 2>/dev/null && [ $sent -lt 3000 ]; do
		grep -q '^done' "$T/out" && break
		kill -USR1 "$p" 2>/dev/null && sent=$((sent + 1))
		sleep 0.1
	done
fi
wait "$p"
rc=$?
reports=$(cat "$T"/r.* 2>/dev/null | grep -c '"reason": "signal"')
echo "# $sent report signal(s) sent, $reports signal report(s) written"
summary=$(grep -o 'ERROR SUMMARY: [0-9]* errors' "$T/hg.log")
echo "# helgrind: $summary"
if [ "$rc" = 0 ] && [ "$summary" = "ERROR SUMMARY: 0 errors" ]; then
	ok "helgrind reports no race or lock-order error"
else
	notok "helgrind reports no race or lock-order error (exit $rc)"
	grep -A12 -E "Possible data race|lock order" "$T/hg.log" | head -60 | sed 's/^/# /'
fi
cond "report signals were sent and answered" "$([ $sent -gt 0 ] && [ "$reports" -gt 0 ]; echo $?)"
leaked=$(cat "$T"/r.* | jq -s '[.[] | select(.reason == "exit")][0].totals | "\(.leaked) \(.created) \(.closed)"' -r)
check "under helgrind the exit report says $THREADS leaked, every socket accounted for" \
	"$THREADS $((THREADS * PER)) $((THREADS * PER - THREADS))" "$leaked"
finish
