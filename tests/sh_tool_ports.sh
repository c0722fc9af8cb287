#!/usr/bin/env bash
# portguard ports against real loopback sockets: prog_tool_churn listens on
# ports the kernel picks (unique to this run), leaves 300 client ends in
# TIME_WAIT (active close), holds 5 ESTABLISHED, 3 CLOSE_WAIT and 2 from
# IPv6 sockets to the IPv4-mapped address; `ports --json` must agree with
# `ss -tan` state by state and name the owner. Only 127.0.0.1 and ::1.
source "$(dirname "$0")/lib.sh"
CHURN=$ROOT/build/tests/prog_tool_churn

for f in "$PG" "$CHURN"; do
	[ -x "$f" ] || { notok "$f is built"; exit 1; }
done
for c in jq ss; do
	command -v $c >/dev/null || { notok "$c is installed (this test needs it)"; exit 1; }
done
read -r LOW HIGH </proc/sys/net/ipv4/ip_local_port_range
SIZE=$((HIGH - LOW + 1))

TW=300 EST=5 CW=3 MAPPED=2
addrs=(-a 127.0.0.1 -a ::1)
"$CHURN" "${addrs[@]}" -t $TW -e $EST -w $CW -m $MAPPED -T 120 >"$T/churn" 2>&1 &
CP=$!; started "$CP"
if ! wait_for "$T/churn" '^ready'; then
	# No IPv6 on this machine: IPv4 alone.
	kill "$CP" 2>/dev/null
	addrs=(-a 127.0.0.1)
	"$CHURN" "${addrs[@]}" -t $TW -e $EST -w $CW -m $MAPPED -T 120 >"$T/churn" 2>&1 &
	CP=$!; started "$CP"
	wait_for "$T/churn" '^ready' || { notok "prog_tool_churn started: $(cat "$T/churn")"; exit 1; }
fi
P4=$(awk '$1 == "listen" && $2 == "127.0.0.1" {print $3}' "$T/churn")
P6=$(awk '$1 == "listen" && $2 == "::1" {print $3}' "$T/churn")

# ss's view of one destination: "STATE COUNT" lines, kernel names, sorted,
# counting as ports does (client ends: local port in range, not listening).
ss_counts() { # peer-ip peer-port [mapped-peer-ip]
	ss -tanH | awk -v ip="$1" -v port="$2" -v mip="${3:-}" -v low="$LOW" -v high="$HIGH" '
	function addrport(s,   i) { i = match(s, /:[0-9]+$/); return i ? substr(s, 1, i - 1) : s }
	{
		peer = addrport($5); pport = substr($5, length(peer) + 2)
		gsub(/^\[|\]$/, "", peer)
		if (pport != port || (peer != ip && peer != mip)) next
		lport = $4; sub(/.*:/, "", lport)
		if (lport + 0 < low || lport + 0 > high || lport == port) next
		st = $1
		map["ESTAB"] = "ESTABLISHED"; map["TIME-WAIT"] = "TIME_WAIT"; map["CLOSE-WAIT"] = "CLOSE_WAIT"
		map["FIN-WAIT-1"] = "FIN_WAIT1"; map["FIN-WAIT-2"] = "FIN_WAIT2"; map["SYN-SENT"] = "SYN_SENT"
		map["SYN-RECV"] = "SYN_RECV"; map["LAST-ACK"] = "LAST_ACK"
		if (st in map) st = map[st]
		n[st]++
	}
	END { for (s in n) print s, n[s] }' | sort
}
pg_counts() { # json remote
	jq -r --arg r "$2" '.tuples[] | select(.remote == $r) | .states | to_entries[] | "\(.key) \(.value)"' "$1" | sort
}

# The verdict and exit status of a system-wide run depend on the whole
# machine; ours must agree with each other, and with --pid they are ours.
code_of() { case $1 in OK) echo 0 ;; WARNING) echo 1 ;; CRITICAL) echo 2 ;; *) echo "?" ;; esac; }
"$PG" ports --json >"$T/ports.json"; rc=$?
check "ports --json: the exit status is its status (0 OK, 1 WARNING, 2 CRITICAL)" \
	"$(code_of "$(jq -r .status "$T/ports.json")")" "$rc"
"$PG" ports --json --pid "$CP" >/dev/null; rc=$?
check "ports --json --pid with default thresholds: exit 0 (OK)" 0 "$rc"
ss4=$(ss_counts 127.0.0.1 "$P4" ::ffff:127.0.0.1)
check "127.0.0.1:$P4: the states agree with ss -tan" "$ss4" "$(pg_counts "$T/ports.json" "127.0.0.1:$P4")"
check "127.0.0.1:$P4: $TW TIME_WAIT, $((EST + MAPPED)) ESTABLISHED, $CW CLOSE_WAIT" \
	"CLOSE_WAIT $CW|ESTABLISHED $((EST + MAPPED))|TIME_WAIT $TW" "$(pg_counts "$T/ports.json" "127.0.0.1:$P4" | paste -sd'|')"
tuple4() { jq -c --arg r "127.0.0.1:$P4" ".tuples[] | select(.remote == \$r) | $1" "$T/ports.json"; }
check "used is the sum of the states" $((TW + EST + MAPPED + CW)) "$(tuple4 .used)"
check "local address 127.0.0.1 (the IPv4-mapped ones folded in)" '"127.0.0.1"' "$(tuple4 .local)"
want_pct=$(awk -v u=$((TW + EST + MAPPED + CW)) -v s=$SIZE 'BEGIN { printf "%.2f", 100 * u / s }')
check "percent of the range, 2 decimals" "$want_pct" "$(tuple4 .percent | awk '{ printf "%.2f", $1 }')"
check "default thresholds: the tuple is OK" '"OK"' "$(tuple4 .status)"
check "the owner is the churn process with its $((EST + CW + MAPPED)) sockets" \
	"[{\"pid\":$CP,\"comm\":\"prog_tool_churn\",\"sockets\":$((EST + CW + MAPPED))}]" "$(tuple4 .owners)"
check "range low/high/size" "[$LOW,$HIGH,$SIZE]" "$(jq -c '[.range.low, .range.high, .range.size]' "$T/ports.json")"
check "read through sock_diag" '"sock_diag"' "$(jq -c .source "$T/ports.json")"
if [ -n "$P6" ]; then
	ss6=$(ss_counts ::1 "$P6")
	check "[::1]:$P6: the states agree with ss -tan" "$ss6" "$(pg_counts "$T/ports.json" "[::1]:$P6")"
	check "[::1]:$P6: local ::1, owner the churn process" "\"::1\" $CP $((EST + CW))" \
		"$(jq -r --arg r "[::1]:$P6" '.tuples[] | select(.remote == $r) | "\(.local | tojson) \(.owners[0].pid) \(.owners[0].sockets)"' "$T/ports.json")"
fi
# The server ends (local port = a listening port, remote = a client's port)
# are not counted: no tuple has a held client end's port as its remote port
# in the states those server ends are in. (A TIME_WAIT toward such a port
# can be real: a leftover of an earlier connection to an old listener that
# had that port, before the kernel gave it to one of our clients.)
held=$(ss -tanH | awk -v p="$P4" '($1 == "ESTAB" || $1 == "CLOSE-WAIT") && $5 ~ ":" p "$" {
	n = split($4, a, ":"); print "127.0.0.1:" a[n] }' | sort -u | paste -sd' ')
[ -n "$held" ] && ok "ss shows the held client ends" || notok "ss shows the held client ends"
check "no tuple for the server ends of the held connections" "" \
	"$(jq -r --arg h " $held " '.tuples[] | .remote as $r
		| select(($h | contains(" " + $r + " ")) and (((.states | keys) - ["TIME_WAIT"]) | length > 0))
		| $r' "$T/ports.json")"

fds=$(ls /proc/$CP/fd | wc -l)
socks=$(for f in /proc/$CP/fd/*; do readlink "$f"; done | grep -c '^socket:')
limit=$(awk '/^Max open files/ {print $4}' /proc/$CP/limits)
check "processes: the churn process, its fds, limit and sockets" "$fds $limit $socks" \
	"$(jq -r --argjson p "$CP" '.processes[] | select(.pid == $p) | "\(.fds) \(.fd_limit) \(.sockets)"' "$T/ports.json")"

PORTGUARD_PORTS_SOURCE=proc "$PG" ports --json >"$T/proc.json"
check "the /proc/net/tcp fallback says so" '"proc"' "$(jq -c .source "$T/proc.json")"
check "and finds the same states" "$(pg_counts "$T/ports.json" "127.0.0.1:$P4")" "$(pg_counts "$T/proc.json" "127.0.0.1:$P4")"
check "and the same owner" "$(tuple4 .owners)" \
	"$(jq -c --arg r "127.0.0.1:$P4" '.tuples[] | select(.remote == $r) | .owners' "$T/proc.json")"

# Thresholds relative to our tuple's share: its status must follow them.
# The exit status is the worst of the machine, so it is checked against the
# JSON's, and exactly where nothing else can weigh: at CRITICAL, and with
# --pid (thresholds then relative to what that process alone shows).
pct=$(tuple4 .percent)
w=$(awk -v p="$pct" 'BEGIN { printf "%.4f", p / 2 }')
"$PG" ports --json --warn "$w" --crit 99.99 >"$T/w.json"; rc=$?
check "--warn below its share (decimal): the tuple is WARNING" '"WARNING"' \
	"$(jq -c --arg r "127.0.0.1:$P4" '.tuples[] | select(.remote == $r) | .status' "$T/w.json")"
[ "$rc" -ge 1 ] && [ "$rc" = "$(code_of "$(jq -r .status "$T/w.json")")" ] &&
	ok "and the exit status is at least 1 and matches the JSON ($rc)" || notok "and the exit status ($rc)"
c=$(awk -v p="$pct" 'BEGIN { printf "%.4f", p / 2 }')
w=$(awk -v p="$pct" 'BEGIN { printf "%.4f", p / 4 }')
"$PG" ports --json --warn "$w" --crit "$c" >"$T/c.json"; rc=$?
check "--crit below its share: exit 2" 2 "$rc"
check "and the tuple and the whole are CRITICAL" '"CRITICAL" "CRITICAL"' \
	"$(jq -c --arg r "127.0.0.1:$P4" '.tuples[] | select(.remote == $r) | .status' "$T/c.json") $(jq -c .status "$T/c.json")"
"$PG" ports --json --pid "$CP" >"$T/pidpct.json"
lo=$(jq '[.tuples[].percent, .processes[].percent] | min' "$T/pidpct.json")
hi=$(jq '[.tuples[].percent, .processes[].percent] | max' "$T/pidpct.json")
"$PG" ports --json --pid "$CP" --warn "$(awk -v p="$hi" 'BEGIN { printf "%.4f", p / 2 }')" --crit 99.99 >/dev/null
check "--pid, --warn below its largest share: exit 1" 1 $?
"$PG" ports --json --pid "$CP" --warn "$(awk -v p="$lo" 'BEGIN { printf "%.4f", p / 4 }')" \
	--crit "$(awk -v p="$lo" 'BEGIN { printf "%.4f", p / 2 }')" >/dev/null
check "--pid, --crit below its smallest share: exit 2" 2 $?

"$PG" ports --json --pid "$CP" >"$T/pid.json"; rc=$?
check "--pid: only its own sockets (TIME_WAIT has no owner)" \
	"CLOSE_WAIT $CW|ESTABLISHED $((EST + MAPPED))" "$(pg_counts "$T/pid.json" "127.0.0.1:$P4" | paste -sd'|')"
check "--pid: only that process listed" "$CP" "$(jq -r '.processes[].pid' "$T/pid.json" | paste -sd' ')"
check "--pid: every tuple is owned by it" "" \
	"$(jq -r --argjson p "$CP" '.tuples[] | select([.owners[].pid] != [$p]) | .remote' "$T/pid.json")"

# A process near RLIMIT_NOFILE: 3 + 1 listener + 2 x 20 = 44 of 64 = 69 %.
# (Stopped again before the system-wide checks below.)
(ulimit -Sn 64 && exec "$CHURN" -e 20 -T 120) >"$T/lim" 2>&1 &
LP=$!; started "$LP"
if wait_for "$T/lim" '^ready'; then
	# 3 + 1 listener + 40, plus what the test's shell let it inherit.
	n=$(ls /proc/$LP/fd | wc -l)
	want=$(awk -v n="$n" 'BEGIN { p = 100 * n / 64; print (p >= 80) ? "CRITICAL" : (p >= 60) ? "WARNING" : "OK" }')
	"$PG" ports --json --pid "$LP" >"$T/lim.json"; rc=$?
	check "$n of 64 descriptors: $want, exit $(code_of "$want")" "$(code_of "$want")" "$rc"
	check "and the process shows fds $n, limit 64, $want" "$n 64 \"$want\"" \
		"$(jq -r '.processes[0] | "\(.fds) \(.fd_limit) \(.status | tojson)"' "$T/lim.json")"
	"$PG" ports --pid "$LP" --crit 65 >/dev/null; check "--crit 65: exit 2" 2 $?
	kill "$LP"; wait "$LP" 2>/dev/null
else
	notok "prog_tool_churn started with ulimit -n 64"
fi

"$PG" ports >"$T/text"; rc=$?
verdict=$(head -n1 "$T/text" | sed -n 's/^portguard ports: \([A-Z]*\) - .*/\1/p')
[ -n "$verdict" ] && ok "text: the verdict first ($verdict)" || notok "text: the verdict first ($(head -n1 "$T/text"))"
check "text: the exit status is the verdict's" "$(code_of "$verdict")" "$rc"
"$PG" ports --pid "$CP" >"$T/pidtext"; rc=$?
check "text --pid: 'portguard ports: OK - ', exit 0" "portguard ports: OK - 0" "$(head -n1 "$T/pidtext" | cut -c1-21) $rc"
line=$(grep -E "^127\.0\.0\.1 +127\.0\.0\.1:$P4 " "$T/text")
[[ $line == *" $((TW + EST + MAPPED + CW)) "* && $line == *"TIME_WAIT $TW"* && $line == *"$CP/prog_tool_churn ($((EST + CW + MAPPED)))"* ]] &&
	ok "text: the tuple's row has used, states and pid/comm" || notok "text: the tuple's row ($line)"

if [ "$(id -u)" -eq 0 ] && command -v setpriv >/dev/null; then
	err=$(setpriv --reuid=65534 --regid=65534 --clear-groups "$PG" ports --json 2>&1 >"$T/nobody.json"); rc=$?
	check "unprivileged: still a verdict, not 3" "$(code_of "$(jq -r .status "$T/nobody.json")")" "$rc"
	n=$(jq .unreadable_pids "$T/nobody.json")
	[ "$n" -ge 1 ] && ok "unprivileged: unreadable_pids counts other users' processes ($n)" || notok "unprivileged: unreadable_pids ($n)"
	[[ $err == *"could not read the descriptors of $n process"* ]] && ok "unprivileged: and says so on stderr" || notok "unprivileged: stderr ($err)"
	check "unprivileged: the same count, no owner" "$(tuple4 .used) []" \
		"$(jq -c --arg r "127.0.0.1:$P4" '.tuples[] | select(.remote == $r) | "\(.used) \(.owners)"' "$T/nobody.json" | tr -d '"')"
fi

true & gone=$!; wait "$gone"
"$PG" ports --pid "$gone" >/dev/null 2>&1; check "--pid of no process: exit 3" 3 $?
usage() {
	local what=$1 want=$2 err rc
	shift 2
	err=$("$PG" ports "$@" 2>&1 >/dev/null); rc=$?
	if [ "$rc" -eq "$want" ] && [[ $err == *"usage: portguard ports"* ]]; then ok "$what"; else notok "$what (rc $rc)"; fi
}
usage "--warn abc: usage, exit 2" 2 --warn abc
usage "--warn 101: usage, exit 2" 2 --warn 101
usage "--warn above --crit: usage, exit 2" 2 --warn 90 --crit 80
usage "--pid x: usage, exit 2" 2 --pid x
usage "an extra argument: usage, exit 2" 2 extra
# A process names itself: escape sequences and bad UTF-8 in its name
# must not reach the terminal of whoever reads the table, nor break JSON.
python3 - "$P4" >"$T/evil.out" 2>&1 <<'PYEOF' &
import socket, sys, time
open("/proc/self/comm", "wb").write(b"\x1b[2Jev\xffil\x07")
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
print("ready", flush=True)
time.sleep(60)
PYEOF
EP=$!; started "$EP"
wait_for "$T/evil.out" '^ready' || notok "the self-naming process started"
"$PG" ports >"$T/evil.txt"
"$PG" ports --json >"$T/evil.json"
grep -q $'\033\|\a' "$T/evil.txt"; cond "a process's name with escape sequences: none printed" $((!$?))
grep -q '?\[2Jev?il?' "$T/evil.txt"; cond "... each such byte shown as '?' (as ps does)" $?
check "... and --json still names the owner" '?[2Jev?il?' \
	"$(jq -r --arg r "127.0.0.1:$P4" '.tuples[] | select(.remote == $r) | .owners[] | select(.comm | startswith("?[2J")) | .comm' "$T/evil.json")"
kill "$EP" 2>/dev/null
out=$("$PG" ports --help); rc=$?
[ "$rc" -eq 0 ] && [[ $out == "usage: portguard ports"* ]] && ok "ports --help: usage on stdout, exit 0" || notok "ports --help"
exit $((fails > 0))
