/*
 * bench/unwind.c: cost and correctness of the candidate stack unwinders.
 *
 * Links the library's archive for its own unwinder (shim/unwind.c). Build:
 *   cc -std=gnu11 -g -O2 -Wall -Wextra -Wshadow -Wmissing-prototypes \
 *      -Wstrict-prototypes -Wwrite-strings -D_GNU_SOURCE -I. \
 *      -o build/bench/unwind bench/unwind.c build/libportguard.a \
 *      -lpthread -ldl -lm
 * Run: build/bench/unwind [-r RUNS] [-n MAX_ITERS] [-v]
 *
 * Chains of 20 frames (+ a leaf): one compiled with frame pointers, one
 * without, one mixed; at the bottom each unwinder captures 16 and 64 frames.
 * glibc's backtrace() (libgcc, DWARF CFI) is the reference for the frames; -v
 * prints, symbolised, every capture that differs from it. Also: first-call
 * cost in a fresh process, calibration syscalls, and two threads at once.
 * Prints figures only; it never passes or fails on a time.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
/* Only for unw_context_t / unw_cursor_t / UNW_REG_IP: nothing is linked. */
#define UNW_LOCAL_ONLY
#include <dirent.h>
#include <dlfcn.h>
#include <execinfo.h>
#include <gnu/libc-version.h>
#include <libunwind.h>
#include <malloc.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <time.h>
#include <unistd.h>

#include "shim/unwind.h"

/* noipa: no inlining, cloning or identical-code folding, so every function in a
 * chain keeps a frame and a distinct return address. */
#define FP_ATTR __attribute__((noipa, optimize("no-omit-frame-pointer")))
#define NOFP_ATTR __attribute__((noipa, optimize("omit-frame-pointer")))

#define CHAIN_LEN 20
#define MAX_FRAMES 64
#define RAW_FRAMES (MAX_FRAMES + 8)
#define NCAND 6
#define TARGET_RUN_NS 100000000LL /* aim for ~0.1 s per timed run */

/* mixed: the leaf keeps frame pointers, the 20 functions above it do not
 * (and leave rbp alone), as when an application built with frame pointers
 * is called back from a distribution library built without. Only checked for
 * correctness, not timed. */
enum { CHAIN_FP, CHAIN_NOFP, CHAIN_MIXED, NCHAIN };
#define NTIMED 2
static const char *const chain_name[NCHAIN] = { "fp", "no-fp", "mixed" };
static const int depths[] = { 16, 64 };
#define NDEPTH 2

static int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static double median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof(*v), cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static double minimum(const double *v, int n)
{
	double m = v[0];

	for (int i = 1; i < n; i++)
		if (v[i] < m)
			m = v[i];
	return m;
}

/* ---- the unwinders ------------------------------------------------------ */

/* Return address into the caller of the capture wrapper (the chain's leaf):
 * every unwinder's output is aligned on it, which drops the unwinder's own
 * frames whatever their number. */
static __thread void *tl_ra;

/* libunwind, through dlopen(RTLD_LOCAL): it exports a weak backtrace() that
 * would otherwise replace glibc's in the whole process. */
static struct {
	int (*backtrace)(void **, int);
	int (*getcontext)(unw_context_t *);
	int (*init_local)(unw_cursor_t *, unw_context_t *);
	int (*step)(unw_cursor_t *);
	int (*get_reg)(unw_cursor_t *, unw_regnum_t, unw_word_t *);
	const char *bt_name;
} unw;

/* libgcc's _Unwind_Backtrace (Itanium C++ ABI, base ABI). Declared here
 * because two different <unwind.h> are installed (gcc's and libunwind's). */
struct gcc_uw_ctx;
static struct {
	int (*backtrace)(int (*)(struct gcc_uw_ctx *, void *), void *);
	uintptr_t (*get_ip)(struct gcc_uw_ctx *);
} gcc;
#define GCC_URC_NO_REASON 0
#define GCC_URC_END_OF_STACK 5

static int load_libunwind(void)
{
	void *h = dlopen("libunwind.so.8", RTLD_NOW | RTLD_LOCAL);

	if (!h) {
		fprintf(stderr, "unwind: %s\n", dlerror());
		return -1;
	}
	/* libunwind 1.6 exports unw_backtrace under that plain name; older
	 * headers mapped it to the prefixed one. */
	unw.bt_name = "unw_backtrace";
	*(void **)&unw.backtrace = dlsym(h, unw.bt_name);
	if (!unw.backtrace) {
		unw.bt_name = "_ULx86_64_backtrace";
		*(void **)&unw.backtrace = dlsym(h, unw.bt_name);
	}
	*(void **)&unw.getcontext = dlsym(h, "_Ux86_64_getcontext");
	*(void **)&unw.init_local = dlsym(h, "_ULx86_64_init_local");
	*(void **)&unw.step = dlsym(h, "_ULx86_64_step");
	*(void **)&unw.get_reg = dlsym(h, "_ULx86_64_get_reg");
	if (!unw.backtrace || !unw.getcontext || !unw.init_local || !unw.step ||
	    !unw.get_reg) {
		fprintf(stderr, "unwind: libunwind symbol missing\n");
		return -1;
	}
	return 0;
}

static int load_libgcc(void)
{
	void *h = dlopen("libgcc_s.so.1", RTLD_NOW | RTLD_LOCAL);

	if (!h) {
		fprintf(stderr, "unwind: %s\n", dlerror());
		return -1;
	}
	*(void **)&gcc.backtrace = dlsym(h, "_Unwind_Backtrace");
	*(void **)&gcc.get_ip = dlsym(h, "_Unwind_GetIP");
	return gcc.backtrace && gcc.get_ip ? 0 : -1;
}

FP_ATTR static int cap_glibc(void **buf, int depth)
{
	tl_ra = __builtin_return_address(0);
	return backtrace(buf, depth);
}

FP_ATTR static int cap_unw_backtrace(void **buf, int depth)
{
	tl_ra = __builtin_return_address(0);
	return unw.backtrace(buf, depth);
}

FP_ATTR static int cap_unw_step(void **buf, int depth)
{
	unw_context_t uc;
	unw_cursor_t cur;
	unw_word_t ip;
	int n = 0;

	tl_ra = __builtin_return_address(0);
	if (unw.getcontext(&uc) || unw.init_local(&cur, &uc))
		return 0;
	while (n < depth) {
		if (unw.get_reg(&cur, UNW_REG_IP, &ip) < 0 || ip == 0)
			break;
		buf[n++] = (void *)(uintptr_t)ip;
		if (unw.step(&cur) <= 0)
			break;
	}
	return n;
}

struct gcc_state {
	void **buf;
	int n, max;
};

static int gcc_cb(struct gcc_uw_ctx *ctx, void *arg)
{
	struct gcc_state *s = arg;
	uintptr_t ip;

	if (s->n >= s->max)
		return GCC_URC_END_OF_STACK;
	ip = gcc.get_ip(ctx);
	if (ip == 0)
		return GCC_URC_END_OF_STACK;
	s->buf[s->n++] = (void *)ip;
	return GCC_URC_NO_REASON;
}

FP_ATTR static int cap_gcc(void **buf, int depth)
{
	struct gcc_state s = { buf, 0, depth };

	tl_ra = __builtin_return_address(0);
	gcc.backtrace(gcc_cb, &s);
	return s.n;
}

static __thread uintptr_t tl_stack_lo, tl_stack_hi;

/* pthread_getattr_np() on the main thread reads /proc/self/maps (fopen:
 * malloc and a descriptor), so the bounds are looked up once per thread. */
static int stack_bounds(uintptr_t *lo, uintptr_t *hi)
{
	if (!tl_stack_hi) {
		pthread_attr_t a;
		void *addr;
		size_t size;
		int rc;

		if (pthread_getattr_np(pthread_self(), &a))
			return -1;
		rc = pthread_attr_getstack(&a, &addr, &size);
		pthread_attr_destroy(&a);
		if (rc)
			return -1;
		tl_stack_lo = (uintptr_t)addr;
		tl_stack_hi = (uintptr_t)addr + size;
	}
	*lo = tl_stack_lo;
	*hi = tl_stack_hi;
	return 0;
}

/* Follow the rbp chain: [rbp] = caller's rbp, [rbp+8] = return address. Every
 * frame must lie inside this thread's stack, be aligned, and be above the last
 * one; anything else ends the walk (a function built without frame pointers
 * may hold any value in rbp). */
FP_ATTR static int cap_fpwalk(void **buf, int depth)
{
	uintptr_t lo, hi, fp, next, ra;
	int n = 0;

	tl_ra = __builtin_return_address(0);
	if (stack_bounds(&lo, &hi))
		return 0;
	fp = (uintptr_t)__builtin_frame_address(0);
	if (fp > lo)
		lo = fp;
	while (n < depth) {
		if (fp < lo || fp > hi - 2 * sizeof(uintptr_t) ||
		    (fp & (sizeof(uintptr_t) - 1)))
			break;
		next = ((const uintptr_t *)fp)[0];
		ra = ((const uintptr_t *)fp)[1];
		if (ra == 0)
			break;
		buf[n++] = (void *)ra;
		if (next <= fp)
			break;
		fp = next;
	}
	return n;
}

/* portguard's own: DWARF CFI with a cache of rules per return address
 * (shim/unwind.c). Its frame 0 is the return address into this function. */
FP_ATTR static int cap_pg(void **buf, int depth)
{
	tl_ra = __builtin_return_address(0);
	return pg_unwind_backtrace((uintptr_t *)(void *)buf, depth);
}

struct cand {
	const char *name;
	int (*cap)(void **, int);
	int lib; /* 0 none, 1 libunwind, 2 libgcc_s, 3 pg_unwind_init() */
	int skip[NCHAIN];
};

static struct cand cands[NCAND] = {
	{ "glibc backtrace()", cap_glibc, 0, { 0, 0 } },
	{ "libunwind unw_backtrace", cap_unw_backtrace, 1, { 0, 0 } },
	{ "libunwind unw_step loop", cap_unw_step, 1, { 0, 0 } },
	{ "libgcc _Unwind_Backtrace", cap_gcc, 2, { 0, 0 } },
	{ "frame-pointer walk", cap_fpwalk, 0, { 0, 0 } },
	{ "portguard pg_unwind", cap_pg, 3, { 0, 0 } },
};

/* ---- the call chains ---------------------------------------------------- */

struct job {
	int (*cap)(void **, int);
	int chain;
	int depth; /* as passed to cap: wanted + skip */
	long iters;
	void **buf;
	int n;
	int64_t ns;
	/* Threads: compare every capture with these frames. */
	void *const *check;
	int skip, ncheck;
	long mismatches;
};

static int check_frames(const struct job *j)
{
	return j->n - j->skip < j->ncheck ||
	       memcmp(j->buf + j->skip, j->check,
		      (size_t)j->ncheck * sizeof(void *)) != 0;
}

/* The capture loop sits in the leaf itself, compiled like its chain, so the
 * stack under the unwinder is exactly the chain. */
#define CHAIN_LEAF(pfx, ATTR)                                               \
	ATTR static int pfx##_leaf(struct job *j)                           \
	{                                                                   \
		int64_t t0 = now_ns();                                      \
		for (long i = 0; i < j->iters; i++) {                       \
			j->n = j->cap(j->buf, j->depth);                    \
			if (j->check && check_frames(j))                    \
				j->mismatches++;                            \
		}                                                           \
		j->ns = now_ns() - t0;                                      \
		return j->n;                                                \
	}
/* "+ n + 1" keeps every call a real call, not a tail jump. */
#define CHAIN_FN(pfx, ATTR, n, callee)                                      \
	ATTR static int pfx##_f##n(struct job *j)                           \
	{                                                                   \
		return callee(j) + n + 1;                                   \
	}
#define CHAIN(pfx, LEAF_ATTR, ATTR)                                         \
	CHAIN_LEAF(pfx, LEAF_ATTR)                                          \
	CHAIN_FN(pfx, ATTR, 0, pfx##_leaf)                                  \
	CHAIN_FN(pfx, ATTR, 1, pfx##_f0)                                    \
	CHAIN_FN(pfx, ATTR, 2, pfx##_f1)                                    \
	CHAIN_FN(pfx, ATTR, 3, pfx##_f2)                                    \
	CHAIN_FN(pfx, ATTR, 4, pfx##_f3)                                    \
	CHAIN_FN(pfx, ATTR, 5, pfx##_f4)                                    \
	CHAIN_FN(pfx, ATTR, 6, pfx##_f5)                                    \
	CHAIN_FN(pfx, ATTR, 7, pfx##_f6)                                    \
	CHAIN_FN(pfx, ATTR, 8, pfx##_f7)                                    \
	CHAIN_FN(pfx, ATTR, 9, pfx##_f8)                                    \
	CHAIN_FN(pfx, ATTR, 10, pfx##_f9)                                   \
	CHAIN_FN(pfx, ATTR, 11, pfx##_f10)                                  \
	CHAIN_FN(pfx, ATTR, 12, pfx##_f11)                                  \
	CHAIN_FN(pfx, ATTR, 13, pfx##_f12)                                  \
	CHAIN_FN(pfx, ATTR, 14, pfx##_f13)                                  \
	CHAIN_FN(pfx, ATTR, 15, pfx##_f14)                                  \
	CHAIN_FN(pfx, ATTR, 16, pfx##_f15)                                  \
	CHAIN_FN(pfx, ATTR, 17, pfx##_f16)                                  \
	CHAIN_FN(pfx, ATTR, 18, pfx##_f17)                                  \
	CHAIN_FN(pfx, ATTR, 19, pfx##_f18)

CHAIN(fp, FP_ATTR, FP_ATTR)
CHAIN(nofp, NOFP_ATTR, NOFP_ATTR)
CHAIN(mix, FP_ATTR, NOFP_ATTR)

FP_ATTR static int run_chain(struct job *j)
{
	switch (j->chain) {
	case CHAIN_NOFP:
		return nofp_f19(j) + 1;
	case CHAIN_MIXED:
		return mix_f19(j) + 2;
	default:
		return fp_f19(j) + 3;
	}
}

/* One capture through the chain; returns the frames after the skip. */
FP_ATTR static int capture_once(const struct cand *c, int chain, int want,
			void **out)
{
	void *raw[RAW_FRAMES];
	int skip = c->skip[chain];
	struct job j = { .cap = c->cap, .chain = chain, .iters = 1,
			 .buf = raw };
	int n;

	j.depth = want + skip > RAW_FRAMES ? RAW_FRAMES : want + skip;
	run_chain(&j);
	n = j.n - skip;
	if (n < 0)
		n = 0;
	memcpy(out, raw + skip, (size_t)n * sizeof(void *));
	return n;
}

/* ---- naming addresses (-v) ---------------------------------------------- */

int main(int argc, char **argv);
extern char _start[]; /* crt1.o's entry point, for naming the last frame */

struct label {
	const char *name;
	uintptr_t addr;
};

#define L(fn) { #fn, (uintptr_t)fn }
#define LCHAIN(p)                                                           \
	L(p##_leaf), L(p##_f0), L(p##_f1), L(p##_f2), L(p##_f3), L(p##_f4), \
	L(p##_f5), L(p##_f6), L(p##_f7), L(p##_f8), L(p##_f9), L(p##_f10),  \
	L(p##_f11), L(p##_f12), L(p##_f13), L(p##_f14), L(p##_f15),         \
	L(p##_f16), L(p##_f17), L(p##_f18), L(p##_f19)

static const char *name_addr(void *a, char *out, size_t len)
{
	static struct label labels[NCHAIN * (CHAIN_LEN + 1) + 5];
	static int nlabels;
	static Dl_info self;
	Dl_info di;
	const struct label *best = NULL;

	if (!nlabels) {
		struct label all[] = { LCHAIN(fp), LCHAIN(nofp), LCHAIN(mix),
				       L(run_chain),
				       L(capture_once), L(main),
				       L(_start) };

		memcpy(labels, all, sizeof(all));
		nlabels = (int)(sizeof(all) / sizeof(all[0]));
		dladdr((void *)(uintptr_t)main, &self);
	}
	if (dladdr(a, &di) && di.dli_fbase == self.dli_fbase) {
		for (int i = 0; i < nlabels; i++)
			if (labels[i].addr <= (uintptr_t)a &&
			    (!best || labels[i].addr > best->addr))
				best = &labels[i];
		if (best) {
			snprintf(out, len, "%s+0x%lx", best->name,
				 (unsigned long)((uintptr_t)a - best->addr));
			return out;
		}
	}
	if (dladdr(a, &di) && di.dli_fname) {
		const char *base = strrchr(di.dli_fname, '/');

		snprintf(out, len, "%s!%s+0x%lx", base ? base + 1 : di.dli_fname,
			 di.dli_sname ? di.dli_sname : "?",
			 (unsigned long)((uintptr_t)a -
					 (uintptr_t)(di.dli_saddr ? di.dli_saddr
								  : di.dli_fbase)));
		return out;
	}
	snprintf(out, len, "%p", a);
	return out;
}

/* ---- first call, in a pristine forked child ----------------------------- */

struct first_res {
	double load_ns, first_ns, second_ns;
	long fds, heap_first, heap_steady;
	int ok;
};

static long count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	long n = 0;

	if (!d)
		return -1;
	while (readdir(d))
		n++;
	closedir(d);
	return n;
}

static long heap_in_use(void)
{
	struct mallinfo2 mi = mallinfo2();

	return (long)(mi.uordblks + mi.hblkhd);
}

static void first_child(struct cand *c, int fd)
{
	struct first_res r = { 0 };
	void *raw[RAW_FRAMES];
	struct job j = { .cap = c->cap, .chain = CHAIN_FP, .depth = 18,
			 .iters = 1, .buf = raw };
	long fds0 = count_fds(), heap0 = heap_in_use(), heap1;
	int64_t t0 = now_ns();

	if (c->lib == 1 && load_libunwind())
		_exit(1);
	if (c->lib == 2 && load_libgcc())
		_exit(1);
	if (c->lib == 3)
		pg_unwind_init();
	r.load_ns = (double)(now_ns() - t0);
	run_chain(&j);
	r.first_ns = (double)j.ns;
	run_chain(&j);
	r.second_ns = (double)j.ns;
	heap1 = heap_in_use();
	r.heap_first = heap1 - heap0;
	r.fds = count_fds() - fds0;
	j.iters = 1000;
	run_chain(&j);
	r.heap_steady = heap_in_use() - heap1;
	r.ok = j.n > 0;
	if (write(fd, &r, sizeof(r)) != (ssize_t)sizeof(r))
		_exit(1);
	_exit(0);
}

static int first_call(struct cand *c, struct first_res *out)
{
	int p[2], st;
	pid_t pid;
	ssize_t got;

	if (pipe(p))
		return -1;
	fflush(NULL);
	pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		close(p[0]);
		first_child(c, p[1]);
	}
	close(p[1]);
	got = read(p[0], out, sizeof(*out));
	close(p[0]);
	waitpid(pid, &st, 0);
	return got == (ssize_t)sizeof(*out) && out->ok ? 0 : -1;
}

/* ---- calibration operations --------------------------------------------- */

enum { OP_SOCKET, OP_FSTAT, OP_GETSOCKNAME, OP_COARSE, OP_MONO, OP_MUTEX,
       NOPS };
static const char *const op_name[NOPS] = {
	"socket(AF_INET,SOCK_STREAM,0)+close()",
	"fstat() on a socket",
	"getsockname() on a socket",
	"clock_gettime(MONOTONIC_COARSE)",
	"clock_gettime(MONOTONIC)",
	"pthread_mutex lock+unlock",
};
static pthread_mutex_t op_mutex = PTHREAD_MUTEX_INITIALIZER;

static double time_op(int op, int sfd, long iters)
{
	struct stat st;
	struct sockaddr_in sin;
	socklen_t sl;
	struct timespec ts;
	int64_t t0 = now_ns();

	for (long i = 0; i < iters; i++) {
		switch (op) {
		case OP_SOCKET: {
			int fd = socket(AF_INET, SOCK_STREAM, 0);

			if (fd >= 0)
				close(fd);
			break;
		}
		case OP_FSTAT:
			fstat(sfd, &st);
			break;
		case OP_GETSOCKNAME:
			sl = sizeof(sin);
			getsockname(sfd, (struct sockaddr *)&sin, &sl);
			break;
		case OP_COARSE:
			clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
			break;
		case OP_MONO:
			clock_gettime(CLOCK_MONOTONIC, &ts);
			break;
		case OP_MUTEX:
			pthread_mutex_lock(&op_mutex);
			pthread_mutex_unlock(&op_mutex);
			break;
		}
	}
	return (double)(now_ns() - t0) / (double)iters;
}

/* Iterations for a ~0.1 s run, from a per-call estimate. */
static long pick_iters(double est_ns, long max_iters)
{
	long n = est_ns > 0 ? (long)((double)TARGET_RUN_NS / est_ns) : max_iters;

	if (n > max_iters)
		n = max_iters;
	if (n < 1000)
		n = 1000;
	return n;
}

/* ---- threads ------------------------------------------------------------ */

struct tctx {
	struct job job;
	void *buf[RAW_FRAMES];
	void *own[16];
	void *const *ref;
	pthread_barrier_t *bar;
	double first_ns, cpu_ns;
	int refmatch;
};

static double thread_cpu_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static void *thr_main(void *arg)
{
	struct tctx *t = arg;
	struct job first = t->job;

	t->job.buf = t->buf;
	first.buf = t->buf;
	first.iters = 1;
	first.check = NULL;
	run_chain(&first);
	t->first_ns = (double)first.ns;
	/* Later captures must equal this thread's first one; the first is
	 * compared with the main thread's reference. */
	for (int i = 0; i < 16; i++) {
		t->own[i] = i < first.n - first.skip ? t->buf[first.skip + i]
						     : NULL;
		t->refmatch += t->own[i] == t->ref[i];
	}
	t->job.ncheck = first.n - first.skip < 16 ? first.n - first.skip : 16;
	t->job.check = t->own;
	if (t->bar)
		pthread_barrier_wait(t->bar);
	t->cpu_ns = thread_cpu_ns();
	run_chain(&t->job);
	t->cpu_ns = thread_cpu_ns() - t->cpu_ns;
	return NULL;
}

struct tres {
	double per_ns;   /* wall ns per capture, mean over threads */
	double cpu_ns;   /* thread CPU ns per capture, mean over threads */
	double wall_ns;  /* the slowest thread's loop */
	double first_ns; /* first capture in a new thread, mean */
	long mism;
	int refmatch;    /* worst thread */
};

/* nthreads threads each run iters captures at once. */
static int run_threads(const struct cand *c, int chain, int nthreads,
		       long iters, void *const *ref, struct tres *res)
{
	struct tctx t[2];
	pthread_t tid[2];
	pthread_barrier_t bar;
	double sum = 0, cpu = 0, wall = 0;

	pthread_barrier_init(&bar, NULL, (unsigned)nthreads);
	for (int i = 0; i < nthreads; i++) {
		memset(&t[i], 0, sizeof(t[i]));
		t[i].job.cap = c->cap;
		t[i].job.chain = chain;
		t[i].job.depth = 16 + c->skip[chain];
		t[i].job.iters = iters;
		t[i].ref = ref;
		t[i].job.skip = c->skip[chain];
		t[i].bar = nthreads > 1 ? &bar : NULL;
		if (pthread_create(&tid[i], NULL, thr_main, &t[i]))
			return -1;
	}
	memset(res, 0, sizeof(*res));
	res->refmatch = 16;
	for (int i = 0; i < nthreads; i++) {
		pthread_join(tid[i], NULL);
		sum += (double)t[i].job.ns / (double)iters;
		cpu += t[i].cpu_ns / (double)iters;
		if ((double)t[i].job.ns > wall)
			wall = (double)t[i].job.ns;
		res->mism += t[i].job.mismatches;
		res->first_ns += t[i].first_ns / nthreads;
		if (t[i].refmatch < res->refmatch)
			res->refmatch = t[i].refmatch;
	}
	pthread_barrier_destroy(&bar);
	res->per_ns = sum / nthreads;
	res->cpu_ns = cpu / nthreads;
	res->wall_ns = wall;
	return 0;
}

/* ---- main --------------------------------------------------------------- */

static void print_diff(const struct cand *c, int chain, void *const *ref,
		       int nref, void *const *got, int n)
{
	char a[128], b[128];
	int rows = n > nref ? n : nref;

	printf("\n%s, %s chain: glibc backtrace() | %s\n", c->name,
	       chain_name[chain], c->name);
	for (int i = 0; i < rows; i++)
		printf("  %2d %-36s %s %s\n", i,
		       i < nref ? name_addr(ref[i], a, sizeof(a)) : "-",
		       i < n && i < nref && got[i] == ref[i] ? "==" : "!=",
		       i < n ? name_addr(got[i], b, sizeof(b)) : "-");
}

static void print_machine(void)
{
	char line[256], model[256] = "?";
	FILE *f = fopen("/proc/cpuinfo", "r");
	struct utsname u;
	double la[3] = { 0, 0, 0 };

	while (f && fgets(line, sizeof(line), f)) {
		char *p = strchr(line, ':');

		if (!strncmp(line, "model name", 10) && p) {
			snprintf(model, sizeof(model), "%s", p + 2);
			model[strcspn(model, "\n")] = 0;
			break;
		}
	}
	if (f)
		fclose(f);
	uname(&u);
	getloadavg(la, 3);
	printf("machine: %ld online CPUs, %s, kernel %s, glibc %s, "
	       "load %.2f %.2f %.2f\n",
	       sysconf(_SC_NPROCESSORS_ONLN), model, u.release,
	       gnu_get_libc_version(), la[0], la[1], la[2]);
}

int main(int argc, char **argv)
{
	int runs = 7, verbose = 0, opt;
	long max_iters = 200000;
	struct first_res fr[NCAND];
	int fr_ok[NCAND];
	void *ref[NCHAIN][RAW_FRAMES];
	int nref[NCHAIN];
	/* results */
	int nframes[NCAND][NCHAIN][NDEPTH], match[NCAND][NCHAIN][NDEPTH];
	int nwant[NCHAIN][NDEPTH];
	long iters[NCAND][NTIMED][NDEPTH];
	double *t_cap[NCAND][NTIMED][NDEPTH];
	double op_med[NOPS], op_min[NOPS];
	int sfd;

	while ((opt = getopt(argc, argv, "r:n:v")) != -1) {
		switch (opt) {
		case 'r':
			runs = atoi(optarg);
			break;
		case 'n':
			max_iters = atol(optarg);
			break;
		case 'v':
			verbose = 1;
			break;
		default:
			fprintf(stderr,
				"usage: %s [-r RUNS] [-n MAX_ITERS] [-v]\n",
				argv[0]);
			return 2;
		}
	}
	if (runs < 1)
		runs = 1;
	if (max_iters < 1000)
		max_iters = 1000;
	print_machine();

	/* First calls, before this process has touched any unwinder: each in
	 * a fresh child, median of 5. */
	for (int c = 0; c < NCAND; c++) {
		double ld[5], f1[5], f2[5];
		int k = 0;

		for (int i = 0; i < 5; i++)
			if (!first_call(&cands[c], &fr[c])) {
				ld[k] = fr[c].load_ns;
				f1[k] = fr[c].first_ns;
				f2[k] = fr[c].second_ns;
				k++;
			}
		fr_ok[c] = k > 0;
		if (k) {
			fr[c].load_ns = median(ld, k);
			fr[c].first_ns = median(f1, k);
			fr[c].second_ns = median(f2, k);
		}
	}

	if (load_libunwind() || load_libgcc())
		return 1;

	/* Skip per candidate and chain: where the leaf's return address sits
	 * in its raw output. */
	for (int c = 0; c < NCAND; c++)
		for (int ch = 0; ch < NCHAIN; ch++) {
			void *raw[RAW_FRAMES];
			struct job j = { .cap = cands[c].cap, .chain = ch,
					 .depth = RAW_FRAMES, .iters = 1,
					 .buf = raw };

			run_chain(&j);
			cands[c].skip[ch] = -1;
			for (int i = 0; i < j.n; i++)
				if (raw[i] == tl_ra) {
					cands[c].skip[ch] = i;
					break;
				}
			if (cands[c].skip[ch] < 0) {
				fprintf(stderr, "%s/%s: leaf frame not found\n",
					cands[c].name, chain_name[ch]);
				cands[c].skip[ch] = 0;
			}
		}

	/* Correctness against glibc's backtrace(). All captures, reference
	 * first, go through one call site in a branch-free loop, so that the
	 * frames of the harness match too. */
	{
		enum { NPLAN = NCHAIN + NCAND * NCHAIN * NDEPTH };
		static void *got[NPLAN][RAW_FRAMES];
		int pc[NPLAN], pch[NPLAN], pwant[NPLAN], pn[NPLAN];

		for (int k = 0; k < NPLAN; k++) {
			int q = k - NCHAIN;

			pc[k] = q < 0 ? 0 : q / (NCHAIN * NDEPTH);
			pch[k] = q < 0 ? k : q / NDEPTH % NCHAIN;
			pwant[k] = q < 0 ? MAX_FRAMES : depths[q % NDEPTH];
		}
		for (int k = 0; k < NPLAN; k++)
			pn[k] = capture_once(&cands[pc[k]], pch[k], pwant[k],
					     got[k]);
		for (int ch = 0; ch < NCHAIN; ch++) {
			memcpy(ref[ch], got[ch], (size_t)pn[ch] * sizeof(void *));
			nref[ch] = pn[ch];
			for (int d = 0; d < NDEPTH; d++)
				nwant[ch][d] = nref[ch] < depths[d] ? nref[ch]
								    : depths[d];
		}
		for (int k = NCHAIN; k < NPLAN; k++) {
			int c = pc[k], ch = pch[k], n = pn[k], m = 0;
			int d = (k - NCHAIN) % NDEPTH;

			for (int i = 0; i < nwant[ch][d] && i < n; i++)
				m += got[k][i] == ref[ch][i];
			nframes[c][ch][d] = n;
			match[c][ch][d] = m;
			if (verbose && d == NDEPTH - 1 &&
			    (m != nwant[ch][d] || n != nwant[ch][d]))
				print_diff(&cands[c], ch, ref[ch], nref[ch],
					   got[k], n);
		}
	}

	/* Cost: every run visits every configuration in turn, so a burst of
	 * load from elsewhere spreads over all of them. */
	for (int c = 0; c < NCAND; c++)
		for (int ch = 0; ch < NTIMED; ch++)
			for (int d = 0; d < NDEPTH; d++) {
				void *raw[RAW_FRAMES];
				struct job j = { .cap = cands[c].cap, .chain = ch,
						 .depth = depths[d] + cands[c].skip[ch],
						 .iters = 1000, .buf = raw };

				run_chain(&j);
				iters[c][ch][d] = pick_iters((double)j.ns / 1000, max_iters);
				t_cap[c][ch][d] = calloc((size_t)runs, sizeof(double));
			}
	for (int r = 0; r < runs; r++)
		for (int c = 0; c < NCAND; c++)
			for (int ch = 0; ch < NTIMED; ch++)
				for (int d = 0; d < NDEPTH; d++) {
					void *raw[RAW_FRAMES];
					struct job j = { .cap = cands[c].cap, .chain = ch,
							 .depth = depths[d] + cands[c].skip[ch],
							 .iters = iters[c][ch][d], .buf = raw };

					run_chain(&j);
					t_cap[c][ch][d][r] = (double)j.ns / (double)j.iters;
				}

	/* Calibration. */
	sfd = socket(AF_INET, SOCK_STREAM, 0);
	for (int op = 0; op < NOPS; op++) {
		double v[runs];
		long n = pick_iters(time_op(op, sfd, 1000), max_iters);

		for (int r = 0; r < runs; r++)
			v[r] = time_op(op, sfd, n);
		op_min[op] = minimum(v, runs);
		op_med[op] = median(v, runs);
	}
	close(sfd);

	printf("\nCapture cost and correctness: chain of %d frames + leaf, "
	       "median (min) of %d runs, ns per capture.\n"
	       "Frames counted from the leaf's return address (each unwinder's "
	       "own frames dropped);\n'match' = frames equal to glibc "
	       "backtrace() at the same index / frames the reference has.\n\n",
	       CHAIN_LEN, runs);
	printf("%-26s %-5s %5s %6s %7s %10s %10s %9s %8s\n", "unwinder", "chain",
	       "depth", "frames", "match", "median ns", "min ns", "x socket",
	       "iters");
	for (int c = 0; c < NCAND; c++)
		for (int ch = 0; ch < NCHAIN; ch++)
			for (int d = 0; d < NDEPTH; d++) {
				char m[16];

				snprintf(m, sizeof(m), "%d/%d", match[c][ch][d],
					 nwant[ch][d]);
				printf("%-26s %-5s %5d %6d %7s", cands[c].name,
				       chain_name[ch], depths[d],
				       nframes[c][ch][d], m);
				if (ch < NTIMED) {
					double mn = minimum(t_cap[c][ch][d], runs);
					double md = median(t_cap[c][ch][d], runs);

					printf(" %10.0f %10.0f %9.3f %8ld\n", md,
					       mn, md / op_med[OP_SOCKET],
					       iters[c][ch][d]);
				} else {
					printf(" %10s %10s %9s %8s\n", "-", "-",
					       "-", "-");
				}
			}

	printf("\nCalibration (median (min) of %d runs, ns per call):\n", runs);
	for (int op = 0; op < NOPS; op++)
		printf("  %-40s %8.0f (%.0f)\n", op_name[op], op_med[op],
		       op_min[op]);

	printf("\nFirst call in a fresh process (fork before any unwinder use; "
	       "median of 5):\n");
	printf("%-26s %10s %12s %12s %6s %11s %12s\n", "unwinder", "dlopen us",
	       "1st capt us", "2nd capt ns", "fds+", "heap+ bytes",
	       "heap+ /1000");
	for (int c = 0; c < NCAND; c++) {
		if (!fr_ok[c]) {
			printf("%-26s failed\n", cands[c].name);
			continue;
		}
		printf("%-26s %10.1f %12.1f %12.0f %6ld %11ld %12ld\n",
		       cands[c].name, fr[c].load_ns / 1000, fr[c].first_ns / 1000,
		       fr[c].second_ns, fr[c].fds, fr[c].heap_first,
		       fr[c].heap_steady);
	}
	printf("  (dlopen = %s for libunwind, libgcc_s.so.1 for _Unwind_Backtrace,"
	       " pg_unwind_init() for\n   portguard's; glibc backtrace() loads"
	       " libgcc_s itself inside its first call."
	       " fds+ = descriptors left open; heap+ = malloc bytes still in use\n"
	       "   after loading and the first two captures, and growth over the "
	       "next 1000)\n",
	       "libunwind.so.8");

	printf("\nThreads, depth 16 (median of %d runs): each thread captures N "
	       "times (~0.2 s); 2 threads start\ntogether at a barrier. ns per "
	       "capture, wall clock and thread CPU time.\n", runs);
	printf("%-26s %-5s %6s %8s %8s %8s %8s %7s %6s %9s\n", "unwinder",
	       "chain", "match", "1t wall", "1t cpu", "2t wall", "2t cpu",
	       "scaling", "mism", "thread 1st");
	for (int c = 0; c < NCAND; c++)
		for (int ch = 0; ch < NTIMED; ch++) {
			double w1[runs], c1[runs], w2[runs], c2[runs], sc[runs],
				f1[runs];
			long mism = 0;
			double est = median(t_cap[c][ch][0], runs);
			int rmin = 16;
			struct tres one, two;
			/* ~0.2 s per thread: shorter runs measure the
			 * scheduler, not the unwinder. */
			long n = est > 0 ? (long)(2e8 / est) : 1000;

			if (n > 20000000)
				n = 20000000;
			if (n < 1000)
				n = 1000;
			for (int r = 0; r < runs; r++) {
				run_threads(&cands[c], ch, 1, n, ref[ch], &one);
				run_threads(&cands[c], ch, 2, n, ref[ch], &two);
				w1[r] = one.per_ns;
				c1[r] = one.cpu_ns;
				w2[r] = two.per_ns;
				c2[r] = two.cpu_ns;
				f1[r] = one.first_ns;
				mism += one.mism + two.mism;
				if (one.refmatch < rmin)
					rmin = one.refmatch;
				if (two.refmatch < rmin)
					rmin = two.refmatch;
				/* total captures/s, 2 threads over 1 */
				sc[r] = 2.0 * one.wall_ns / two.wall_ns;
			}
			printf("%-26s %-5s %3d/16 %8.0f %8.0f %8.0f %8.0f %6.2fx "
			       "%6ld %6.1f us\n",
			       cands[c].name, chain_name[ch], rmin,
			       median(w1, runs), median(c1, runs),
			       median(w2, runs), median(c2, runs),
			       median(sc, runs), mism, median(f1, runs) / 1000);
		}
	printf("  (match = worst, over threads and runs, of a thread's first "
	       "capture against the main thread's\n   reference; ns include "
	       "a compare of each capture with the thread's first; scaling =\n"
	       "   total captures/s with 2 threads over 1 thread, 2.00x is "
	       "perfect, 1.00x when only one CPU\n   is free: the "
	       "frame-pointer walk shares nothing and is the control; mism = "
	       "captures,\n   over all runs, that differed from their "
	       "thread's first capture; thread 1st = first capture\n   in a "
	       "new thread, the unwinder already warm in the process)\n");
	printf("\nlibunwind symbol used: %s (dlopen libunwind.so.8, "
	       "RTLD_NOW|RTLD_LOCAL)\n", unw.bt_name);
	return 0;
}
