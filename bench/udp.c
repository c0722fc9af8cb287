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

#include "bench/bench.h"

static struct sockaddr_in any_port;

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

int main(int argc, char **argv)
{
	long n = 100000, warm = 2000;
	int depth = 32, opt;
	struct pg_bench_run r;

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
	pg_bench_time(depth, warm, n, ops_loop, &r);
	pg_bench_print("udp", -1, &r);
	return 0;
}
