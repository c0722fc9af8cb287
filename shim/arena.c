#include "shim/arena.h"

#include "shim/common.h"
#include "shim/locks.h"

#include <stdint.h>
#include <string.h>
#include <sys/mman.h>

#define PG_ARENA_MIN_SHIFT 4 /* 16 B */
#define PG_ARENA_MAX_SHIFT 16 /* 64 KiB */
#define PG_ARENA_CLASSES (PG_ARENA_MAX_SHIFT - PG_ARENA_MIN_SHIFT + 1)
#define PG_ARENA_CHUNK ((size_t)1 << 20)

struct pg_free {
	struct pg_free *next;
};

static struct pg_free *free_list[PG_ARENA_CLASSES];
static char *chunk_next, *chunk_end;
static size_t in_use, mapped;
unsigned pg_arena_fault_every;
static unsigned fault_count;

void pg_arena_set_fault(unsigned every)
{
	pg_arena_fault_every = every;
}

int pg_arena_fault_slow(void)
{
	return !pg_alloc_no_fault &&
	       __atomic_add_fetch(&fault_count, 1, __ATOMIC_RELAXED) % pg_arena_fault_every == 0;
}

static int class_of(size_t size)
{
	int c = 0;

	while (((size_t)1 << (c + PG_ARENA_MIN_SHIFT)) < size)
		c++;
	return c;
}

static void *map(size_t size)
{
	void *p = (void *)pg_raw_syscall(SYS_mmap, 0, (long)size, PROT_READ | PROT_WRITE,
					 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if ((uintptr_t)p >= (uintptr_t)-4095)
		return NULL;
	__atomic_add_fetch(&mapped, size, __ATOMIC_RELAXED);
	return p;
}

void *pg_arena_alloc(size_t size)
{
	size_t csize;
	void *p = NULL;
	int c;

	if (size == 0)
		size = 1;
	if (size > ((size_t)1 << PG_ARENA_MAX_SHIFT)) {
		size = (size + 4095) & ~(size_t)4095;
		p = map(size);
		if (p)
			__atomic_add_fetch(&in_use, size, __ATOMIC_RELAXED);
		return p;
	}
	c = class_of(size);
	csize = (size_t)1 << (c + PG_ARENA_MIN_SHIFT);
	if (pg_lock_take(PG_LOCK_ARENA, PG_LOCK_BOUND_MS) < 0)
		return NULL;
	if (free_list[c]) {
		p = free_list[c];
		free_list[c] = free_list[c]->next;
	} else {
		if ((size_t)(chunk_end - chunk_next) < csize) {
			/* The rest of the chunk is left unused: at most 64 KiB
			 * of a 1 MiB chunk. */
			char *n = map(PG_ARENA_CHUNK);
			if (n) {
				chunk_next = n;
				chunk_end = n + PG_ARENA_CHUNK;
			}
		}
		if ((size_t)(chunk_end - chunk_next) >= csize) {
			p = chunk_next;
			chunk_next += csize;
		}
	}
	if (p)
		__atomic_add_fetch(&in_use, csize, __ATOMIC_RELAXED);
	pg_lock_give(PG_LOCK_ARENA);
	return p;
}

void *pg_arena_calloc(size_t size)
{
	void *p = pg_arena_alloc(size);

	if (p)
		memset(p, 0, size);
	return p;
}

void pg_arena_free(void *p, size_t size)
{
	int c;

	if (!p)
		return;
	if (size == 0)
		size = 1;
	if (size > ((size_t)1 << PG_ARENA_MAX_SHIFT)) {
		size = (size + 4095) & ~(size_t)4095;
		pg_raw_syscall(SYS_munmap, (long)p, (long)size, 0, 0, 0, 0);
		__atomic_sub_fetch(&in_use, size, __ATOMIC_RELAXED);
		__atomic_sub_fetch(&mapped, size, __ATOMIC_RELAXED);
		return;
	}
	c = class_of(size);
	/* A free that cannot take the lock leaks the block: never a wait. */
	if (pg_lock_take(PG_LOCK_ARENA, PG_LOCK_BOUND_MS) < 0)
		return;
	((struct pg_free *)p)->next = free_list[c];
	free_list[c] = p;
	__atomic_sub_fetch(&in_use, (size_t)1 << (c + PG_ARENA_MIN_SHIFT), __ATOMIC_RELAXED);
	pg_lock_give(PG_LOCK_ARENA);
}

size_t pg_arena_in_use(void)
{
	return __atomic_load_n(&in_use, __ATOMIC_RELAXED);
}

size_t pg_arena_mapped(void)
{
	return __atomic_load_n(&mapped, __ATOMIC_RELAXED);
}
