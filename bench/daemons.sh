#!/usr/bin/env bash
# Real daemons under the library, on 127.0.0.1, each asked for its report
# with `portguard dump` while it serves (issue 12): node, memcached, nginx
# and postgres, those that are installed (make deps installs them). For
# each: it serves, dump prints its report (exit 0), it still runs and
# serves, and its own report signal (SIGUSR1) still means what it means to
# it. Every wait is bounded; prints one line a check and a summary.
#   bench/daemons.sh            (make bench runs it; also by hand)
# Exits 0 whatever it finds (a bench prints, it does not judge); 2 when the
# library or the tool is not built.
set -u
cd "$(dirname "$0")/.." || exit 2
ROOT=$PWD
LIB=$ROOT/build/libportguard.so
PG=$ROOT/build/portguard
[ -e "$LIB" ] && [ -x "$PG" ] || { echo "daemons: build first (make)"; exit 2; }
T=$(mktemp -d)
chmod 755 "$T"
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null; done
	rm -rf "$T"
}
trap cleanup EXIT
ran=() skipped=() good=0 bad=0
say() { echo "  $1: $2"; }
check() { # daemon description status
	if [ "$3" = 0 ]; then good=$((good + 1)); say "$1" "ok - $2"; else bad=$((bad + 1)); say "$1" "NOT OK - $2"; fi
}
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
# bounded wait until a command succeeds
until_ok() { # seconds command...
	local end=$((SECONDS + $1))
	shift
	while [ $SECONDS -lt "$end" ]; do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
	return 1
}
http_ok() { curl -s --max-time 5 "http://127.0.0.1:$1/" | grep -q ok; }
mc_ok() { python3 -c 'import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
s.sendall(b"version\r\n"); assert s.recv(64).startswith(b"VERSION")' "$1"; }
pg_ok() { su postgres -s /bin/sh -c "psql -h 127.0.0.1 -p $1 -d postgres -Atc 'select 42'" | grep -q 42; }
dump_ok() { # name pid
	local out rc
	out=$("$PG" dump --timeout 10 "$2" 2>"$T/dump.err"); rc=$?
	[ "$rc" = 0 ] && [[ $out == *"dump report of"* ]]
}

echo "== Real daemons under the library, asked with portguard dump (bench/daemons.sh)"

# node: SIGUSR1 opens its inspector; dump must not.
if command -v node >/dev/null; then
	ran+=(node)
	port=$(free_port)
	LD_PRELOAD=$LIB node -e "require('http').createServer((q, r) => r.end('ok')).listen($port, '127.0.0.1')" \
		>"$T/node.out" 2>&1 &
	p=$!
	pids+=("$p")
	until_ok 20 http_ok "$port"; check node "serves under the library" $?
	dump_ok node "$p"; check node "portguard dump printed its report" $?
	http_ok "$port"; check node "still serves" $?
	! grep -q "Debugger listening" "$T/node.out"; check node "its inspector did not open (SIGUSR1's meaning to node)" $?
	kill "$p"; wait "$p" 2>/dev/null
else
	skipped+=(node)
fi

# memcached: SIGUSR1 is its graceful stop.
if command -v memcached >/dev/null; then
	ran+=(memcached)
	port=$(free_port)
	LD_PRELOAD=$LIB memcached -l 127.0.0.1 -p "$port" -U 0 -u nobody >"$T/mc.out" 2>&1 &
	p=$!
	pids+=("$p")
	until_ok 20 mc_ok "$port"; check memcached "serves under the library" $?
	dump_ok memcached "$p"; check memcached "portguard dump printed its report" $?
	mc_ok "$port" && kill -0 "$p"; check memcached "still runs and serves" $?
	kill -USR1 "$p"
	until_ok 20 bash -c "! kill -0 $p"; check memcached "its own SIGUSR1 still stops it" $?
else
	skipped+=(memcached)
fi

# nginx: a master and a worker; SIGUSR1 reopens its logs.
if command -v nginx >/dev/null; then
	ran+=(nginx)
	port=$(free_port)
	mkdir -p "$T/nginx/logs"
	cat >"$T/nginx/nginx.conf" <<-EOF
		daemon off;
		worker_processes 1;
		error_log $T/nginx/logs/error.log;
		pid $T/nginx/nginx.pid;
		events { worker_connections 64; }
		http {
			access_log off;
			client_body_temp_path $T/nginx;
			proxy_temp_path $T/nginx;
			fastcgi_temp_path $T/nginx;
			uwsgi_temp_path $T/nginx;
			scgi_temp_path $T/nginx;
			server { listen 127.0.0.1:$port; location / { return 200 "ok\n"; } }
		}
	EOF
	LD_PRELOAD=$LIB nginx -p "$T/nginx" -c "$T/nginx/nginx.conf" >"$T/nginx.out" 2>&1 &
	p=$!
	pids+=("$p")
	until_ok 20 http_ok "$port"; check nginx "serves under the library" $?
	dump_ok nginx "$p"; check nginx "portguard dump printed the master's report" $?
	w=$(pgrep -P "$p" | head -1)
	if [ -n "$w" ]; then dump_ok nginx "$w"; check nginx "and the worker's" $?; fi
	http_ok "$port"; check nginx "still serves" $?
	kill -QUIT "$p"; wait "$p" 2>/dev/null
else
	skipped+=(nginx)
fi

# postgres: SIGUSR1 is how it signals its own backends.
PGBIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | tail -1)
if [ -n "$PGBIN" ] && [ -x "$PGBIN/postgres" ] && id postgres >/dev/null 2>&1 && command -v psql >/dev/null; then
	ran+=(postgres)
	port=$(free_port)
	mkdir -p "$T/pg" && chown postgres "$T/pg"
	su postgres -s /bin/sh -c "$PGBIN/initdb -D $T/pg/data -A trust >$T/pg/initdb.log 2>&1"
	su postgres -s /bin/sh -c "LD_PRELOAD=$LIB $PGBIN/postgres -D $T/pg/data -c listen_addresses=127.0.0.1 -p $port -k $T/pg >$T/pg/log 2>&1" &
	until_ok 30 pg_ok "$port"; check postgres "serves under the library" $?
	p=$(head -1 "$T/pg/data/postmaster.pid" 2>/dev/null)
	pids+=("$p")
	for i in $(seq 1 20); do su postgres -s /bin/sh -c "psql -h 127.0.0.1 -p $port -d postgres -Atc \"notify ch, 'x$i'\"" >/dev/null 2>&1; done
	dump_ok postgres "$p"; check postgres "portguard dump printed the postmaster's report" $?
	pg_ok "$port"; check postgres "still serves" $?
	n=$(cat "$T"/pg/*.json 2>/dev/null | grep -c '"reason": "signal"')
	[ "$n" = 0 ]; check postgres "no signal report from its own SIGUSR1s (20 NOTIFYs)" $?
	kill -INT "$p" 2>/dev/null
	until_ok 30 bash -c "! kill -0 $p"
else
	skipped+=(postgres)
fi

echo "  daemons run: ${ran[*]:-none}; not installed: ${skipped[*]:-none}; checks: $good ok, $bad not ok"
exit 0
