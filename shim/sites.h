/* Call sites: each distinct stack stored once, deduplicated in uthash,
 * named by a small number (its id, 1, 2, ... in order of first sight; 0 is
 * "no stack"). Sites never change or go away, so an id is a stable name. A
 * thread finds the sites it used last without the lock. */
#ifndef PG_SITES_H
#define PG_SITES_H

#include <stdint.h>

#include "shim/hash.h"

#define PG_MAX_DEPTH 64

struct pg_pyframe;

struct pg_site {
	uint64_t hash;
	uint32_t id;
	uint32_t depth; /* C frames, frames[0 .. depth) */
	/* Python frames (shim/python.h), innermost first: their names, and
	 * after the C frames their code and instruction words, two each
	 * (what tells two Python call sites apart). */
	uint32_t npy;
	/* 1: a Python frame is a __del__ method (a close made here is a
	 * finalizer's: asyncio's "unclosed transport", a class's own). */
	uint32_t in_del;
	const struct pg_pyframe *py;
	uint64_t created; /* sockets and descriptors made here (atomic) */
	UT_hash_handle hh;
	uintptr_t frames[];
};

/* The id of the site with these frames (0 for depth 0, or when it cannot
 * be stored: out of memory, or the lock held by this very thread). */
uint32_t pg_sites_intern(const uintptr_t *frames, unsigned depth);
/* The same with Python frames (struct pg_pyraw, npy of them): their names
 * are resolved when the site is new, while the frames are alive. */
uint32_t pg_sites_intern_py(const uintptr_t *frames, unsigned depth, const void *py, unsigned npy);
/* NULL for 0 or an unknown id. */
const struct pg_site *pg_sites_get(uint32_t id);
uint32_t pg_sites_count(void);
void pg_sites_count_created(uint32_t id);
/* fork child: the counts are the parent's. Tests: everything forgotten. */
void pg_sites_fork_child(void);
void pg_sites_reset(void);

#endif
