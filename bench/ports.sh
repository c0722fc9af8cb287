#!/usr/bin/env bash
# How long `portguard ports` takes with about 50,000 TCP sockets, next to
# `ss -tan` (the same sock_diag dump, no owners) and `ss -tanp` (with owners,
# from /proc/*/fd as we do), in the same run. Prints figures; never fails on
# a time.
#
# The sockets, all on loopback: 4 processes (the descriptor limit is per
# process), each listening on 2 ports of its own destination address
# 127.0.0.2 .. 127.0.0.5, with toward each port 3,250 connections closed by
# the client first (the client end stays in TIME_WAIT ~60 s and holds no
# descriptor) and 1,500 held open (two sockets each, client and server
# end). Several destinations keep each (local IP, remote IP, remote port)
# well inside ip_local_port_range.
#   bench/ports.sh [REPEAT]     (default 5 runs of each command; medians)
set -u
cd "$(dirname "$0")/.." || exit 2
PG=$PWD/build/portguard
CHURN=$PWD/build/tests/prog_tool_churn
REPEAT=${1:-5}
NPROC=4 PER=2 TW=3250 EST=1500

for f in "$PG" "$CHURN"; do
	[ -x "$f" ] || { echo "bench/ports.sh: $f is not built (make build/portguard build/tests/prog_tool_churn)" >&2; exit 2; }
done
command -v ss >/dev/null || { echo "bench/ports.sh: needs ss (iproute2)" >&2; exit 2; }

T=$(mktemp -d)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
	wait 2>/dev/null
	rm -rf "$T"
}
trap cleanup EXIT INT TERM

ms() { echo $(($(date +%s%N) / 1000000)); }
median() { sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

before=$(ss -tanH | wc -l)
t0=$(ms)
for i in $(seq 2 $((NPROC + 1))); do
	"$CHURN" -r -a 127.0.0.$i -P $PER -t $TW -e $EST -T 600 >"$T/churn.$i" 2>&1 &
	pids+=($!)
done
for i in $(seq 2 $((NPROC + 1))); do
	for _ in $(seq 1200); do grep -q '^ready' "$T/churn.$i" && break; sleep 0.1; done
	grep -q '^ready' "$T/churn.$i" || { echo "bench/ports.sh: churn $i failed: $(cat "$T/churn.$i")" >&2; exit 1; }
done
t1=$(ms)
total=$(ss -tanH | wc -l)
tw=$(ss -tanH state time-wait | wc -l)
echo "portguard ports bench: $((total - before)) sockets made in $((t1 - t0)) ms by $NPROC processes" \
     "($total TCP sockets in all, $tw in TIME_WAIT); $REPEAT runs each, median wall time"

time_cmd() { # label command...
	local label=$1 i a b
	shift
	for i in $(seq "$REPEAT"); do
		a=$(date +%s%N)
		"$@" >/dev/null 2>&1
		b=$(date +%s%N)
		echo $(((b - a) / 1000))
	done | median | awk -v l="$label" '{ printf "  %-28s %9.1f ms\n", l, $1 / 1000 }'
}
time_cmd "portguard ports" "$PG" ports
time_cmd "portguard ports --json" "$PG" ports --json
time_cmd "ss -tan" ss -tan
time_cmd "ss -tanp (with owners)" ss -tanp
time_cmd "portguard ports (/proc/net)" env PORTGUARD_PORTS_SOURCE=proc "$PG" ports
"$PG" ports >"$T/out"
sed -n '1p' "$T/out" | cut -c1-160
echo "  (the TIME_WAIT sockets expire by themselves within about 60 s)"
