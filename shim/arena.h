/* The library's memory, never from malloc: a program may call socket() and
 * close() from a signal handler that interrupted malloc, and the exit
 * report must come out when malloc has nothing left. Anonymous mmap, carved
 * in size classes (16 B to 64 KiB, each with its free list), larger blocks
 * mapped on their own. Small blocks are never unmapped: memory stays of its
 * type, so a stale pointer reads a record, never a fault. */
#ifndef PG_ARENA_H
#define PG_ARENA_H

#include <stddef.h>

/* NULL when out of memory, or when the arena lock cannot be had (a signal
 * handler that interrupted an allocation of this thread; see locks.h). */
void *pg_arena_alloc(size_t size);
void *pg_arena_calloc(size_t size);
/* size as given to pg_arena_alloc. NULL is fine. */
void pg_arena_free(void *p, size_t size);

/* Bytes in use by the library's objects (the benches' figure), and mapped
 * in all. */
size_t pg_arena_in_use(void);
size_t pg_arena_mapped(void);

/* Test hook (PORTGUARD_FAULT_ALLOC=N): every Nth record of the registry
 * cannot be had (pg_arena_fault_now, which the registry asks). */
void pg_arena_set_fault(unsigned every);
extern unsigned pg_arena_fault_every;
int pg_arena_fault_slow(void);
static inline int pg_arena_fault_now(void)
{
	return __builtin_expect(pg_arena_fault_every != 0, 0) && pg_arena_fault_slow();
}

#endif
