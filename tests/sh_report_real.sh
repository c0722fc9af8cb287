#!/usr/bin/env bash
# portguard report on real reports written by the library: two processes of
# the same program merge into one set of call sites with summed counts;
# --diff finds the growth between two dumps of a slow leak; --folded prints
# its stacks.
source "$(dirname "$0")/lib.sh"
check() { cond "$@"; }

# Two processes of one program, each leaking 2 sockets from the same site.
for i in 1 2; do
	LD_PRELOAD=$LIB PORTGUARD_OPTIONS="log_path=$T/client format=json" \
		build/examples/leaky_client >/dev/null 2>&1
done
files=("$T"/client.*)
check "two real reports written" "$([ ${#files[@]} = 2 ]; echo $?)"
"$PG" report --json "${files[@]}" >"$T/merged.json"
check "report --json exits 0" $?
npids=$(jq '.pids | length' "$T/merged.json")
leaked=$(jq '.totals.leaked' "$T/merged.json")
nsites=$(jq '[.sites[] | select(.leaked > 0)] | length' "$T/merged.json")
top=$(jq '[.sites[] | select(.leaked > 0)][0].leaked' "$T/merged.json")
created=$(jq '.totals.created' "$T/merged.json")
echo "# merged: pids $npids, leaked $leaked from $nsites site(s), top site $top, created $created"
check "the merge names both pids" "$([ "$npids" = 2 ]; echo $?)"
check "the same call site of two processes is one site with summed counts (2+2)" \
	"$([ "$nsites" = 1 ] && [ "$top" = 4 ] && [ "$leaked" = 4 ]; echo $?)"
check "totals are summed (11+11 created)" "$([ "$created" = 22 ]; echo $?)"
"$PG" report "${files[@]}" >"$T/merged.txt"
check "text merge ends with the summed SUMMARY" \
	"$(tail -n1 "$T/merged.txt" | grep -q '^SUMMARY: portguard: 4 socket(s) leaked from 1 call site(s).$'; echo $?)"
check "text merge shows the leaking function" "$(grep -q 'in connect_to' "$T/merged.txt"; echo $?)"

# A slow leak, dumped twice: --diff shows the growth at its call site.
LD_PRELOAD=$LIB PORTGUARD_OPTIONS="log_path=$T/slow format=json" \
	build/tests/prog_lifecycle slowleak >"$T/slow.out" 2>&1 &
slow=$!
started "$slow"
wait_for "$T/slow.out" ready
"$PG" dump --json "$slow" >"$T/old.json"
check "dump --json of a process under the library exits 0" $?
# The leak grows by one socket every 20 ms: wait until it has grown by 6.
before_n=$(jq '.totals.open' "$T/old.json")
wait_until 10 "the slow leak to grow" bash -c "[ \$(ls /proc/$slow/fd | wc -l) -gt $((before_n + 8)) ]"
"$PG" dump --json "$slow" >"$T/new.json"
"$PG" report --json --diff "$T/old.json" "$T/new.json" >"$T/diff.json"
check "report --diff --json exits 0" $?
before=$(jq '.sites[0].open_before' "$T/diff.json")
after=$(jq '.sites[0].open_after' "$T/diff.json")
grew=$(jq '.sites[0].grew' "$T/diff.json")
echo "# slow leak: open $before -> $after, grew $grew"
check "the growth between two dumps is found and adds up" \
	"$([ "$grew" -gt 5 ] && [ $((after - before)) = "$grew" ]; echo $?)"
check "the growing site is the slow leak's (frames in prog_lifecycle)" \
	"$(jq -e '.sites[0].frames[0].module | endswith("prog_lifecycle")' "$T/diff.json" >/dev/null; echo $?)"
"$PG" report --diff "$T/old.json" "$T/new.json" >"$T/diff.txt"
check "text --diff prints the growth" "$(grep -q "$grew" "$T/diff.txt"; echo $?)"

"$PG" report --folded "$T/new.json" >"$T/folded"
line=$(sort -t' ' -k2 -n "$T/folded" | tail -n1)
echo "# folded: $line"
count=${line##* }
check "--folded prints 'frame;...;frame count' with the leaked count" \
	"$([ "$count" = "$after" ] && [[ "$line" == *";main;"* ]]; echo $?)"
check "--folded puts the outermost frame first" "$([[ "$line" == _start\;* ]]; echo $?)"
kill "$slow"
wait "$slow" 2>/dev/null
