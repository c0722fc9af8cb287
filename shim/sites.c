#include "shim/sites.h"

#include "shim/arena.h"
#include "shim/locks.h"
#include "shim/python.h"

#include <string.h>

/* id -> site, in chunks that are never moved or freed. */
#define PG_SITES_CHUNK 4096
#define PG_SITES_CHUNKS 4096
static struct pg_site **by_id[PG_SITES_CHUNKS];
static struct pg_site *table; /* uthash, under PG_LOCK_SITES */
static uint32_t count;
/* Bumped by pg_sites_reset: the threads' caches are stale. */
static uint32_t generation = 1;

/* words: depth C frames, then 2 * npy Python words. */
static uint64_t hash_frames(const uintptr_t *frames, unsigned depth, unsigned npy)
{
	uint64_t h = 0x9e3779b97f4a7c15ull ^ depth ^ ((uint64_t)npy << 32);

	for (unsigned i = 0; i < depth + 2 * npy; i++) {
		h ^= frames[i];
		h *= 0xff51afd7ed558ccdull;
		h ^= h >> 32;
	}
	return h;
}

const struct pg_site *pg_sites_get(uint32_t id)
{
	struct pg_site **chunk;

	if (id == 0 || id > __atomic_load_n(&count, __ATOMIC_ACQUIRE))
		return NULL;
	chunk = __atomic_load_n(&by_id[(id - 1) / PG_SITES_CHUNK], __ATOMIC_ACQUIRE);
	return chunk ? __atomic_load_n(&chunk[(id - 1) % PG_SITES_CHUNK], __ATOMIC_ACQUIRE) : NULL;
}

uint32_t pg_sites_count(void)
{
	return __atomic_load_n(&count, __ATOMIC_ACQUIRE);
}

void pg_sites_count_created(uint32_t id)
{
	struct pg_site *s = (struct pg_site *)pg_sites_get(id);

	if (s)
		__atomic_add_fetch(&s->created, 1, __ATOMIC_RELAXED);
}

static int same(const struct pg_site *s, const uintptr_t *frames, unsigned depth, unsigned npy)
{
	return s->depth == depth && s->npy == npy &&
	       !memcmp(s->frames, frames, (depth + 2 * npy) * sizeof(*frames));
}

/* Caller holds the lock. 64-bit hashes of different stacks may collide:
 * such stacks are kept apart by probing the next hash values; *h is left at
 * the hash of the match, or at the first free one. */
static struct pg_site *find(const uintptr_t *frames, unsigned depth, unsigned npy, uint64_t *h)
{
	struct pg_site *s;

	for (;; (*h)++) {
		HASH_FIND(hh, table, h, sizeof(*h), s);
		if (!s || same(s, frames, depth, npy))
			return s;
	}
}

/* Caller holds the lock: a new site, published under its id. */
static struct pg_site *add(const uintptr_t *frames, unsigned depth, unsigned npy, uint64_t h)
{
	uint32_t id = count + 1, ci = (id - 1) / PG_SITES_CHUNK;
	size_t words = depth + 2 * (size_t)npy;
	struct pg_site *s;
	struct pg_pyframe *py = NULL;

	if (ci >= PG_SITES_CHUNKS)
		return NULL;
	if (!by_id[ci]) {
		struct pg_site **chunk = pg_arena_calloc(PG_SITES_CHUNK * sizeof(*chunk));
		if (!chunk)
			return NULL;
		__atomic_store_n(&by_id[ci], chunk, __ATOMIC_RELEASE);
	}
	if (npy) {
		py = pg_arena_alloc(npy * sizeof(*py));
		if (!py)
			return NULL;
		pg_python_resolve((const struct pg_pyraw *)(const void *)(frames + depth), (int)npy,
				  py);
	}
	s = pg_arena_alloc(sizeof(*s) + words * sizeof(*frames));
	if (!s) {
		pg_arena_free(py, npy * sizeof(*py));
		return NULL;
	}
	memset(s, 0, sizeof(*s));
	s->hash = h;
	s->id = id;
	s->depth = depth;
	s->npy = npy;
	s->py = py;
	for (unsigned i = 0; i < npy; i++) {
		const char *f = py[i].function, *dot = f ? strrchr(f, '.') : NULL;
		if (f && strcmp(dot ? dot + 1 : f, "__del__") == 0)
			s->in_del = 1;
	}
	memcpy(s->frames, frames, words * sizeof(*frames));
	pg_hash_oom = 0;
	HASH_ADD(hh, table, hash, sizeof(s->hash), s);
	if (pg_hash_oom) {
		pg_arena_free(s, sizeof(*s) + words * sizeof(*frames));
		pg_arena_free(py, npy * sizeof(*py));
		return NULL;
	}
	__atomic_store_n(&by_id[ci][(id - 1) % PG_SITES_CHUNK], s, __ATOMIC_RELEASE);
	__atomic_store_n(&count, id, __ATOMIC_RELEASE);
	return s;
}

/* The last few sites this thread used: a loop that makes sockets from one
 * place finds its site without the lock. */
#define PG_SITES_CACHE 4
struct pg_sites_cached {
	uint64_t hash;
	uint32_t gen, id;
};
static __thread struct pg_sites_cached cache[PG_SITES_CACHE]
    __attribute__((tls_model("initial-exec")));
static __thread unsigned cache_next __attribute__((tls_model("initial-exec")));

static uint32_t intern(const uintptr_t *frames, unsigned depth, unsigned npy)
{
	uint32_t gen = __atomic_load_n(&generation, __ATOMIC_ACQUIRE);
	uint64_t h, h0;
	struct pg_site *s;

	h0 = h = hash_frames(frames, depth, npy);
	for (int i = 0; i < PG_SITES_CACHE; i++) {
		const struct pg_site *c;
		if (cache[i].hash != h || cache[i].gen != gen)
			continue;
		c = pg_sites_get(cache[i].id);
		if (c && same(c, frames, depth, npy))
			return c->id;
	}
	if (pg_lock_take(PG_LOCK_SITES, PG_LOCK_BOUND_MS) < 0)
		return 0;
	s = find(frames, depth, npy, &h);
	if (!s)
		s = add(frames, depth, npy, h);
	pg_lock_give(PG_LOCK_SITES);
	if (!s)
		return 0;
	cache[cache_next % PG_SITES_CACHE] = (struct pg_sites_cached){ h0, gen, s->id };
	cache_next++;
	return s->id;
}

uint32_t pg_sites_intern(const uintptr_t *frames, unsigned depth)
{
	if (depth == 0)
		return 0;
	if (depth > PG_MAX_DEPTH)
		depth = PG_MAX_DEPTH;
	return intern(frames, depth, 0);
}

uint32_t pg_sites_intern_py(const uintptr_t *frames, unsigned depth, const void *py, unsigned npy)
{
	uintptr_t words[PG_MAX_DEPTH * 3];

	if (depth > PG_MAX_DEPTH)
		depth = PG_MAX_DEPTH;
	if (npy > PG_MAX_DEPTH)
		npy = PG_MAX_DEPTH;
	if (npy == 0)
		return depth ? intern(frames, depth, 0) : 0;
	memcpy(words, frames, depth * sizeof(*frames));
	memcpy(words + depth, py, 2 * npy * sizeof(*words));
	return intern(words, depth, npy);
}

void pg_sites_fork_child(void)
{
	for (uint32_t id = 1; id <= count; id++) {
		struct pg_site *s = (struct pg_site *)pg_sites_get(id);
		if (s)
			s->created = 0;
	}
}

void pg_sites_reset(void)
{
	struct pg_site *s, *tmp;

	pg_lock_take(PG_LOCK_SITES, -1);
	HASH_ITER(hh, table, s, tmp)
	{
		HASH_DEL(table, s);
		if (s->py)
			pg_arena_free((void *)s->py, s->npy * sizeof(*s->py));
		pg_arena_free(s, sizeof(*s) + (s->depth + 2 * s->npy) * sizeof(s->frames[0]));
	}
	for (int i = 0; i < PG_SITES_CHUNKS; i++)
		if (by_id[i])
			memset(by_id[i], 0, PG_SITES_CHUNK * sizeof(*by_id[i]));
	__atomic_store_n(&count, 0, __ATOMIC_RELEASE);
	__atomic_add_fetch(&generation, 1, __ATOMIC_ACQ_REL);
	pg_lock_give(PG_LOCK_SITES);
}
