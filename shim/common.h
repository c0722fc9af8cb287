/* Shared helpers of the shim: allocation that may fail on purpose, the
 * "inside the shim" guard, the clock. */
#ifndef PG_COMMON_H
#define PG_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <sys/syscall.h>

#define PG_HIDDEN __attribute__((visibility("hidden")))
#define PG_UNUSED __attribute__((unused))
#define PG_LIKELY(x) __builtin_expect(!!(x), 1)
#define PG_UNLIKELY(x) __builtin_expect(!!(x), 0)
#define PG_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
/* The functions every socket() and close() goes through: no stack canary
 * (they hold no buffer that input is copied into; measured: a few percent
 * of the pair), kept apart from cold code. */
#define PG_HOT __attribute__((hot, no_stack_protector))

/* Set while the shim runs on this thread: a wrapped call made meanwhile (our
 * own code, dlsym calling calloc, a signal handler that interrupted us) goes
 * straight to libc. initial-exec: no allocation on first access. */
extern __thread int pg_inside __attribute__((tls_model("initial-exec")));
/* Set for the life of the library's own thread: its calls of wrapped
 * functions (libdw closing its files) are not the program's. */
extern __thread int pg_library_thread __attribute__((tls_model("initial-exec")));

/* pg_inside for the rest of a scope, however it is left: a return, or the
 * unwinding of pthread_cancel (the shim is built with -fexceptions). */
static inline void pg_inside_leave(int *unused)
{
	(void)unused;
	pg_inside--;
}
#define PG_INSIDE_SCOPE \
	int pg_inside_scope_ __attribute__((cleanup(pg_inside_leave), unused)) = (pg_inside++, 0)

/* Library work that makes cancellation points (open, write) on a program's
 * thread: no pthread_cancel acts inside it, with our locks held. */
int pg_nocancel_begin(void);
void pg_nocancel_end(int old);

/* Set in a vfork child, which runs on its parent's memory and thread: what
 * it does must not land in the parent's registry. */
extern __thread int pg_vfork_child __attribute__((tls_model("initial-exec")));

/* malloc/free that count what they hold and can be made to fail every Nth
 * call (PORTGUARD_FAULT_ALLOC=N, for the tests of totals.lost). */
void *pg_alloc(size_t size);
void *pg_calloc(size_t n, size_t size);
void *pg_realloc(void *p, size_t size);
void pg_free(void *p);
void pg_alloc_set_fault(unsigned every);
/* Set while a report is written: injected failures spare the report, which
 * must still come out to count what was lost. */
extern __thread int pg_alloc_no_fault __attribute__((tls_model("initial-exec")));
size_t pg_alloc_bytes(void);
/* Counting the bytes held costs an atomic add on one shared line per
 * allocation and per free: on for the tests and benches that link the
 * archive, off in the preloaded library (its init turns it off). */
void pg_alloc_set_accounting(int on);

/* Monotonic nanoseconds (coarse clock on the hot path: ages are reported in ms). */
int64_t pg_now_ns(void);
int64_t pg_now_coarse_ns(void);

/* A whole small regular file (an option's suppressions or policy), NUL
 * terminated, in pg_alloc'd memory; NULL with *why set (a reason for a
 * message) when it cannot be read, is no regular file, or exceeds max. */
char *pg_read_file(const char *path, size_t max, size_t *len, const char **why);

/* 1 when the 8 bytes at p can be read, 0 when not (or unknown): the kernel
 * reads them for rt_sigprocmask with an invalid "how", which fails with
 * EINVAL after a good copy and EFAULT after a bad one, and changes nothing.
 * A raw system call: no errno, no libc, async-signal-safe. */
/* A system call without libc: no errno, no cancellation point, never
 * through our own syscall() wrapper. Returns the kernel's value (-errno on
 * failure). */
static inline long pg_raw_syscall(long nr, long a, long b, long c, long d, long e, long f)
{
#if defined(__x86_64__)
	long r;
	register long r10 __asm__("r10") = d;
	register long r8 __asm__("r8") = e;
	register long r9 __asm__("r9") = f;
	__asm__ volatile("syscall"
			 : "=a"(r)
			 : "0"(nr), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8), "r"(r9)
			 : "rcx", "r11", "memory");
	return r;
#else
	(void)nr, (void)a, (void)b, (void)c, (void)d, (void)e, (void)f;
	return -38; /* -ENOSYS */
#endif
}

static inline int pg_mem_readable8(const void *p)
{
	long r;

#if defined(__x86_64__)
	register long r10 __asm__("r10") = 8; /* sizeof the kernel's sigset */
	__asm__ volatile("syscall"
			 : "=a"(r)
			 : "0"(14L /* SYS_rt_sigprocmask */), "D"(-1L), "S"(p), "d"(0L), "r"(r10)
			 : "rcx", "r11", "memory");
#else
	(void)p;
	r = 0;
#endif
	return r == -22; /* -EINVAL */
}

/* The same for [p, p + n), n <= 4096: its first and last 8 bytes. */
static inline int pg_mem_readable(const void *p, size_t n)
{
	uintptr_t a = (uintptr_t)p;

	if (!p || n > 4096 || a + n < a)
		return 0;
	if (n < 8)
		return pg_mem_readable8(p);
	return pg_mem_readable8(p) && pg_mem_readable8((const char *)p + n - 8);
}

/* Async-signal-safe, errno-preserving write of a whole buffer. */
int pg_write_all(int fd, const char *buf, size_t len);

#endif
