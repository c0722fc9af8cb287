/*
 * bench/loop.c: a loopback TCP cycle in one process: socket, connect to a
 * listener on 127.0.0.1, accept, close both ends. One cycle = two sockets
 * created (socket + accept) and two closed.
 *
 *   build/bench/loop [-n CYCLES] [-w WARMUP] [-D NEST]
 *
 * No TIME_WAIT pile-up: the client sets SO_LINGER {on, 0} and closes first,
 * so its close sends RST and neither end enters TIME_WAIT; the client's
 * ephemeral port is free again at once. (The accepted end is closed after
 * it, already reset.) Only 127.0.0.1, one listening port on an ephemeral
 * number. Prints key=value figures as bench/pair does.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "bench/bench.h"

static int listener;
static struct sockaddr_in where;

static long cycles(long n)
{
	static const struct linger rst = { .l_onoff = 1, .l_linger = 0 };

	for (long i = 0; i < n; i++) {
		int c = socket(AF_INET, SOCK_STREAM, 0), s;
		if (c < 0)
			pg_bench_die("loop: socket");
		if (setsockopt(c, SOL_SOCKET, SO_LINGER, &rst, sizeof(rst)) < 0)
			pg_bench_die("loop: SO_LINGER");
		if (connect(c, (const struct sockaddr *)&where, sizeof(where)) < 0)
			pg_bench_die("loop: connect");
		s = accept(listener, NULL, NULL);
		if (s < 0)
			pg_bench_die("loop: accept");
		close(c);
		close(s);
	}
	return n;
}

int main(int argc, char **argv)
{
	long n = 20000, warm = 500;
	int depth = 32, opt;
	socklen_t len = sizeof(where);
	struct pg_bench_run r;

	while ((opt = getopt(argc, argv, "n:w:D:")) != -1) {
		switch (opt) {
		case 'n': n = atol(optarg); break;
		case 'w': warm = atol(optarg); break;
		case 'D': depth = atoi(optarg); break;
		default:
			fprintf(stderr, "usage: %s [-n CYCLES] [-w WARMUP] [-D NEST]\n", argv[0]);
			return 2;
		}
	}
	memset(&where, 0, sizeof(where));
	where.sin_family = AF_INET;
	where.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	listener = socket(AF_INET, SOCK_STREAM, 0);
	if (listener < 0 || bind(listener, (const struct sockaddr *)&where, sizeof(where)) < 0 ||
	    listen(listener, 128) < 0 || getsockname(listener, (struct sockaddr *)&where, &len) < 0)
		pg_bench_die("loop: listener");
	pg_bench_time(depth, warm, n, cycles, &r);
	close(listener);
	pg_bench_print("loop", -1, &r);
	return 0;
}
