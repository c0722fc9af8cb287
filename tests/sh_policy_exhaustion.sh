#!/usr/bin/env bash
# Real ephemeral-port exhaustion, reproduced and foretold. In a network
# namespace of our own (unshare -n, root) with ip_local_port_range narrowed to
# 300 ports and tcp_tw_reuse=0, a client that opens a connection per request
# runs out of ports and connect() fails with EADDRNOTAVAIL; the churn warning
# said "exhaustion" before that happened. Only loopback exists in there.
source "$(dirname "$0")/lib.sh"

if [ "$(id -u)" != 0 ] || ! unshare -n true 2>/dev/null; then
	echo "ok - exhaustion reproduced and foretold # SKIP network namespaces are not allowed here"
	exit 0
fi
echo "churn warn_per_sec=5" >"$T/policy"

unshare -n bash -c '
	set -e
	ip link set lo up
	sysctl -qw net.ipv4.ip_local_port_range="40000 40299"
	sysctl -qw net.ipv4.tcp_tw_reuse=0
	LD_PRELOAD='"$ROOT"'/build/libportguard.so \
	PORTGUARD_OPTIONS="policy='"$T"'/policy log_path='"$T"'/r format=json" \
		'"$ROOT"'/build/examples/churn_client 1000 1 >'"$T"'/out 2>'"$T"'/err || echo $? >'"$T"'/rc
'
rc=$(cat "$T/rc" 2>/dev/null || echo 0)
out=$(cat "$T/out")
echo "# client: $out (exit $rc)"

if [ "$rc" = 1 ] && grep -q "Cannot assign requested address" <<<"$out"; then
	echo "ok - the client ran out of ports: connect failed with EADDRNOTAVAIL"
else
	echo "not ok - the client ran out of ports: connect failed with EADDRNOTAVAIL"
fi

served=$(sed -n 's/^\([0-9]*\) requests ok.*/\1/p' <<<"$out")
first=$(grep -h '"event": "churn"' "$T"/r.* | jq -s '[.[] | select(.forecast == "exhaustion")][0].connects // empty')
range=$(grep -h '"event": "churn"' "$T"/r.* | jq -s '.[0].range // empty')
echo "# the exhaustion forecast came at connect ${first:-never}; the first failure at connect $((${served:-0} + 1)); range $range"
if [ -n "$first" ] && [ -n "$served" ] && [ "$first" -lt "$((served + 1))" ]; then
	echo "ok - the churn warning said exhaustion before the ports ran out"
else
	echo "not ok - the churn warning said exhaustion before the ports ran out"
fi
if [ "$range" = 300 ]; then
	echo "ok - the forecast used the namespace's real ip_local_port_range (300 ports)"
else
	echo "not ok - the forecast used the namespace's real ip_local_port_range (300 ports)"
fi
forecast=$(grep -h '"reason": "exit"' "$T"/r.* | jq -r '.destinations[0].forecast')
if [ "$forecast" = exhaustion ]; then
	echo "ok - the exit report's destination forecast is exhaustion"
else
	echo "not ok - the exit report's destination forecast is exhaustion (got $forecast)"
fi
