/* Shared by the workload programs of make bench (pair, loop, udp): the
 * clocks, the nesting that makes each socket call NEST frames below main,
 * and the one line of key=value figures bench.py reads. */
#ifndef PG_BENCH_H
#define PG_BENCH_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <time.h>

static inline int64_t pg_bench_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* User + system time of the whole process. */
static inline int64_t pg_bench_cpu_ns(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return ((int64_t)ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000000 +
	       ((int64_t)ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1000;
}

static inline void pg_bench_die(const char *what)
{
	perror(what);
	exit(1);
}

/* noipa and an empty asm on the result after the call: every level keeps its
 * own frame (no inlining, no tail call, no recursion turned into a loop), so
 * that the library unwinds a stack as deep as a real program's and
 * stack_depth=16 and 64 differ. work runs at the bottom. */
__attribute__((noipa, unused)) static long pg_bench_nest(int depth, long n, long (*work)(long))
{
	long r;

	if (depth <= 0)
		return work(n);
	r = pg_bench_nest(depth - 1, n, work);
	__asm__ volatile("" : "+r"(r));
	return r;
}

struct pg_bench_run {
	long ops;
	int64_t wall_ns, cpu_ns;
};

/* A warm-up, then the timed run, in the calling thread. */
static inline void pg_bench_time(int depth, long warm, long n, long (*work)(long),
				 struct pg_bench_run *r)
{
	int64_t t0, c0;

	pg_bench_nest(depth, warm, work);
	c0 = pg_bench_cpu_ns();
	t0 = pg_bench_now_ns();
	r->ops = pg_bench_nest(depth, n, work);
	r->wall_ns = pg_bench_now_ns() - t0;
	r->cpu_ns = pg_bench_cpu_ns() - c0;
}

/* "NAME: [threads=T ]ops=... wall_ns=... cpu_ns=... ns_per_op=...
 * cpu_ns_per_op=... ops_per_sec=..." (threads < 0: no threads field). */
static inline void pg_bench_print(const char *name, int threads, const struct pg_bench_run *r)
{
	printf("%s: ", name);
	if (threads >= 0)
		printf("threads=%d ", threads);
	printf(
	    "ops=%ld wall_ns=%lld cpu_ns=%lld ns_per_op=%.1f cpu_ns_per_op=%.1f ops_per_sec=%.0f\n",
	    r->ops, (long long)r->wall_ns, (long long)r->cpu_ns,
	    (double)r->wall_ns / (double)r->ops, (double)r->cpu_ns / (double)r->ops,
	    (double)r->ops * 1e9 / (double)r->wall_ns);
}

#endif
