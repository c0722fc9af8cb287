#include "shim/events.h"

#include "shim/arena.h"
#include "shim/locks.h"

#include <errno.h>
#include <string.h>

#define PG_EVENTS_SLOTS 64

static struct pg_event *ring;
static unsigned head, tail; /* under PG_LOCK_EVENTS */
static uint64_t total, dropped;

static void copy(char *dst, const char *src, size_t size)
{
	size_t n = strnlen(src, size - 1);

	memcpy(dst, src, n);
	dst[n] = 0;
}

int pg_events_push(const char *text, const char *json, uint32_t site)
{
	struct pg_event *e;
	int rc = 0;

	__atomic_add_fetch(&total, 1, __ATOMIC_RELAXED);
	if (pg_lock_take(PG_LOCK_EVENTS, PG_LOCK_BOUND_MS) < 0) {
		__atomic_add_fetch(&dropped, 1, __ATOMIC_RELAXED);
		return -EAGAIN;
	}
	if (!ring)
		ring = pg_arena_alloc(PG_EVENTS_SLOTS * sizeof(*ring));
	if (!ring || tail - head == PG_EVENTS_SLOTS) {
		__atomic_add_fetch(&dropped, 1, __ATOMIC_RELAXED);
		rc = -ENOSPC;
	} else {
		e = &ring[tail++ % PG_EVENTS_SLOTS];
		e->site = site;
		copy(e->text, text, sizeof(e->text));
		copy(e->json, json, sizeof(e->json));
	}
	pg_lock_give(PG_LOCK_EVENTS);
	return rc;
}

int pg_events_pop(struct pg_event *out)
{
	int got = 0;

	if (pg_lock_take(PG_LOCK_EVENTS, PG_LOCK_BOUND_MS) < 0)
		return 0;
	if (ring && head != tail) {
		*out = ring[head++ % PG_EVENTS_SLOTS];
		got = 1;
	}
	pg_lock_give(PG_LOCK_EVENTS);
	return got;
}

int pg_events_pending(void)
{
	return __atomic_load_n(&tail, __ATOMIC_RELAXED) != __atomic_load_n(&head, __ATOMIC_RELAXED);
}

uint64_t pg_events_total(void)
{
	return __atomic_load_n(&total, __ATOMIC_RELAXED);
}

uint64_t pg_events_dropped(void)
{
	return __atomic_load_n(&dropped, __ATOMIC_RELAXED);
}

void pg_events_fork_child(void)
{
	head = tail = 0;
	total = dropped = 0;
}
