/*
 * bench/pair.c: socket() + close() of a TCP socket in a loop, the cheapest
 * thing the library sits on. With -t N, N threads do it at once (released
 * together at a barrier): the thread-scaling figures. -x replaces each pair
 * by the same loop of pure computation (no system call, nothing shared):
 * the control that shows how many CPUs were really free.
 *
 *   build/bench/pair [-n PAIRS] [-w WARMUP] [-t THREADS] [-D NEST] [-x]
 *
 * Prints one line of key=value figures: ops, wall_ns, cpu_ns (user + system
 * of the whole process over the timed part), ns_per_op, cpu_ns_per_op,
 * ops_per_sec. PAIRS is per thread. The loop runs NEST frames below main
 * (default 32) so that the library unwinds a stack as deep as a real
 * program's, and stack_depth=16 and 64 differ. Prints figures only.
 */
#include <netinet/in.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "bench/bench.h"

static int control;

struct job {
	long n, warm;
	int nest;
	pthread_barrier_t *go;
};

/* About as long as a bare socket+close, all in user space. */
static long spin(long n)
{
	uint64_t x = 88172645463325252ull;

	for (long i = 0; i < n; i++) {
		for (int k = 0; k < 2000; k++) {
			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
		}
		__asm__ volatile("" : "+r"(x));
	}
	return n;
}

static long pairs(long n)
{
	if (control)
		return spin(n);
	for (long i = 0; i < n; i++) {
		int fd = socket(AF_INET, SOCK_STREAM, 0);
		if (fd < 0) {
			perror("pair: socket");
			exit(1);
		}
		close(fd);
	}
	return n;
}

static void *worker(void *arg)
{
	struct job *j = arg;

	pg_bench_nest(j->nest, j->warm, pairs);
	pthread_barrier_wait(j->go);
	pg_bench_nest(j->nest, j->n, pairs);
	return NULL;
}

int main(int argc, char **argv)
{
	long n = 100000, warm = 2000;
	int threads = 0, depth = 32, opt;
	struct pg_bench_run r;
	int64_t t0, c0;

	while ((opt = getopt(argc, argv, "n:w:t:D:x")) != -1) {
		switch (opt) {
		case 'n': n = atol(optarg); break;
		case 'w': warm = atol(optarg); break;
		case 't': threads = atoi(optarg); break;
		case 'D': depth = atoi(optarg); break;
		case 'x': control = 1; break;
		default:
			fprintf(stderr,
				"usage: %s [-n PAIRS] [-w WARMUP] [-t THREADS] [-D NEST] [-x]\n",
				argv[0]);
			return 2;
		}
	}
	if (threads <= 0) {
		/* In the main thread, as a plain program does it. */
		pg_bench_time(depth, warm, n, pairs, &r);
	} else {
		pthread_t tid[threads];
		struct job j = { .n = n, .warm = warm, .nest = depth };
		pthread_barrier_t go;

		pthread_barrier_init(&go, NULL, (unsigned)threads + 1);
		j.go = &go;
		for (int i = 0; i < threads; i++) {
			if (pthread_create(&tid[i], NULL, worker, &j) != 0) {
				fprintf(stderr, "pair: pthread_create failed\n");
				return 1;
			}
		}
		pthread_barrier_wait(&go);
		c0 = pg_bench_cpu_ns();
		t0 = pg_bench_now_ns();
		for (int i = 0; i < threads; i++)
			pthread_join(tid[i], NULL);
		r.wall_ns = pg_bench_now_ns() - t0;
		r.cpu_ns = pg_bench_cpu_ns() - c0;
		r.ops = n * threads;
	}
	pg_bench_print(control ? "control" : "pair", threads ? threads : 1, &r);
	return 0;
}
