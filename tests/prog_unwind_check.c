/* Compares pg_unwind_backtrace() with glibc's backtrace() on real stacks.
 *
 *     prog_unwind_check          callbacks from inside libc (qsort_r, tsearch,
 *                                twalk, fopencookie through stdio, a printf
 *                                specifier through vfprintf, pthread_once,
 *                                dl_iterate_phdr, a thread, atexit); exit 1
 *                                on any difference
 *
 * Built with -DPG_UNWIND_PRELOAD -shared -fPIC, it is instead a preload
 * library that compares the two at every socket() call of the host program
 * and prints a summary at exit:
 *
 *     cc -std=gnu11 -O2 -D_GNU_SOURCE -DPG_UNWIND_PRELOAD -I. -shared -fPIC \
 *        -o /tmp/libunwind_check.so tests/prog_unwind_check.c -ldl -lpthread
 *     LD_PRELOAD=/tmp/libunwind_check.so python3 script.py
 *
 * Built from one source like every tests/prog_*.c: it takes the unwinder's
 * source in whole. */
#include "shim/unwind.c"

#include <dlfcn.h>
#include <errno.h>
#include <execinfo.h>
#include <pthread.h>
#include <printf.h>
#include <search.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CHECK_MAX 64
#define REF_MAX 128

static pthread_mutex_t check_lock = PTHREAD_MUTEX_INITIALIZER;
static unsigned long n_checks, n_equal, n_frames, n_max_depth;
static int n_printed;

static void print_frames(const char *where, void *const *ref, int nref, const uintptr_t *got,
			 int ngot)
{
	int rows = nref > ngot ? nref : ngot;

	fprintf(stderr, "prog_unwind_check: %s differs (backtrace | pg_unwind):\n", where);
	for (int i = 0; i < rows; i++) {
		Dl_info a, b;
		int ha = i < nref && dladdr(ref[i], &a);
		int hb = i < ngot && dladdr((void *)got[i], &b);

		fprintf(stderr, "  %2d %#14lx %-28s %s %#14lx %s\n", i,
			i < nref ? (unsigned long)(uintptr_t)ref[i] : 0ul,
			ha && a.dli_sname ? a.dli_sname : "?",
			i < nref && i < ngot && got[i] == (uintptr_t)ref[i] ? "==" : "!=",
			i < ngot ? (unsigned long)got[i] : 0ul,
			hb && b.dli_sname ? b.dli_sname : "?");
	}
}

/* Both captured here; [0] is a different call site in this function for
 * each, so the lists are compared from [1]: the caller of check(). */
static __attribute__((noinline)) int check(const char *where)
{
	void *ref[REF_MAX];
	uintptr_t got[CHECK_MAX];
	int nref, ngot, want, ok = 1, saved = errno;

	nref = backtrace(ref, REF_MAX);
	ngot = pg_unwind_backtrace(got, CHECK_MAX);
	want = nref < CHECK_MAX ? nref : CHECK_MAX;
	if (ngot != want)
		ok = 0;
	for (int i = 1; ok && i < want; i++)
		ok = got[i] == (uintptr_t)ref[i];
	pthread_mutex_lock(&check_lock);
	n_checks++;
	n_equal += ok;
	n_frames += (unsigned long)ngot;
	if ((unsigned long)nref > n_max_depth)
		n_max_depth = (unsigned long)nref;
	if (!ok && n_printed++ < 5)
		print_frames(where, ref, nref, got, ngot);
	pthread_mutex_unlock(&check_lock);
	errno = saved;
	return ok;
}

static void summary(void)
{
	fprintf(stderr,
		"prog_unwind_check: %lu checks, %lu equal, %lu differ; "
		"%lu frames compared, deepest reference stack %lu\n",
		n_checks, n_equal, n_checks - n_equal, n_frames, n_max_depth);
}

#ifdef PG_UNWIND_PRELOAD

int socket(int domain, int type, int protocol);

__attribute__((visibility("default"))) int socket(int domain, int type, int protocol)
{
	static int (*real)(int, int, int);

	if (!real)
		*(void **)&real = dlsym(RTLD_NEXT, "socket");
	check("socket()");
	return real(domain, type, protocol);
}

__attribute__((constructor)) static void init(void)
{
	pg_unwind_init();
}

__attribute__((destructor)) static void fini(void)
{
	summary();
}

#else /* the program */

static int cmp_r(const void *a, const void *b, void *arg)
{
	int x = *(const int *)a, y = *(const int *)b;

	(void)arg;
	check("qsort_r comparator");
	return (x > y) - (x < y);
}

static int cmp(const void *a, const void *b)
{
	int x = *(const int *)a, y = *(const int *)b;

	check("tsearch comparator");
	return (x > y) - (x < y);
}

static void walk(const void *node, VISIT v, int depth)
{
	(void)node;
	(void)depth;
	if (v == leaf || v == postorder)
		check("twalk action");
}

static ssize_t cookie_write(void *c, const char *buf, size_t size)
{
	(void)c;
	(void)buf;
	check("fopencookie write (fflush)");
	return (ssize_t)size;
}

static int pf_print(FILE *f, const struct printf_info *info, const void *const *args)
{
	(void)info;
	(void)args;
	check("printf specifier");
	return fprintf(f, "W");
}

static int pf_arginfo(const struct printf_info *info, size_t n, int *types, int *size)
{
	(void)info;
	(void)size;
	if (n > 0)
		types[0] = PA_INT;
	return 1;
}

static void once_fn(void)
{
	check("pthread_once");
}

static int phdr_cb(struct dl_phdr_info *info, size_t size, void *arg)
{
	(void)info;
	(void)size;
	(void)arg;
	check("dl_iterate_phdr callback");
	return 1;
}

static void *thread_fn(void *arg)
{
	(void)arg;
	check("thread start routine");
	return NULL;
}

static void at_exit(void)
{
	check("atexit handler");
	summary();
	if (n_equal != n_checks)
		_exit(1);
}

int main(void)
{
	int v[64], one = 1;
	void *root = NULL;
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	cookie_io_functions_t io = { .write = cookie_write };
	FILE *f;
	pthread_t t;

	pg_unwind_init();
	atexit(at_exit);
	for (int i = 0; i < 64; i++)
		v[i] = (i * 7919) % 64;
	qsort_r(v, 64, sizeof(v[0]), cmp_r, NULL);
	for (int i = 0; i < 64; i++)
		tsearch(&v[(i * 37) % 64], &root, cmp);
	twalk(root, walk);
	f = fopencookie(NULL, "w", io);
	if (f) {
		fputs("x", f);
		fflush(f);
		fclose(f);
	}
	register_printf_specifier('W', pf_print, pf_arginfo);
	f = fopen("/dev/null", "w");
	if (f) {
		/* GCC does not know %W: built at run time to keep -Wformat quiet */
		char fmt[4] = { '%', 'W', '\n', 0 };

		fprintf(f, fmt, one);
		fclose(f);
	}
	pthread_once(&once, once_fn);
	dl_iterate_phdr(phdr_cb, NULL);
	if (pthread_create(&t, NULL, thread_fn, NULL) == 0)
		pthread_join(t, NULL);
	return 0;
}

#endif
