#!/usr/bin/env bash
# portguard report --html on real reports: two processes of leaky_client, one
# of leaky_server, churn_client under a churn policy (destinations and a
# forecast), a double close (prog_lifecycle), merged into one page, rendered
# in Debian's headless chromium by playwright-core (tests/browser; make deps
# installs both): no console error, nothing fetched, the flame graph names
# the leaking functions, hover shows a frame, a click zooms it, the sites'
# table sorts. A hand-written report whose function names hold markup
# ("</script>") renders as text. PG_SCREENSHOT=docs/report-html.png keeps a
# screenshot of the page there.
source "$(dirname "$0")/lib.sh"
BR=$ROOT/tests/browser
CHROMIUM=${PG_CHROMIUM:-/usr/bin/chromium}
run_lib() { # name command...: a JSON report in $T/rep/name.PID
	local name=$1
	shift
	LD_PRELOAD=$LIB PORTGUARD_OPTIONS="log_path=$T/rep/$name format=json${POLICY:+ policy=$POLICY}" \
		"$@" >/dev/null 2>&1
}
mkdir -p "$T/rep"
run_lib client build/examples/leaky_client
run_lib client build/examples/leaky_client
run_lib server build/examples/leaky_server
echo 'churn warn_per_sec=100' >"$T/churn.policy"
POLICY=$T/churn.policy run_lib churn build/examples/churn_client 600 1
run_lib dc build/tests/prog_lifecycle double_close
check "5 reports written" 5 "$(ls "$T/rep" | wc -l)"

"$PG" report --html "$T"/rep/* >"$T/page.html"; rc=$?
check "report --html: exit 0" 0 "$rc"
"$PG" report --json "$T"/rep/* >"$T/merged.json"
grep -q '<meta http-equiv="Content-Security-Policy" content="default-src .none.' "$T/page.html"
cond "the page forbids every fetch (Content-Security-Policy default-src 'none')" $?
grep -Eiq '(src|href)="(https?:)?//' "$T/page.html"
cond "the page names no address elsewhere" $((!$?))
grep -q '@PORTGUARD_DATA@' "$T/page.html"; cond "the data took the placeholder's place" $((!$?))
# The data in the page is the merge that --json prints, with its processes.
python3 - "$T/page.html" "$T/merged.json" <<'PYEOF'
import json, re, sys
page = open(sys.argv[1], encoding="utf-8").read()
m = re.search(r'<script type="application/json" id="pg-data">(.*?)</script>', page, re.S)
d = json.loads(m.group(1)) if m else {}
j = json.loads(open(sys.argv[2]).read())
same = {k: d.get(k) == j.get(k) for k in ("totals", "pids", "double_closes", "destinations")}
print("%s - the page's data is the merge of --json (%s)" % ("ok" if m and all(same.values()) else "not ok", same))
procs = d.get("processes", [])
print("%s - the page lists the 5 processes merged, each with its file (%d)" %
      ("ok" if len(procs) == 5 and all(p.get("file") for p in procs) else "not ok", len(procs)))
PYEOF

if [ ! -x "$CHROMIUM" ] || [ ! -d "$BR/node_modules/playwright-core" ] || ! command -v node >/dev/null; then
	notok "chromium ($CHROMIUM), node and tests/browser/node_modules (make deps installs them)"
	finish
fi
shot=${PG_SCREENSHOT:+$ROOT/$PG_SCREENSHOT}
t0=$(pg_now)
PG_CHROMIUM=$CHROMIUM timeout 180 node "$BR/report_html.mjs" "$T/page.html" \
	connect_to@leaky_client,main@leaky_server ${shot:+"$shot"} >"$T/browser" 2>&1
rc=$?
cat "$T/browser"
echo "# the browser's checks took $(pg_since "$t0") s"
check "the browser's checks ran to their end" 0 "$rc"
grep -q '^# shown .*"double-closes-section","destinations-section"' "$T/browser"
cond "the page shows the double close and the destinations" $?

# Markup in a function's name is text: it neither ends the data's element
# nor runs.
cat >"$T/odd.json" <<'JSON'
{"portguard": 1, "pid": 7, "exe": "/opt/<odd>", "reason": "exit", "totals": {"created": 2, "closed": 0, "open": 2, "leaked": 2}, "sites": [{"open": 1, "leaked": 1, "created": 1, "frames": [{"addr": "0x1", "module": "/opt/odd", "offset": "0x1", "function": "</script><b>x</b>", "file": "o.c", "line": 1}, {"addr": "0x2", "module": "/opt/odd", "offset": "0x2", "function": "main", "file": "o.c", "line": 9}], "sockets": [{"fd": 3, "family": "inet", "protocol": "tcp", "local": "127.0.0.1:1", "leaked": true}]}, {"open": 1, "leaked": 1, "created": 1, "frames": [{"addr": "0x3", "module": "/opt/odd", "offset": "0x3", "function": "other<!--", "file": "o.c", "line": 5}, {"addr": "0x2", "module": "/opt/odd", "offset": "0x2", "function": "main", "file": "o.c", "line": 9}], "sockets": [{"fd": 4, "family": "inet", "protocol": "tcp", "local": "127.0.0.1:2", "leaked": true}]}], "double_closes": [], "destinations": []}
JSON
"$PG" report --html "$T/odd.json" >"$T/odd.html"
check "report --html of markup-named frames: exit 0" 0 $?
PG_CHROMIUM=$CHROMIUM timeout 180 node "$BR/report_html.mjs" "$T/odd.html" \
	'</script><b>x</b>@odd,other<!--@odd' >"$T/browser2" 2>&1
rc=$?
sed 's/^/odd: /' "$T/browser2"
check "markup-named frames: drawn as text, zoom, no console error" 0 "$rc"

# 1,202 sites: two that leak 500 each, 1,200 that leak one.
python3 - "$T/many.json" <<'PYEOF'
import json, sys
def site(fn, n, i):
    return {"open": n, "leaked": n, "created": n + i % 7, "frames": [
        {"addr": "0x%x" % (0x1000 + i), "module": "/opt/many", "offset": "0x%x" % (0x1000 + i), "function": fn, "file": "m.c", "line": i + 1},
        {"addr": "0x10", "module": "/opt/many", "offset": "0x10", "function": "main", "file": "m.c", "line": 1}],
        "sockets": [{"fd": 3 + i, "family": "inet", "protocol": "tcp", "local": "127.0.0.1:%d" % (1000 + i), "leaked": True}]}
sites = [site("big_a", 500, 0), site("big_b", 500, 1)] + [site("small_%d" % i, 1, i + 2) for i in range(1200)]
json.dump({"portguard": 1, "pid": 9, "exe": "/opt/many", "reason": "exit", "totals": {"created": 2200, "open": 2200, "leaked": 2200},
           "sites": sites, "double_closes": [], "destinations": []}, open(sys.argv[1], "w"))
PYEOF
"$PG" report --html "$T/many.json" >"$T/many.html"
check "report --html of 1,202 sites: exit 0" 0 $?
PG_EXPECT_SITES=1202 PG_CHROMIUM=$CHROMIUM timeout 180 node "$BR/report_html.mjs" "$T/many.html" \
	'big_a@many,big_b@many' >"$T/browser3" 2>&1
rc=$?
sed 's/^/many: /' "$T/browser3"
check "1,202 sites: rendered, 500 rows then all, zoom, no console error" 0 "$rc"

"$PG" report --html --json "$T/odd.json" >/dev/null 2>&1; check "--html with --json: usage, exit 2" 2 $?
"$PG" report --html --diff "$T/odd.json" "$T/odd.json" >/dev/null 2>"$T/err"; rc=$?
check "--html with --diff: usage, exit 2" 2 "$rc"
head -1 "$T/err" | sed 's/^/# /'
finish
