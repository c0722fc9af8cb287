#!/usr/bin/env bash
# The stress test under helgrind: 8 threads creating and closing sockets
# (one leak each) under the preloaded library while report signals arrive.
# No race or lock-order error may be reported (tests/helgrind.supp names the
# atomic flags of the signal path, which helgrind cannot read), and the exit
# report must still say exactly 8 leaked.
set -u
cd "$(dirname "$0")/.." || exit 2
if ! command -v valgrind >/dev/null; then
	echo "ok - stress under helgrind # SKIP valgrind is not installed"
	exit 0
fi
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
THREADS=8 PER=3000

LD_PRELOAD=$PWD/build/libportguard.so PORTGUARD_OPTIONS="log_path=$T/r format=json symbolize=0" \
	valgrind --tool=helgrind --suppressions=tests/helgrind.supp --log-file="$T/hg.log" \
	build/tests/prog_stress $THREADS $PER >"$T/out" 2>&1 &
p=$!
sleep 0.5
sent=0
while kill -0 "$p" 2>/dev/null; do
	kill -USR1 "$p" 2>/dev/null && sent=$((sent + 1))
	sleep 0.1
done
wait "$p"
rc=$?
reports=$(cat "$T"/r.* 2>/dev/null | grep -c '"reason": "signal"')
echo "# $sent report signal(s) sent, $reports signal report(s) written"
summary=$(grep -o 'ERROR SUMMARY: [0-9]* errors' "$T/hg.log")
echo "# helgrind: $summary"
if [ "$rc" = 0 ] && [ "$summary" = "ERROR SUMMARY: 0 errors" ]; then
	echo "ok - helgrind reports no race or lock-order error"
else
	echo "not ok - helgrind reports no race or lock-order error (exit $rc)"
	grep -A12 -E "Possible data race|lock order" "$T/hg.log" | head -60 | sed 's/^/# /'
fi
leaked=$(cat "$T"/r.* | jq -s '[.[] | select(.reason == "exit")][0].totals | "\(.leaked) \(.created) \(.closed)"' -r)
if [ "$leaked" = "$THREADS $((THREADS * PER)) $((THREADS * PER - THREADS))" ]; then
	echo "ok - under helgrind the exit report says $THREADS leaked, every socket accounted for"
else
	echo "not ok - under helgrind the exit report says $THREADS leaked (got leaked/created/closed: $leaked)"
fi
