/*
 * bench/udp.c: socket() of a UDP socket, bind() to 127.0.0.1 port 0 (the
 * kernel picks an ephemeral port), close(), in a loop.
 *
 *   build/bench/udp [-n OPS] [-w WARMUP] [-D NEST]
 *
 * Prints key=value figures as bench/pair does.
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

static struct sockaddr_in any_port;

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

static long ops_loop(long n)
{
	for (long i = 0; i < n; i++) {
		int fd = socket(AF_INET, SOCK_DGRAM, 0);
		if (fd < 0 || bind(fd, (const struct sockaddr *)&any_port, sizeof(any_port)) < 0) {
			perror("udp: socket/bind");
			exit(1);
		}
		close(fd);
	}
	return n;
}

/* Every level keeps its own frame (see bench/pair.c). */
__attribute__((noipa)) static long nest(int depth, long n)
{
	long r;

	if (depth <= 0)
		return ops_loop(n);
	r = nest(depth - 1, n);
	/* The result passes through an empty asm after the call: no tail call. */
	__asm__ volatile("" : "+r"(r));
	return r;
}

int main(int argc, char **argv)
{
	long n = 100000, warm = 2000, ops;
	int depth = 32, opt;
	int64_t t0, t1, c0, c1;

	while ((opt = getopt(argc, argv, "n:w:D:")) != -1) {
		switch (opt) {
		case 'n': n = atol(optarg); break;
		case 'w': warm = atol(optarg); break;
		case 'D': depth = atoi(optarg); break;
		default:
			fprintf(stderr, "usage: %s [-n OPS] [-w WARMUP] [-D NEST]\n", argv[0]);
			return 2;
		}
	}
	memset(&any_port, 0, sizeof(any_port));
	any_port.sin_family = AF_INET;
	any_port.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	nest(depth, warm);
	c0 = cpu_ns();
	t0 = now_ns();
	ops = nest(depth, n);
	t1 = now_ns();
	c1 = cpu_ns();
	printf("udp: ops=%ld wall_ns=%lld cpu_ns=%lld ns_per_op=%.1f cpu_ns_per_op=%.1f ops_per_sec=%.0f\n",
	       ops, (long long)(t1 - t0), (long long)(c1 - c0), (double)(t1 - t0) / (double)ops,
	       (double)(c1 - c0) / (double)ops, (double)ops * 1e9 / (double)(t1 - t0));
	return 0;
}
