#!/usr/bin/env bash
# portguard ports --openmetrics against real loopback TIME_WAIT sockets
# (prog_tool_churn on 127.0.0.1): promtool check metrics accepts it; every
# family's samples stand together and no series repeats (promtool lets both
# pass); the figures are those of ports --json; exit 0 whenever the metrics
# were printed, CRITICAL included (the status is a metric).
source "$(dirname "$0")/lib.sh"
CHURN=$ROOT/build/tests/prog_tool_churn
TW=200 EST=4 CW=2

"$CHURN" -a 127.0.0.1 -t $TW -e $EST -w $CW -T 120 >"$T/churn" 2>&1 &
CP=$!; started "$CP"
wait_for "$T/churn" '^ready' || { notok "prog_tool_churn started: $(cat "$T/churn")"; finish; }
P4=$(awk '$1 == "listen" && $2 == "127.0.0.1" {print $3}' "$T/churn")

"$PG" ports --openmetrics >"$T/om"; rc=$?
"$PG" ports --json >"$T/ports.json"
check "ports --openmetrics: exit 0" 0 "$rc"
if command -v promtool >/dev/null; then
	promtool check metrics <"$T/om" >"$T/promtool" 2>&1
	check "promtool check metrics accepts it" 0 $?
	sed 's/^/# promtool: /' "$T/promtool" | head -5
else
	echo "ok - promtool check metrics # SKIP promtool is not installed (make deps installs prometheus)"
fi
python3 - "$T/om" <<'PYEOF' | while read -r line; do echo "$line"; done
import re, sys
fams, seen, order, bad = {}, set(), [], []
last = None
for n, line in enumerate(open(sys.argv[1]), 1):
    line = line.rstrip("\n")
    if line.startswith("# TYPE "):
        name = line.split()[2]
        if name in fams:
            bad.append("family %s declared twice (line %d)" % (name, n))
        fams[name] = line.split()[3]
        last = name
        continue
    if line.startswith("#") or not line:
        continue
    m = re.match(r'([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\})? (\S+)$', line)
    if not m:
        bad.append("line %d is not a sample: %s" % (n, line))
        continue
    if m.group(1) != last:
        bad.append("line %d: %s outside its family's block" % (n, m.group(1)))
    key = m.group(1) + (m.group(2) or "")
    if key in seen:
        bad.append("line %d: series %s repeats" % (n, key))
    seen.add(key)
print("%s - every family's samples together, no series twice (%d series, %d families)%s" %
      ("not ok" if bad else "ok", len(seen), len(fams), "; " + "; ".join(bad[:3]) if bad else ""))
PYEOF
om() { # metric and label filter (a regex): the sample's value
	grep -E "^$1\{[^}]*$2" "$T/om" | awk '{ print $NF }' | head -1
}
sel="remote=\"127.0.0.1:$P4\""
check "127.0.0.1:$P4 TIME_WAIT: $TW, as ports --json" "$TW $TW" \
	"$(jq -r --arg r "127.0.0.1:$P4" '.tuples[] | select(.remote == $r) | .states.TIME_WAIT' "$T/ports.json") $(om portguard_tuple_ports "$sel.*state=\"TIME_WAIT\"")"
check "127.0.0.1:$P4 ESTABLISHED: as ports --json" \
	"$(jq -r --arg r "127.0.0.1:$P4" '.tuples[] | select(.remote == $r) | .states.ESTABLISHED' "$T/ports.json")" \
	"$(om portguard_tuple_ports "$sel.*state=\"ESTABLISHED\"")"
check "the owner's sockets on the tuple: as ports --json" \
	"$(jq -r --arg r "127.0.0.1:$P4" '.tuples[] | select(.remote == $r) | .owners[0].sockets' "$T/ports.json")" \
	"$(om portguard_tuple_owner_sockets "$sel.*pid=\"$CP\"")"
check "the range size: as ports --json" "$(jq -r .range.size "$T/ports.json")" \
	"$(grep '^portguard_ephemeral_range_ports ' "$T/om" | awk '{print $2}')"
check "the churn process's descriptor limit: as ports --json" \
	"$(jq -r --argjson p "$CP" '.processes[] | select(.pid == $p) | .fd_limit' "$T/ports.json")" \
	"$(om portguard_process_fd_limit "pid=\"$CP\"")"
check "the file ends with # EOF" "# EOF" "$(tail -1 "$T/om")"

# CRITICAL still prints and exits 0; the status metric says 2.
"$PG" ports --openmetrics --warn 0 --crit 0.01 >"$T/om2"; rc=$?
check "CRITICAL: exit 0 all the same" 0 "$rc"
check "CRITICAL: portguard_status 2" "portguard_status 2" "$(grep '^portguard_status ' "$T/om2")"
"$PG" ports --openmetrics --json >/dev/null 2>"$T/err"; rc=$?
check "--openmetrics with --json: usage, exit 2" 2 "$rc"
# The README's alert rules are valid rules.
if command -v promtool >/dev/null; then
	awk '/^    groups:$/ { on = 1 } on && /^$/ { exit } on { print substr($0, 5) }' README.md \
		>"$T/rules.yml"
	promtool check rules "$T/rules.yml" >"$T/rules.out" 2>&1
	check "promtool check rules accepts the README's alert rules" "0 3" "$? $(grep -o '[0-9]* rules found' "$T/rules.out" | cut -d' ' -f1)"
fi
kill "$CP" 2>/dev/null
wait "$CP" 2>/dev/null
finish
