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

static int listener;
static struct sockaddr_in where;

static int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int64_t cpu_ns(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return ((int64_t)ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000000 +
	       ((int64_t)ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1000;
}

static void die(const char *what)
{
	perror(what);
	exit(1);
}

static long cycles(long n)
{
	static const struct linger rst = {.l_onoff = 1, .l_linger = 0};

	for (long i = 0; i < n; i++) {
		int c = socket(AF_INET, SOCK_STREAM, 0), s;
		if (c < 0)
			die("loop: socket");
		if (setsockopt(c, SOL_SOCKET, SO_LINGER, &rst, sizeof(rst)) < 0)
			die("loop: SO_LINGER");
		if (connect(c, (const struct sockaddr *)&where, sizeof(where)) < 0)
			die("loop: connect");
		s = accept(listener, NULL, NULL);
		if (s < 0)
			die("loop: accept");
		close(c);
		close(s);
	}
	return n;
}

/* Every level keeps its own frame (see bench/pair.c). */
__attribute__((noipa)) static long nest(int depth, long n)
{
	long r;

	if (depth <= 0)
		return cycles(n);
	r = nest(depth - 1, n);
	/* The result passes through an empty asm after the call: no tail call. */
	__asm__ volatile("" : "+r"(r));
	return r;
}

int main(int argc, char **argv)
{
	long n = 20000, warm = 500, ops;
	int depth = 32, opt;
	socklen_t len = sizeof(where);
	int64_t t0, t1, c0, c1;

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
	    listen(listener, 128) < 0 ||
	    getsockname(listener, (struct sockaddr *)&where, &len) < 0)
		die("loop: listener");
	nest(depth, warm);
	c0 = cpu_ns();
	t0 = now_ns();
	ops = nest(depth, n);
	t1 = now_ns();
	c1 = cpu_ns();
	close(listener);
	printf("loop: ops=%ld wall_ns=%lld cpu_ns=%lld ns_per_op=%.1f cpu_ns_per_op=%.1f ops_per_sec=%.0f\n",
	       ops, (long long)(t1 - t0), (long long)(c1 - c0), (double)(t1 - t0) / (double)ops,
	       (double)(c1 - c0) / (double)ops, (double)ops * 1e9 / (double)(t1 - t0));
	return 0;
}
