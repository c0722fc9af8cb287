/* The CFI unwinder, against glibc's backtrace() (libgcc, DWARF CFI) as the
 * reference: chains with and without frame pointers, mixed, through libc,
 * in threads, a signal handler, code without CFI; depth limits, cache hits,
 * and no descriptor held. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "shim/unwind.h"

#include <dirent.h>
#include <dlfcn.h>
#include <execinfo.h>
#include <link.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

/* noipa: no inlining, cloning or folding, so every function keeps a frame
 * and its own return address. */
#define FP __attribute__((noipa, optimize("no-omit-frame-pointer")))
#define NOFP __attribute__((noipa, optimize("omit-frame-pointer")))

#define REF_MAX 128

struct cap {
	int max;
	int ngot, nref;
	uintptr_t got[REF_MAX];
	void *ref[REF_MAX];
};

/* Both unwinders from the same function: the lists differ at [0] only. */
#define CAPTURE_BOTH(c)                                              \
	do {                                                         \
		(c)->nref = backtrace((c)->ref, REF_MAX);            \
		(c)->ngot = pg_unwind_backtrace((c)->got, (c)->max); \
		drop_interceptor(c);                                 \
	} while (0)

/* Under a sanitizer, backtrace() is its interceptor, whose own frame comes
 * first; glibc's [0] is in the caller, as ours is. */
static void drop_interceptor(struct cap *c)
{
	Dl_info ref0, got0;

	if (c->nref > 0 && c->ngot > 0 && dladdr(c->ref[0], &ref0) &&
	    dladdr((void *)c->got[0], &got0) && ref0.dli_fbase != got0.dli_fbase) {
		c->nref--;
		memmove(c->ref, c->ref + 1, (size_t)c->nref * sizeof(c->ref[0]));
	}
}

/* Frame 0 must be the return address of a direct call to
 * pg_unwind_backtrace: e8 rel32 just before it, aimed at it. */
static int calls_pg(uintptr_t ra)
{
	const uint8_t *p = (const uint8_t *)ra - 5;
	int32_t rel;

	if (ra < 4096 || p[0] != 0xe8)
		return 0;
	memcpy(&rel, p + 1, 4);
	return ra + (uintptr_t)(intptr_t)rel == (uintptr_t)&pg_unwind_backtrace;
}

static const char *name_of(uintptr_t a, char *buf, size_t len)
{
	Dl_info di;

	if (dladdr((void *)a, &di) && di.dli_fname) {
		const char *b = strrchr(di.dli_fname, '/');

		snprintf(buf, len, "%s!%s", b ? b + 1 : di.dli_fname,
			 di.dli_sname ? di.dli_sname : "?");
	} else {
		snprintf(buf, len, "?");
	}
	return buf;
}

static void print_diff(const struct cap *c)
{
	char a[128], b[128];
	int rows = c->ngot > c->nref ? c->ngot : c->nref;

	for (int i = 0; i < rows; i++)
		fprintf(stderr, "  %2d %#14lx %-32s %s %#14lx %s\n", i,
			i < c->nref ? (unsigned long)(uintptr_t)c->ref[i] : 0ul,
			i < c->nref ? name_of((uintptr_t)c->ref[i], a, sizeof(a)) : "-",
			i < c->ngot && i < c->nref && i && c->got[i] == (uintptr_t)c->ref[i] ? "=="
											     : "!=",
			i < c->ngot ? (unsigned long)c->got[i] : 0ul,
			i < c->ngot ? name_of(c->got[i], b, sizeof(b)) : "-");
}

/* 0 if the capture is the reference, truncated to max. */
static int cap_differs(const struct cap *c)
{
	int want = c->nref < c->max ? c->nref : c->max;

	if (c->nref >= REF_MAX || c->ngot != want || !calls_pg(c->got[0]))
		return 1;
	for (int i = 1; i < want; i++)
		if (c->got[i] != (uintptr_t)c->ref[i])
			return 1;
	return 0;
}

static void check_cap(const struct cap *c)
{
	if (cap_differs(c)) {
		fprintf(stderr, "max %d: reference (backtrace) | pg_unwind_backtrace\n", c->max);
		print_diff(c);
	}
	assert_false(cap_differs(c));
}

/* ---- chains ------------------------------------------------------------- */

/* rbp overwritten below a frame-pointer caller: the walk must take the
 * caller's rbp back from where the CFI says it was saved. */
#define CLOBBER_RBP __asm__ volatile("movq $0x5a5a5a5a, %%rbp" ::: "rbp")
#define NOTHING \
	do {    \
	} while (0)

#define CHAIN_FN(pfx, ATTR, n, callee, PRE)       \
	ATTR static int pfx##_f##n(struct cap *c) \
	{                                         \
		PRE;                              \
		return callee(c) + n + 1;         \
	}

FP static int fp_leaf(struct cap *c)
{
	CAPTURE_BOTH(c);
	return c->ngot;
}

NOFP static int nofp_leaf(struct cap *c)
{
	CAPTURE_BOTH(c);
	return c->ngot;
}

NOFP static int mix_leaf(struct cap *c)
{
	CLOBBER_RBP;
	CAPTURE_BOTH(c);
	return c->ngot;
}

CHAIN_FN(fp, FP, 0, fp_leaf, NOTHING)
CHAIN_FN(fp, FP, 1, fp_f0, NOTHING)
CHAIN_FN(fp, FP, 2, fp_f1, NOTHING)
CHAIN_FN(fp, FP, 3, fp_f2, NOTHING)
CHAIN_FN(fp, FP, 4, fp_f3, NOTHING)
CHAIN_FN(fp, FP, 5, fp_f4, NOTHING)
CHAIN_FN(fp, FP, 6, fp_f5, NOTHING)
CHAIN_FN(fp, FP, 7, fp_f6, NOTHING)
CHAIN_FN(fp, FP, 8, fp_f7, NOTHING)
CHAIN_FN(fp, FP, 9, fp_f8, NOTHING)
CHAIN_FN(fp, FP, 10, fp_f9, NOTHING)
CHAIN_FN(fp, FP, 11, fp_f10, NOTHING)

CHAIN_FN(nofp, NOFP, 0, nofp_leaf, NOTHING)
CHAIN_FN(nofp, NOFP, 1, nofp_f0, NOTHING)
CHAIN_FN(nofp, NOFP, 2, nofp_f1, NOTHING)
CHAIN_FN(nofp, NOFP, 3, nofp_f2, NOTHING)
CHAIN_FN(nofp, NOFP, 4, nofp_f3, NOTHING)
CHAIN_FN(nofp, NOFP, 5, nofp_f4, NOTHING)
CHAIN_FN(nofp, NOFP, 6, nofp_f5, NOTHING)
CHAIN_FN(nofp, NOFP, 7, nofp_f6, NOTHING)
CHAIN_FN(nofp, NOFP, 8, nofp_f7, NOTHING)
CHAIN_FN(nofp, NOFP, 9, nofp_f8, NOTHING)
CHAIN_FN(nofp, NOFP, 10, nofp_f9, NOTHING)
CHAIN_FN(nofp, NOFP, 11, nofp_f10, NOTHING)

/* Alternating: frame-pointer functions over ones that reuse rbp. */
CHAIN_FN(mix, FP, 0, mix_leaf, NOTHING)
CHAIN_FN(mix, NOFP, 1, mix_f0, CLOBBER_RBP)
CHAIN_FN(mix, FP, 2, mix_f1, NOTHING)
CHAIN_FN(mix, NOFP, 3, mix_f2, NOTHING)
CHAIN_FN(mix, FP, 4, mix_f3, NOTHING)
CHAIN_FN(mix, NOFP, 5, mix_f4, CLOBBER_RBP)
CHAIN_FN(mix, NOFP, 6, mix_f5, NOTHING)
CHAIN_FN(mix, FP, 7, mix_f6, NOTHING)
CHAIN_FN(mix, NOFP, 8, mix_f7, CLOBBER_RBP)
CHAIN_FN(mix, FP, 9, mix_f8, NOTHING)
CHAIN_FN(mix, NOFP, 10, mix_f9, NOTHING)
CHAIN_FN(mix, FP, 11, mix_f10, NOTHING)

enum { CHAIN_FP, CHAIN_NOFP, CHAIN_MIX, NCHAIN };

static int run_chain(int chain, struct cap *c)
{
	switch (chain) {
	case CHAIN_FP: return fp_f11(c);
	case CHAIN_NOFP: return nofp_f11(c);
	default: return mix_f11(c);
	}
}

static void chain_case(int chain)
{
	static const int maxes[] = { 64, 16, 1, 5, REF_MAX };

	for (size_t i = 0; i < sizeof(maxes) / sizeof(maxes[0]); i++) {
		struct cap c = { .max = maxes[i] };

		run_chain(chain, &c);
		/* 12 chain functions + leaf + this test + cmocka + main ... */
		assert_true(c.nref > 16);
		check_cap(&c);
	}
}

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

/* ---- tests -------------------------------------------------------------- */

/* First in the group: the cache is cold, every lookup takes the slow path. */
static void test_unwind_no_descriptor(void **state)
{
	long before = count_fds();

	(void)state;
	assert_true(before > 0);
	pg_unwind_init();
	pg_unwind_init();
	for (int ch = 0; ch < NCHAIN; ch++)
		chain_case(ch);
	assert_int_equal(count_fds(), before);
}

static void test_unwind_fp_chain(void **state)
{
	(void)state;
	chain_case(CHAIN_FP);
}

static void test_unwind_nofp_chain(void **state)
{
	(void)state;
	chain_case(CHAIN_NOFP);
}

static void test_unwind_mixed_chain(void **state)
{
	(void)state;
	chain_case(CHAIN_MIX);
}

static void test_unwind_depth_limits(void **state)
{
	struct cap c = { .max = 64 };
	uintptr_t out[4] = { 7, 7, 7, 7 };

	(void)state;
	run_chain(CHAIN_NOFP, &c);
	assert_true(c.nref < 64);
	check_cap(&c);
	c.max = 1;
	run_chain(CHAIN_NOFP, &c);
	assert_int_equal(c.ngot, 1);
	check_cap(&c);
	c.max = 16;
	run_chain(CHAIN_MIX, &c);
	assert_int_equal(c.ngot, 16);
	check_cap(&c);
	assert_int_equal(pg_unwind_backtrace(out, 0), 0);
	assert_int_equal(pg_unwind_backtrace(out, -1), 0);
	assert_int_equal(out[0], 7);
	assert_int_equal(pg_unwind_backtrace(out, 2), 2);
	assert_int_equal(out[2], 7);
}

/* Cache hits give what the first, slow, capture gave. */
static void test_unwind_repeated(void **state)
{
	struct cap first, c;

	(void)state;
	for (int ch = 0; ch < NCHAIN; ch++) {
		/* One call site for all, the first capture included. */
		for (int i = 0; i < 500; i++) {
			memset(&c, 0, sizeof(c));
			c.max = 64;
			run_chain(ch, &c);
			if (i == 0) {
				check_cap(&c);
				first = c;
			}
			assert_int_equal(c.ngot, first.ngot);
			assert_memory_equal(c.got, first.got, (size_t)c.ngot * sizeof(uintptr_t));
		}
	}
}

/* Through libc: glibc's qsort (msort, recursive) calls back into us. */
static struct cap qs_cap;
static int qs_bad, qs_calls;

NOFP static int qs_cmp(const void *a, const void *b)
{
	int x = *(const int *)a, y = *(const int *)b;

	memset(&qs_cap, 0, sizeof(qs_cap));
	qs_cap.max = 64;
	CAPTURE_BOTH(&qs_cap);
	qs_calls++;
	if (cap_differs(&qs_cap) && !qs_bad++) {
		fprintf(stderr, "qsort comparator:\n");
		print_diff(&qs_cap);
	}
	return (x > y) - (x < y);
}

NOFP static int qs_run(struct cap *c)
{
	int v[40];

	for (int i = 0; i < 40; i++)
		v[i] = (i * 7919) % 40;
	qsort(v, 40, sizeof(v[0]), qs_cmp);
	return v[0] + c->max;
}

FP static int phdr_cb(struct dl_phdr_info *info, size_t size, void *arg)
{
	struct cap *c = arg;

	(void)info;
	(void)size;
	CAPTURE_BOTH(c);
	return 1;
}

static void test_unwind_through_libc(void **state)
{
	struct cap c = { .max = 64 };

	(void)state;
	qs_run(&c);
	assert_true(qs_calls > 40);
	assert_int_equal(qs_bad, 0);
	/* dl_iterate_phdr holds the loader's lock while calling back. */
	dl_iterate_phdr(phdr_cb, &c);
	check_cap(&c);
}

/* A call to a noreturn function ends its caller: the return address is
 * past the caller's last byte, so the rule is looked up at pc - 1. */
static jmp_buf nr_jmp;

NOFP __attribute__((noreturn)) static void nr_leaf(struct cap *c)
{
	CAPTURE_BOTH(c);
	longjmp(nr_jmp, 1);
}

NOFP static void nr_caller(struct cap *c)
{
	volatile char pad[40];

	pad[0] = (char)c->max;
	(void)pad[0];
	nr_leaf(c);
}

static void test_unwind_noreturn_call(void **state)
{
	static struct cap c = { .max = 64 };

	(void)state;
	if (!setjmp(nr_jmp))
		nr_caller(&c);
	check_cap(&c);
}

/* Threads: each its own depth, all at once; every capture must match the
 * reference taken in the same thread at the same moment. */
#define NTHREADS 4

struct thr {
	pthread_barrier_t *bar;
	int depth, captures, bad;
	struct cap c;
};

NOFP static int thr_rec(struct thr *t, int n)
{
	int r;

	if (n <= 0)
		return run_chain(t->depth % NCHAIN, &t->c);
	r = thr_rec(t, n - 1);
	/* Keeps the recursion: GCC turns "f(n - 1) + 1" into a loop. */
	__asm__ volatile("" : "+r"(r));
	return r + 1;
}

static void *thr_main(void *arg)
{
	struct thr *t = arg;

	pthread_barrier_wait(t->bar);
	for (int i = 0; i < 300; i++) {
		memset(&t->c, 0, sizeof(t->c));
		t->c.max = 64;
		thr_rec(t, t->depth);
		t->captures++;
		if (cap_differs(&t->c) && !t->bad++) {
			fprintf(stderr, "thread depth %d:\n", t->depth);
			print_diff(&t->c);
		}
	}
	return NULL;
}

static void test_unwind_threads(void **state)
{
	pthread_barrier_t bar;
	pthread_t tid[NTHREADS];
	struct thr t[NTHREADS];

	(void)state;
	pthread_barrier_init(&bar, NULL, NTHREADS);
	for (int i = 0; i < NTHREADS; i++) {
		memset(&t[i], 0, sizeof(t[i]));
		t[i].bar = &bar;
		t[i].depth = 3 + 5 * i;
		assert_int_equal(pthread_create(&tid[i], NULL, thr_main, &t[i]), 0);
	}
	for (int i = 0; i < NTHREADS; i++) {
		pthread_join(tid[i], NULL);
		assert_int_equal(t[i].captures, 300);
		assert_int_equal(t[i].bad, 0);
		/* clone3 ends a thread's stack: depth + 12 + leaf + ... */
		assert_true(t[i].c.ngot > t[i].depth + 14);
	}
	pthread_barrier_destroy(&bar);
}

/* A signal frame ends the walk: the handler's frames, then the
 * sa_restorer (glibc's __restore_rt: mov $15,%rax; syscall) as the last. */
static struct cap sig_cap;

NOFP static void sig_handler(int sig)
{
	(void)sig;
	sig_cap.max = 64;
	CAPTURE_BOTH(&sig_cap);
}

static void test_unwind_signal_frame(void **state)
{
	static const uint8_t restore_rt[] = {
		0x48, 0xc7, 0xc0, 0x0f, 0x00, 0x00, 0x00, 0x0f, 0x05
	};
	struct sigaction sa, old;
	struct cap *c = &sig_cap;

	(void)state;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = sig_handler;
	sigemptyset(&sa.sa_mask);
	assert_int_equal(sigaction(SIGUSR1, &sa, &old), 0);
	raise(SIGUSR1);
	sigaction(SIGUSR1, &old, NULL);
	assert_true(c->ngot >= 2);
	assert_true(c->nref > c->ngot);
	assert_true(calls_pg(c->got[0]));
	for (int i = 1; i < c->ngot; i++)
		assert_int_equal(c->got[i], (uintptr_t)c->ref[i]);
	assert_memory_equal((const void *)c->got[c->ngot - 1], restore_rt, sizeof(restore_rt));
}

/* Code without CFI (as a JIT makes) ends the walk at its return address,
 * where libgcc ends too:  sub $8,%rsp; call *%rsi; add $8,%rsp; ret */
NOFP static int jit_leaf(struct cap *c)
{
	CAPTURE_BOTH(c);
	return c->ngot;
}

static void test_unwind_no_cfi(void **state)
{
	static const uint8_t code[] = { 0x48, 0x83, 0xec, 0x08, 0xff, 0xd6,
					0x48, 0x83, 0xc4, 0x08, 0xc3 };
	int (*jit)(struct cap *, int (*)(struct cap *));
	struct cap c = { .max = 64 };
	void *page;

	(void)state;
	page = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	assert_true(page != MAP_FAILED);
	memcpy(page, code, sizeof(code));
	assert_int_equal(mprotect(page, 4096, PROT_READ | PROT_EXEC), 0);
	*(void **)&jit = page;
	jit(&c, jit_leaf);
	check_cap(&c);
	assert_int_equal(c.ngot, 2);
	assert_int_equal(c.got[1], (uintptr_t)page + 6);
	munmap(page, 4096);
}

/* A realigned frame with a dynamic realignment pointer (DRAP): its CFA is a
 * DWARF expression, which we do not follow; libgcc does. The frames up to it
 * are right and the walk ends there. The prologue and CFI are GCC's (-O2,
 * a 64-byte aligned local and a stack argument), in asm so that they stay
 * so: rdi = cap, rsi = the function to call with it. */
int drap_call(struct cap *c, int (*fn)(struct cap *));
__asm__(".pushsection .text\n"
	".type drap_call, @function\n"
	"drap_call:\n"
	".cfi_startproc\n"
	"\tleaq 8(%rsp), %r10\n"
	"\t.cfi_def_cfa 10, 0\n"
	"\tandq $-64, %rsp\n"
	"\tpushq -8(%r10)\n"
	"\tpushq %rbp\n"
	"\tmovq %rsp, %rbp\n"
	/* DW_CFA_expression rbp: DW_OP_breg6 0 */
	"\t.cfi_escape 0x10,0x6,0x2,0x76,0\n"
	"\tpushq %r10\n"
	/* DW_CFA_def_cfa_expression: DW_OP_breg6 -8; DW_OP_deref */
	"\t.cfi_escape 0xf,0x3,0x76,0x78,0x6\n"
	"\tsubq $8, %rsp\n"
	"\tcall *%rsi\n"
	"\tmovq -8(%rbp), %r10\n"
	"\t.cfi_def_cfa 10, 0\n"
	"\tleave\n"
	"\tleaq -8(%r10), %rsp\n"
	"\t.cfi_def_cfa 7, 8\n"
	"\tret\n"
	".cfi_endproc\n"
	".size drap_call, .-drap_call\n"
	".popsection\n");

NOFP static int drap_leaf(struct cap *c)
{
	CAPTURE_BOTH(c);
	return c->ngot;
}

static void test_unwind_drap_stops(void **state)
{
	struct cap c = { .max = 64 };

	(void)state;
	drap_call(&c, drap_leaf);
	/* libgcc went on through it */
	assert_true(c.nref > 4);
	assert_int_equal(c.ngot, 2);
	assert_true(calls_pg(c.got[0]));
	assert_int_equal(c.got[1], (uintptr_t)c.ref[1]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_unwind_no_descriptor),
		cmocka_unit_test(test_unwind_threads),
		cmocka_unit_test(test_unwind_fp_chain),
		cmocka_unit_test(test_unwind_nofp_chain),
		cmocka_unit_test(test_unwind_mixed_chain),
		cmocka_unit_test(test_unwind_depth_limits),
		cmocka_unit_test(test_unwind_repeated),
		cmocka_unit_test(test_unwind_through_libc),
		cmocka_unit_test(test_unwind_noreturn_call),
		cmocka_unit_test(test_unwind_signal_frame),
		cmocka_unit_test(test_unwind_no_cfi),
		cmocka_unit_test(test_unwind_drap_stops),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
