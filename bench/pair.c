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

static int control;

struct job {
	long n, warm;
	int nest;
	pthread_barrier_t *go;
};

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

/* noipa and an empty asm on the result after the call: every level keeps its
 * own frame (no inlining, no tail call, no recursion turned into a loop). */
__attribute__((noipa)) static long nest(int depth, long n)
{
	long r;

	if (depth <= 0)
		return pairs(n);
	r = nest(depth - 1, n);
	/* The result passes through an empty asm after the call: no tail call. */
	__asm__ volatile("" : "+r"(r));
	return r;
}

static void *worker(void *arg)
{
	struct job *j = arg;

	nest(j->nest, j->warm);
	pthread_barrier_wait(j->go);
	nest(j->nest, j->n);
	return NULL;
}

int main(int argc, char **argv)
{
	long n = 100000, warm = 2000;
	int threads = 0, depth = 32, opt;
	int64_t t0, t1, c0, c1;
	long ops;

	while ((opt = getopt(argc, argv, "n:w:t:D:x")) != -1) {
		switch (opt) {
		case 'n': n = atol(optarg); break;
		case 'w': warm = atol(optarg); break;
		case 't': threads = atoi(optarg); break;
		case 'D': depth = atoi(optarg); break;
		case 'x': control = 1; break;
		default:
			fprintf(stderr, "usage: %s [-n PAIRS] [-w WARMUP] [-t THREADS] [-D NEST] [-x]\n",
				argv[0]);
			return 2;
		}
	}
	if (threads <= 0) {
		/* In the main thread, as a plain program does it. */
		nest(depth, warm);
		c0 = cpu_ns();
		t0 = now_ns();
		ops = nest(depth, n);
		t1 = now_ns();
		c1 = cpu_ns();
	} else {
		pthread_t tid[threads];
		struct job j = {.n = n, .warm = warm, .nest = depth};
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
		c0 = cpu_ns();
		t0 = now_ns();
		for (int i = 0; i < threads; i++)
			pthread_join(tid[i], NULL);
		t1 = now_ns();
		c1 = cpu_ns();
		ops = n * threads;
	}
	printf("%s: threads=%d ops=%ld wall_ns=%lld cpu_ns=%lld ns_per_op=%.1f cpu_ns_per_op=%.1f ops_per_sec=%.0f\n",
	       control ? "control" : "pair", threads ? threads : 1, ops, (long long)(t1 - t0), (long long)(c1 - c0),
	       (double)(t1 - t0) / (double)ops, (double)(c1 - c0) / (double)ops,
	       (double)ops * 1e9 / (double)(t1 - t0));
	return 0;
}
