/* Every lock of the library, in one list, in the order that fork's prepare
 * handler takes them (socket_wrapper's "add new global locks here"): a lock
 * not in this list does not exist. They are futex words, statically
 * initialised (calls may come before any constructor), never held across a
 * system call of the program's or a wait on anything of the program's.
 *
 * A thread knows which it holds (thread-local bits, set before it tries):
 * a signal handler that interrupted this thread inside the library and
 * needs a lock this thread holds gets -EDEADLK at once, never a deadlock;
 * one held by another thread is waited for, but only up to a bound. Callers
 * on a program's thread then pass the call through unrecorded and count it
 * (totals.lost). */
#ifndef PG_LOCKS_H
#define PG_LOCKS_H

#define PG_SHARDS 64 /* registry shards: descriptor number % PG_SHARDS */

enum pg_lock_id {
	/* Registry shards first, in order: holding them all is the freeze
	 * (a report's cut, and fork's). */
	PG_LOCK_SHARD0 = 0,
	PG_LOCK_SITES = PG_SHARDS, /* call sites (shim/sites.c) */
	PG_LOCK_ARENA, /* memory (shim/arena.c) */
	PG_LOCK_EVENTS, /* the event queue (shim/events.c) */
	PG_LOCK_ACTION, /* the report signal's action (shim/signals.c) */
	PG_LOCK_THREAD, /* starting the library's thread (shim/reporter.c) */
	PG_LOCK_POOL, /* pool slots (shim/enforce.c) */
	PG_LOCK_DESTS, /* churn per destination (shim/enforce.c) */
	PG_LOCK_SEEN, /* policy events already said (shim/enforce.c) */
	PG_LOCK_DLOPEN, /* around our calls that take the loader's locks */
	PG_LOCK_COUNT
};

/* How long a program's thread waits for a lock another thread holds before
 * it gives up on recording the call: far longer than any holder keeps one
 * (a freeze copies 20,000 records in about a millisecond). */
#define PG_LOCK_BOUND_MS 500

#include <errno.h>
#include <stddef.h>
#include <stdint.h>

/* The lock words (0 free, 1 held, 2 held with waiters), the bits of the
 * locks this thread holds or is taking, and whether helgrind is told. */
extern int pg_lock_words[PG_LOCK_COUNT];
extern __thread uint64_t pg_lock_held[(PG_LOCK_COUNT + 63) / 64]
    __attribute__((tls_model("initial-exec")));
extern int pg_lock_hg;
int pg_lock_take_slow(int id, int bound_ms);
void pg_lock_give_slow(int id, int w);
void pg_lock_hg_acquired(int id);

/* For helgrind (no-ops elsewhere), which knows locks but not atomics:
 * memory only ever accessed with __atomic builtins, or published by a
 * release store and read after an acquire load, is not checked
 * (ThreadSanitizer, which reads atomics, checks that code in the unit
 * tests); before/after tell it of a hand-over it cannot see (a semaphore
 * waited for with a timeout). */
void pg_hg_atomic(const volatile void *p, size_t len);
void pg_hg_before(const volatile void *p);
void pg_hg_after(const volatile void *p);

static inline int pg_lock_held_here(int id)
{
	return (pg_lock_held[id >> 6] >> (id & 63)) & 1;
}

/* 0 when taken; -EDEADLK when this thread holds it already (or is taking
 * it: a signal handler on top of us), -ETIMEDOUT after bound_ms (< 0: no
 * bound). The bit is set before the attempt: a handler that interrupts us
 * between our compare-and-swap and the bit must not wait for a lock we
 * hold. */
static inline int pg_lock_take(int id, int bound_ms)
{
	uint64_t bit = 1ull << (id & 63), *h = &pg_lock_held[id >> 6];
	int c = 0;

	if (__builtin_expect((*h & bit) != 0, 0))
		return -EDEADLK;
	*h |= bit;
	if (__builtin_expect(__atomic_compare_exchange_n(&pg_lock_words[id], &c, 1, 0,
							 __ATOMIC_ACQUIRE, __ATOMIC_RELAXED),
			     1)) {
		if (__builtin_expect(pg_lock_hg, 0))
			pg_lock_hg_acquired(id);
		return 0;
	}
	return pg_lock_take_slow(id, bound_ms);
}

static inline void pg_lock_give(int id)
{
	int w = pg_lock_hg ? -1 : __atomic_exchange_n(&pg_lock_words[id], 0, __ATOMIC_RELEASE);

	if (__builtin_expect(w != 1, 0))
		pg_lock_give_slow(id, w);
	pg_lock_held[id >> 6] &= ~(1ull << (id & 63));
}

/* At load: whether to tell helgrind. */
void pg_locks_init(void);

/* Locks [first, last] in order, each without bound: the freeze. */
void pg_lock_take_range(int first, int last);
void pg_lock_give_range(int first, int last);

/* fork: prepare takes every lock in the list's order, parent gives them
 * back, child finds them all held by itself and frees them. */
void pg_locks_fork_prepare(void);
void pg_locks_fork_parent(void);
void pg_locks_fork_child(void);

/* A futex condition: wait (lock id held, given up while waiting, taken
 * again) up to timeout_ms for pg_cond_wake on seq. Returns 0, or the
 * lock_take error after waking. */
int pg_cond_wait(unsigned *seq, int id, int timeout_ms);
void pg_cond_wake(unsigned *seq);

#endif
