# Shared by the shell tests (source it): TAP-style results, waits for a
# state with a bound (never a fixed sleep that assumes), and cleanup of the
# test's directory and background processes.
#   ok DESC / notok DESC          a result line
#   check DESC EXPECTED GOT       ok when equal, else both shown
#   cond DESC STATUS              ok when STATUS is 0 (cond "x" "$(...; echo $?)")
#   wait_for FILE REGEX [S]       until a line of FILE matches (default 10 s)
#   wait_until S DESC CMD...      until CMD succeeds
#   wait_lines FILE N [S]         until FILE has N complete lines
#   started PID                   remembered, killed at exit
#   finish                        exit status: 1 if any "not ok"
# Each wait prints "# waited X s for ..." and returns 1 at the bound.
set -u
cd "$(dirname "${BASH_SOURCE[1]:-$0}")/.." || exit 2
ROOT=$PWD
PG=$ROOT/build/portguard
LIB=$ROOT/build/libportguard.so
T=$(mktemp -d)
fails=0
pg_pids=()

pg_cleanup() {
	local p
	for p in "${pg_pids[@]}"; do kill "$p" 2>/dev/null; done
	for p in "${pg_pids[@]}"; do wait "$p" 2>/dev/null; done
	rm -rf "$T"
}
trap pg_cleanup EXIT

started() { pg_pids+=("$@"); }
ok() { echo "ok - $*"; }
notok() {
	echo "not ok - $*"
	fails=$((fails + 1))
}
check() {
	if [ "$2" == "$3" ]; then
		ok "$1"
	else
		notok "$1"
		echo "#   expected: $2"
		echo "#   got:      $3"
	fi
}
cond() { if [ "$2" = 0 ]; then ok "$1"; else notok "$1"; fi; }

pg_now() { date +%s.%N; }
pg_since() { awk -v a="$1" -v b="$(pg_now)" 'BEGIN { printf "%.2f", b - a }'; }

wait_until() { # seconds description command...
	local bound=$1 what=$2 t0
	shift 2
	t0=$(pg_now)
	while ! "$@" 2>/dev/null; do
		if awk -v a="$t0" -v b="$(pg_now)" -v s="$bound" 'BEGIN { exit !(b - a > s) }'; then
			echo "# gave up after $(pg_since "$t0") s waiting for $what"
			return 1
		fi
		sleep 0.02
	done
	echo "# waited $(pg_since "$t0") s for $what"
}

wait_for() { # file regex [seconds]
	wait_until "${3:-10}" "'$2' in $(basename "$1")" grep -q -- "$2" "$1"
}

pg_has_lines() { [ -f "$1" ] && [ "$(tr -cd '\n' <"$1" | wc -c)" -ge "$2" ]; }
wait_lines() { # file lines [seconds]
	wait_until "${3:-10}" "$2 line(s) in $(basename "$1")" pg_has_lines "$1" "$2"
}

# The library is loaded in process $1 (its maps say so).
pg_mapped() { grep -q 'libportguard' "/proc/$1/maps"; }
# Process $1 runs program $2 (past its exec).
pg_runs() { [ "$(readlink "/proc/$1/exe")" = "$2" ]; }

finish() { exit $((fails > 0)); }
