/* The lock list (shim/locks.h): futex locks with the thread's own bits. */
#include "shim/locks.h"

#include "shim/common.h"

#include <errno.h>
#include <linux/futex.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <time.h>

/* Under helgrind, our locks are told to it as locks (client requests: a
 * few instructions, and only when running on valgrind). */
#if defined(__has_include)
#if __has_include(<valgrind/helgrind.h>)
#include <valgrind/helgrind.h>
#define PG_HG 1
#endif
#endif
#ifdef PG_HG
#include <stdlib.h>
#include <string.h>
static int on_valgrind = -1;
/* Only under valgrind's thread checkers (their preload is named so): the
 * requests would be counted by callgrind too. */
static inline int pg_hg(void)
{
	if (PG_UNLIKELY(on_valgrind < 0)) {
		const char *p = getenv("LD_PRELOAD");
		on_valgrind = RUNNING_ON_VALGRIND && p &&
			      (strstr(p, "vgpreload_helgrind") || strstr(p, "vgpreload_drd"));
	}
	return on_valgrind;
}
#define PG_HG_ACQUIRED(w)                               \
	do {                                            \
		if (PG_UNLIKELY(pg_hg()))               \
			ANNOTATE_RWLOCK_ACQUIRED(w, 1); \
	} while (0)
#define PG_HG_RELEASED(w)                               \
	do {                                            \
		if (PG_UNLIKELY(pg_hg()))               \
			ANNOTATE_RWLOCK_RELEASED(w, 1); \
	} while (0)
#else
#define PG_HG_ACQUIRED(w) ((void)0)
#define PG_HG_RELEASED(w) ((void)0)
#endif

int pg_lock_words[PG_LOCK_COUNT];
__thread uint64_t pg_lock_held[(PG_LOCK_COUNT + 63) / 64]
    __attribute__((tls_model("initial-exec")));
int pg_lock_hg;

void pg_locks_init(void)
{
#ifdef PG_HG
	pg_lock_hg = pg_hg();
#endif
}

static long futex(int *w, int op, int val, const struct timespec *ts)
{
	return pg_raw_syscall(SYS_futex, (long)w, op | FUTEX_PRIVATE_FLAG, val, (long)ts, 0, 0);
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The fast path failed (or helgrind watches): the bit is set. */
int pg_lock_take_slow(int id, int bound_ms)
{
	int *w = &pg_lock_words[id], c = 0;
	int64_t end = 0;

	if (__atomic_compare_exchange_n(w, &c, 1, 0, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED)) {
		PG_HG_ACQUIRED(w);
		return 0;
	}
	for (int i = 0; i < 100; i++) {
		__builtin_ia32_pause();
		c = 0;
		if (__atomic_load_n(w, __ATOMIC_RELAXED) == 0 &&
		    __atomic_compare_exchange_n(w, &c, 1, 0, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED)) {
			PG_HG_ACQUIRED(w);
			return 0;
		}
	}
	if (bound_ms >= 0)
		end = now_ms() + bound_ms;
	while (__atomic_exchange_n(w, 2, __ATOMIC_ACQUIRE) != 0) {
		struct timespec ts = { 0, 20 * 1000000 }; /* re-check the bound */
		if (bound_ms >= 0 && now_ms() >= end) {
			pg_lock_held[id >> 6] &= ~(1ull << (id & 63));
			return -ETIMEDOUT;
		}
		futex(w, FUTEX_WAIT, 2, &ts);
	}
	PG_HG_ACQUIRED(w);
	return 0;
}

void pg_hg_atomic(const volatile void *p, size_t len)
{
#ifdef PG_HG
	if (PG_UNLIKELY(pg_hg()))
		VALGRIND_HG_DISABLE_CHECKING(p, len);
#endif
	(void)p;
	(void)len;
}

void pg_hg_before(const volatile void *p)
{
#ifdef PG_HG
	if (PG_UNLIKELY(pg_hg()))
		ANNOTATE_HAPPENS_BEFORE(p);
#endif
	(void)p;
}

void pg_hg_after(const volatile void *p)
{
#ifdef PG_HG
	if (PG_UNLIKELY(pg_hg()))
		ANNOTATE_HAPPENS_AFTER(p);
#endif
	(void)p;
}

void pg_lock_hg_acquired(int id)
{
	PG_HG_ACQUIRED(&pg_lock_words[id]);
	(void)id;
}

/* w: what the exchange found (2: waiters to wake), or -1: not done yet
 * (helgrind watches). */
void pg_lock_give_slow(int id, int w)
{
	if (w < 0) {
		PG_HG_RELEASED(&pg_lock_words[id]);
		w = __atomic_exchange_n(&pg_lock_words[id], 0, __ATOMIC_RELEASE);
	}
	if (w == 2)
		futex(&pg_lock_words[id], FUTEX_WAKE, 1, NULL);
}

void pg_lock_take_range(int first, int last)
{
	for (int id = first; id <= last; id++)
		pg_lock_take(id, -1);
}

void pg_lock_give_range(int first, int last)
{
	for (int id = last; id >= first; id--)
		pg_lock_give(id);
}

void pg_locks_fork_prepare(void)
{
	pg_lock_take_range(0, PG_LOCK_COUNT - 1);
}

void pg_locks_fork_parent(void)
{
	pg_lock_give_range(0, PG_LOCK_COUNT - 1);
}

void pg_locks_fork_child(void)
{
	/* The forking thread, the child's only one, holds them all: no
	 * waiter exists to wake. */
	for (int id = 0; id < PG_LOCK_COUNT; id++)
		__atomic_store_n(&pg_lock_words[id], 0, __ATOMIC_RELEASE);
	for (size_t i = 0; i < sizeof(pg_lock_held) / sizeof(pg_lock_held[0]); i++)
		pg_lock_held[i] = 0;
}

int pg_cond_wait(unsigned *seq, int id, int timeout_ms)
{
	unsigned s = __atomic_load_n(seq, __ATOMIC_ACQUIRE);
	struct timespec ts = { timeout_ms / 1000, (long)(timeout_ms % 1000) * 1000000 };

	pg_lock_give(id);
	futex((int *)seq, FUTEX_WAIT, (int)s, &ts);
	return pg_lock_take(id, PG_LOCK_BOUND_MS);
}

void pg_cond_wake(unsigned *seq)
{
	__atomic_add_fetch(seq, 1, __ATOMIC_RELEASE);
	futex((int *)seq, FUTEX_WAKE, 0x7fffffff, NULL);
}
