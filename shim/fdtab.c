/* The registry (shim/fdtab.h).
 *
 * A slot is one 64-bit word: 0 (nothing), a descriptor record (a pointer,
 * 8-aligned), or a tombstone (bit 0 set): the socket this process closed
 * last on that number, kept for double-close detection until the number is
 * taken again; bit 1 says it qualifies, bits 2-32 and 33-63 hold the call
 * sites that made the descriptor and that closed it.
 *
 * Records (a socket with its first descriptor in it, further descriptors
 * apart) come from the arena in batches and are recycled through each
 * shard's free lists; memory is never given back, so a record read a
 * moment late is a stale record, never a fault (gen tells them apart). */
#include "shim/fdtab.h"

#include "shim/arena.h"
#include "shim/common.h"

#include <errno.h>
#include <string.h>
#include <sys/mman.h>

#define PG_CHUNK_BITS 12
#define PG_CHUNK (1 << PG_CHUNK_BITS)
#define PG_MAX_FD (1 << 30)
#define PG_CHUNKS (PG_MAX_FD >> PG_CHUNK_BITS)

/* A descriptor record's state, in the low bits of one word with its
 * generation (bumped each time the record is recycled), so that one
 * compare-and-swap both checks that a record is still the one a lock-free
 * reader saw and changes its state.
 * FREE: on a free list. LIVE: in its slot. CLOSING: a close() of it is
 * under way (taken lock-free by close_begin). SETTLED: it was displaced
 * while CLOSING (the number was taken again, so the kernel had closed it):
 * counted, and left for the closer to free. DEAD: a socket's first
 * descriptor, gone while the socket lives on in others. */
enum { PG_DESC_FREE, PG_DESC_LIVE, PG_DESC_CLOSING, PG_DESC_SETTLED, PG_DESC_DEAD };
#define GS_BITS 3
#define GS_MASK ((1u << GS_BITS) - 1)
#define GS_STATE(gs) ((gs)&GS_MASK)
#define GS_WITH(gs, st) (((gs) & ~GS_MASK) | (st))

struct pg_sock;

struct pg_desc {
	struct pg_sock *sock;
	int32_t fd;
	uint32_t site; /* made here (dup & co.); 0 for a socket's first */
	uint32_t gs; /* generation and state (atomic) */
	uint8_t via;
	struct pg_desc *next; /* free list */
};

struct pg_sock {
	uint64_t inode;
	int64_t created_ns;
	uint32_t site;
	uint32_t nfds; /* descriptors naming it (atomic: they are in several shards) */
	uint32_t gen; /* bumped each time the record is recycled */
	uint32_t flags; /* atomic or */
	int32_t domain, type, protocol;
	uint32_t pool, dest; /* the policy's (shim/enforce.c) */
	uint32_t mark; /* the cut that counted it last */
	uint32_t epoch; /* fork_epoch when it was made: older ones were inherited */
	struct pg_desc d0; /* its first descriptor */
};

struct pg_shard {
	struct pg_counts n;
	struct pg_sock *free_socks;
	struct pg_desc *free_descs;
	struct pg_dclose *dcs;
	struct pg_final *fins;
	uint64_t nfins;
	size_t live; /* descriptors in this shard's slots */
} __attribute__((aligned(64)));

static uint64_t *chunks[PG_CHUNKS];
/* Per chunk, one past the highest slot ever written: scans stop there, so
 * pages of a chunk never used are never touched (each would cost a page
 * fault in every forked child and in every report). */
static int chunk_top[PG_CHUNKS];
static int max_chunk = -1;
static struct pg_shard shards[PG_SHARDS];
static uint64_t lost;
static uint64_t fins_kept;
static size_t bytes;
static uint32_t cut_epoch;
/* Bumped in each fork child: a socket recorded before is inherited. The
 * child so writes nothing into the records it shares with its parent (each
 * page written would be copied: a forking server pays it per connection). */
static uint32_t fork_epoch;

const char *pg_via_name(int via)
{
	static const char *const names[] = { "?",       "socket",    "socketpair", "accept",
					     "recvmsg", "inherited", "dup",        "dup2",
					     "dup3",    "fcntl" };

	return via > 0 && via < (int)(sizeof(names) / sizeof(names[0])) ? names[via] : "?";
}

void pg_fdtab_count_lost(void)
{
	__atomic_add_fetch(&lost, 1, __ATOMIC_RELAXED);
}

uint64_t pg_fdtab_lost(void)
{
	return __atomic_load_n(&lost, __ATOMIC_RELAXED);
}

size_t pg_fdtab_bytes(void)
{
	return __atomic_load_n(&bytes, __ATOMIC_RELAXED);
}

static struct pg_shard *shard_of(int fd)
{
	return &shards[(unsigned)fd % PG_SHARDS];
}

static int lock_fd(int fd)
{
	return pg_lock_take(PG_LOCK_SHARD0 + (int)((unsigned)fd % PG_SHARDS), PG_LOCK_BOUND_MS);
}

static void unlock_fd(int fd)
{
	pg_lock_give(PG_LOCK_SHARD0 + (int)((unsigned)fd % PG_SHARDS));
}

static uint64_t *slot_create(int fd);

/* The slot of fd; with create, its chunk is mapped when missing. */
static inline uint64_t *slot(int fd, int create)
{
	uint64_t *c;

	if ((unsigned)fd >= PG_MAX_FD)
		return NULL;
	c = __atomic_load_n(&chunks[fd >> PG_CHUNK_BITS], __ATOMIC_ACQUIRE);
	if (__builtin_expect(c != NULL, 1))
		return &c[fd & (PG_CHUNK - 1)];
	return create ? slot_create(fd) : NULL;
}

/* fd's slot is about to be written (its shard's lock held). */
static inline void note_top(int fd)
{
	int *t = &chunk_top[fd >> PG_CHUNK_BITS], i = (fd & (PG_CHUNK - 1)) + 1;
	int m = __atomic_load_n(t, __ATOMIC_RELAXED);

	while (i > m &&
	       !__atomic_compare_exchange_n(t, &m, i, 1, __ATOMIC_RELEASE, __ATOMIC_RELAXED))
		;
}

static __attribute__((noinline)) uint64_t *slot_create(int fd)
{
	int ci = fd >> PG_CHUNK_BITS;
	uint64_t *c = NULL, *mine;

	mine =
	    (uint64_t *)pg_raw_syscall(SYS_mmap, 0, PG_CHUNK * sizeof(uint64_t),
				       PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if ((uintptr_t)mine >= (uintptr_t)-4095)
		return NULL;
	/* Another shard's thread may map the same chunk: one wins. */
	if (!__atomic_compare_exchange_n(&chunks[ci], &c, mine, 0, __ATOMIC_ACQ_REL,
					 __ATOMIC_ACQUIRE)) {
		pg_raw_syscall(SYS_munmap, (long)mine, PG_CHUNK * sizeof(uint64_t), 0, 0, 0, 0);
	} else {
		int m = __atomic_load_n(&max_chunk, __ATOMIC_RELAXED);
		c = mine;
		__atomic_add_fetch(&bytes, PG_CHUNK * sizeof(uint64_t), __ATOMIC_RELAXED);
		while (ci > m && !__atomic_compare_exchange_n(&max_chunk, &m, ci, 0,
							      __ATOMIC_RELEASE, __ATOMIC_RELAXED))
			;
	}
	return &c[fd & (PG_CHUNK - 1)];
}

/* ---- records (caller holds the shard lock) ---- */

static inline uint32_t get_gs(const struct pg_desc *d)
{
	return __atomic_load_n(&d->gs, __ATOMIC_ACQUIRE);
}

static inline void set_gs(struct pg_desc *d, uint32_t gs)
{
	__atomic_store_n(&d->gs, gs, __ATOMIC_RELEASE);
}

static inline int cas_gs(struct pg_desc *d, uint32_t from, uint32_t to)
{
	return __atomic_compare_exchange_n(&d->gs, &from, to, 0, __ATOMIC_ACQ_REL,
					   __ATOMIC_RELAXED);
}

/* The next generation, FREE. */
static inline uint32_t next_gen(uint32_t gs)
{
	return (gs & ~GS_MASK) + (1u << GS_BITS);
}

static struct pg_sock *alloc_sock(struct pg_shard *sh)
{
	struct pg_sock *s;

	if (PG_UNLIKELY(pg_arena_fault_now()))
		return NULL;
	if (!sh->free_socks) {
		/* A batch that fills its arena size class. */
		size_t size = 8192, n = size / sizeof(struct pg_sock);
		struct pg_sock *b = pg_arena_calloc(size);
		if (!b)
			return NULL;
		__atomic_add_fetch(&bytes, size, __ATOMIC_RELAXED);
		for (size_t i = 0; i < n; i++) {
			b[i].d0.sock = sh->free_socks;
			sh->free_socks = &b[i];
		}
	}
	s = sh->free_socks;
	sh->free_socks = s->d0.sock;
	return s;
}

/* Every field is written again when the record is taken. */
static void free_sock(struct pg_shard *sh, struct pg_sock *s)
{
	s->gen++;
	set_gs(&s->d0, next_gen(s->d0.gs));
	s->d0.sock = sh->free_socks;
	sh->free_socks = s;
}

static struct pg_desc *alloc_desc(struct pg_shard *sh)
{
	struct pg_desc *d;

	if (PG_UNLIKELY(pg_arena_fault_now()))
		return NULL;
	if (!sh->free_descs) {
		size_t size = 4096, n = size / sizeof(struct pg_desc);
		struct pg_desc *b = pg_arena_calloc(size);
		if (!b)
			return NULL;
		__atomic_add_fetch(&bytes, size, __ATOMIC_RELAXED);
		for (size_t i = 0; i < n; i++) {
			b[i].next = sh->free_descs;
			sh->free_descs = &b[i];
		}
	}
	d = sh->free_descs;
	sh->free_descs = d->next;
	return d;
}

static void free_desc(struct pg_shard *sh, struct pg_desc *d)
{
	set_gs(d, next_gen(d->gs));
	d->next = sh->free_descs;
	sh->free_descs = d;
}

/* One descriptor of its socket goes (its state already changed by the
 * caller: kept is 1 when it stays SETTLED for its closer to free); the
 * socket with its last one, counted in *counter. Returns 1 then. */
static int drop_desc(struct pg_shard *sh, struct pg_desc *d, int kept, uint64_t *counter,
		     struct pg_fdtab_gone *gone)
{
	struct pg_sock *s = d->sock;

	if (d != &s->d0 && !kept)
		free_desc(sh, d);
	if (__atomic_sub_fetch(&s->nfds, 1, __ATOMIC_ACQ_REL) != 0)
		return 0;
	(*counter)++;
	if (gone) {
		gone->pool = s->pool;
		gone->dest = s->dest;
	}
	free_sock(sh, s);
	return 1;
}

static uint32_t desc_created_site(const struct pg_desc *d)
{
	return d->site ? d->site : d->sock->site;
}

static uint64_t tomb(uint32_t created, uint32_t closed)
{
	return 3u | ((uint64_t)(created & 0x7fffffff) << 2) |
	       ((uint64_t)(closed & 0x7fffffff) << 33);
}

/* What was on a number that is taken again: a descriptor still there was
 * closed behind our back (or by a close whose end has not run yet: that
 * one, a race of microseconds, is counted here and its end does nothing). */
static void record_finalized(struct pg_shard *sh, const struct pg_final *f);

static void displace(struct pg_shard *sh, uint64_t *p, struct pg_fdtab_gone *gone, int64_t now_ns)
{
	uint64_t w = *p;
	struct pg_desc *d;

	if (w == 0 || (w & 1))
		return;
	d = (struct pg_desc *)(uintptr_t)w;
	sh->live--;
	/* Only a closer changes the state without the lock (LIVE <->
	 * CLOSING): the loop ends in a turn or two. */
	for (;;) {
		uint32_t gs = get_gs(d);
		if (GS_STATE(gs) == PG_DESC_CLOSING) {
			/* Its close() is under way and has released the number:
			 * a close that happened; its end frees the record. */
			if (cas_gs(d, gs, GS_WITH(gs, PG_DESC_SETTLED))) {
				const struct pg_sock *s = d->sock;
				unsigned fl = __atomic_load_n(&s->flags, __ATOMIC_RELAXED);
				/* A finalizer's close (marked before the real
				 * call): settled here, so recorded here. */
				struct pg_final f = {
					s->created_ns,
					now_ns,
					s->site,
					s->domain,
					s->type,
					s->protocol,
					(fl & ~PG_SOCK_FIN_CLOSING) |
					    (s->epoch != fork_epoch ? PG_SOCK_INHERITED : 0),
					NULL
				};
				if (drop_desc(sh, d, 1, &sh->n.closed, gone) &&
				    (fl & PG_SOCK_FIN_CLOSING))
					record_finalized(sh, &f);
				return;
			}
		} else if (cas_gs(d, gs, GS_WITH(gs, PG_DESC_DEAD))) {
			drop_desc(sh, d, 0, &sh->n.closed_unseen, gone);
			return;
		}
	}
}

static void no_gone(struct pg_fdtab_gone *gone)
{
	if (gone)
		gone->pool = gone->dest = 0;
}

PG_HOT int pg_fdtab_add(int fd, const struct pg_sock_facts *f, struct pg_fdtab_gone *gone)
{
	struct pg_shard *sh = shard_of(fd);
	struct pg_sock *s;
	uint64_t *p;

	no_gone(gone);
	if (lock_fd(fd) < 0) {
		pg_fdtab_count_lost();
		return -EAGAIN;
	}
	p = slot(fd, 1);
	s = p ? alloc_sock(sh) : NULL;
	if (s)
		note_top(fd);
	if (!s) {
		unlock_fd(fd);
		pg_fdtab_count_lost();
		return -ENOMEM;
	}
	s->inode = f->inode;
	s->pool = s->dest = 0;
	s->created_ns = f->created_ns;
	s->site = f->site;
	s->nfds = 1;
	s->flags = f->flags;
	s->domain = f->domain;
	s->type = f->type;
	s->protocol = f->protocol;
	s->d0.sock = s;
	s->d0.fd = fd;
	s->d0.site = 0;
	s->d0.via = (uint8_t)f->via;
	s->epoch = fork_epoch;
	set_gs(&s->d0, GS_WITH(s->d0.gs, PG_DESC_LIVE));
	displace(sh, p, gone, f->created_ns);
	*p = (uint64_t)(uintptr_t)&s->d0;
	sh->live++;
	if (f->flags & PG_SOCK_INHERITED)
		sh->n.inherited++;
	else if (f->flags & PG_SOCK_RECEIVED)
		sh->n.received++;
	else
		sh->n.created++;
	unlock_fd(fd);
	return 0;
}

int pg_fdtab_dup(int oldfd, int newfd, uint32_t site, int via, struct pg_fdtab_gone *gone)
{
	struct pg_shard *sh = shard_of(newfd);
	struct pg_sock *s = NULL;
	struct pg_desc *d;
	uint64_t *p, w;

	no_gone(gone);
	if (oldfd == newfd)
		return 0;
	if (lock_fd(oldfd) < 0) {
		pg_fdtab_count_lost();
		return -EAGAIN;
	}
	p = slot(oldfd, 0);
	w = p ? *p : 0;
	if (w && !(w & 1)) {
		/* Pinned (one more descriptor) under the old number's lock: a
		 * close of oldfd meanwhile cannot free it. */
		s = ((struct pg_desc *)(uintptr_t)w)->sock;
		__atomic_add_fetch(&s->nfds, 1, __ATOMIC_ACQ_REL);
	}
	unlock_fd(oldfd);
	if (!s)
		return -ENOENT;
	if (lock_fd(newfd) < 0)
		goto undo;
	p = slot(newfd, 1);
	d = p ? alloc_desc(sh) : NULL;
	if (d)
		note_top(newfd);
	if (!d) {
		unlock_fd(newfd);
		goto undo;
	}
	d->sock = s;
	d->fd = newfd;
	d->site = site;
	d->via = (uint8_t)via;
	set_gs(d, GS_WITH(d->gs, PG_DESC_LIVE));
	displace(sh, p, gone, 0);
	*p = (uint64_t)(uintptr_t)d;
	sh->live++;
	unlock_fd(newfd);
	return 0;
undo:
	pg_fdtab_count_lost();
	/* Our pin back; if oldfd was closed meanwhile, the socket went with
	 * it (it is freed into oldfd's shard). */
	if (__atomic_sub_fetch(&s->nfds, 1, __ATOMIC_ACQ_REL) == 0 &&
	    pg_lock_take(PG_LOCK_SHARD0 + (int)((unsigned)oldfd % PG_SHARDS), -1) == 0) {
		shard_of(oldfd)->n.closed++;
		free_sock(shard_of(oldfd), s);
		unlock_fd(oldfd);
	}
	return -ENOMEM;
}

/* No lock: what is there now. A descriptor is claimed by one
 * compare-and-swap LIVE -> CLOSING of its generation and state, read after
 * the slot and the slot read again after it: if it succeeds, the record was
 * not recycled since it was seen in fd's slot, and nothing but its end
 * removes it (a new socket on the number marks it SETTLED). */
static inline int close_begin_read(int fd, struct pg_fdtab_close *c, int policy)
{
	uint64_t *p = slot(fd, 0);

	c->fd = fd;
	c->finalizer = 0;
	c->desc = NULL;
	c->what = PG_ENTRY_NONE;
	if (!p)
		return c->what;
	for (int tries = 0; tries < 4; tries++) {
		uint64_t w = __atomic_load_n(p, __ATOMIC_ACQUIRE);
		struct pg_desc *d;
		const struct pg_sock *s;
		uint32_t gs;
		if (!w)
			return c->what;
		if (w & 1) {
			c->what = PG_ENTRY_TOMB;
			c->tomb = w;
			return c->what;
		}
		d = (struct pg_desc *)(uintptr_t)w;
		gs = get_gs(d);
		if (GS_STATE(gs) != PG_DESC_LIVE || __atomic_load_n(p, __ATOMIC_ACQUIRE) != w)
			continue;
		if (!cas_gs(d, gs, GS_WITH(gs, PG_DESC_CLOSING)))
			continue;
		c->what = PG_ENTRY_LIVE;
		c->desc = d;
		c->gen = gs;
		if (policy) {
			s = d->sock;
			c->site = s->site;
			c->pool = __atomic_load_n(&s->pool, __ATOMIC_RELAXED);
			c->dest = __atomic_load_n(&s->dest, __ATOMIC_RELAXED);
			c->flags = __atomic_load_n(&s->flags, __ATOMIC_RELAXED);
			c->type = s->type;
			c->last = __atomic_load_n(&s->nfds, __ATOMIC_ACQUIRE) == 1;
		}
		return c->what;
	}
	/* Another thread is closing the same number (or the record kept
	 * changing under us): this call is not followed. */
	return c->what;
}

void pg_fdtab_close_mark_finalizer(struct pg_fdtab_close *c)
{
	c->finalizer = 1;
	if (c->what == PG_ENTRY_LIVE)
		__atomic_or_fetch(&((struct pg_desc *)c->desc)->sock->flags, PG_SOCK_FIN_CLOSING,
				  __ATOMIC_RELAXED);
}

PG_HOT int pg_fdtab_close_begin(int fd, struct pg_fdtab_close *c, int policy)
{
	int r;

	if (PG_LIKELY(!pg_lock_hg))
		return close_begin_read(fd, c, policy);
	/* helgrind cannot tell a read checked again later from a race: under
	 * it, the same reads with the lock held. */
	c->fd = fd;
	c->finalizer = 0;
	c->what = PG_ENTRY_NONE;
	if (lock_fd(fd) < 0)
		return c->what;
	r = close_begin_read(fd, c, policy);
	unlock_fd(fd);
	return r;
}

static void record_double_close(struct pg_shard *sh, int fd, uint64_t t, uint32_t again)
{
	uint32_t created = (uint32_t)((t >> 2) & 0x7fffffff), closed = (uint32_t)(t >> 33);
	struct pg_dclose *d;

	sh->n.double_closes++;
	for (d = sh->dcs; d; d = d->next) {
		if (d->created == created && d->closed == closed && d->again == again) {
			__atomic_add_fetch(&d->count, 1, __ATOMIC_RELAXED);
			return;
		}
	}
	d = pg_arena_alloc(sizeof(*d));
	if (!d)
		return;
	*d = (struct pg_dclose){ fd, 1, created, closed, again, sh->dcs };
	/* Published last: reports walk the lists without the lock. */
	__atomic_store_n(&sh->dcs, d, __ATOMIC_RELEASE);
}

/* Caller holds the lock: the socket went by the interpreter's finalizer. */
static void record_finalized(struct pg_shard *sh, const struct pg_final *f)
{
	struct pg_final *e;

	sh->n.finalized++;
	if (__atomic_add_fetch(&fins_kept, 1, __ATOMIC_RELAXED) > PG_FINALIZED_KEPT ||
	    !(e = pg_arena_alloc(sizeof(*e)))) {
		__atomic_sub_fetch(&fins_kept, 1, __ATOMIC_RELAXED);
		return;
	}
	*e = *f;
	e->next = sh->fins;
	sh->fins = e;
	sh->nfins++;
}

/* Caller holds the lock: a SETTLED record's closer is done with it. A
 * socket's first descriptor goes with the socket (DEAD until then, or
 * already recycled if the socket went: then its generation moved on and
 * the caller did not get here). */
static void settle(struct pg_shard *sh, struct pg_desc *d)
{
	if (d == &d->sock->d0)
		set_gs(d, GS_WITH(d->gs, PG_DESC_DEAD));
	else
		free_desc(sh, d);
}

/* A claimed descriptor whose close is not to be settled: LIVE again, or,
 * if it was displaced meanwhile, freed, with the lock unless may_lock is 0
 * (the record is then never reused). */
static void unclaim(struct pg_shard *sh, struct pg_fdtab_close *c, int may_lock)
{
	struct pg_desc *d = c->desc;

	if (cas_gs(d, GS_WITH(c->gen, PG_DESC_CLOSING), GS_WITH(c->gen, PG_DESC_LIVE)) || !may_lock)
		return;
	if (lock_fd(c->fd) < 0)
		return;
	if (get_gs(d) == GS_WITH(c->gen, PG_DESC_SETTLED))
		settle(sh, d);
	unlock_fd(c->fd);
}

PG_HOT int pg_fdtab_close_end(struct pg_fdtab_close *c, enum pg_close_outcome how,
			      uint32_t close_site, struct pg_fdtab_gone *gone)
{
	struct pg_shard *sh = shard_of(c->fd);
	struct pg_desc *d = c->desc;
	uint64_t *p, w;
	uint32_t gs;
	int r = 0;

	no_gone(gone);
	if (c->what == PG_ENTRY_NONE)
		return 0;
	if (c->what == PG_ENTRY_LIVE && how == PG_NOT_CLOSED) {
		unclaim(sh, c, 1);
		return 0;
	}
	if (lock_fd(c->fd) < 0) {
		/* A signal handler on top of our own use of this shard, or a
		 * lock held too long: left as it is, for reconciliation. */
		pg_fdtab_count_lost();
		if (c->what == PG_ENTRY_LIVE)
			unclaim(sh, c, 0);
		return 0;
	}
	p = slot(c->fd, 0);
	w = p ? *p : 0;
	if (c->what == PG_ENTRY_TOMB) {
		/* Unchanged since begin: nothing reopened the number. */
		if (w == c->tomb && how == PG_WAS_GONE && (w & 2))
			record_double_close(sh, c->fd, w, close_site);
		else if (w == c->tomb && how == PG_CLOSED)
			*p = 0; /* reused by something we do not track, now closed */
		unlock_fd(c->fd);
		return 0;
	}
	gs = get_gs(d);
	if (gs == GS_WITH(c->gen, PG_DESC_CLOSING) && w == (uint64_t)(uintptr_t)d) {
		const struct pg_sock *s = d->sock;
		struct pg_final f = { s->created_ns,
				      c->closed_ns,
				      s->site,
				      s->domain,
				      s->type,
				      s->protocol,
				      s->flags | (s->epoch != fork_epoch ? PG_SOCK_INHERITED : 0),
				      NULL };
		*p = how == PG_CLOSED ? tomb(desc_created_site(d), close_site) : 0;
		sh->live--;
		set_gs(d, GS_WITH(gs, PG_DESC_DEAD));
		r = drop_desc(sh, d, 0, how == PG_CLOSED ? &sh->n.closed : &sh->n.closed_unseen,
			      gone);
		if (r && how == PG_CLOSED && PG_UNLIKELY(c->finalizer))
			record_finalized(sh, &f);
	} else if (gs == GS_WITH(c->gen, PG_DESC_SETTLED)) {
		/* A new socket took the number first: counted then. */
		settle(sh, d);
	}
	unlock_fd(c->fd);
	return r;
}

int pg_fdtab_get(int fd, struct pg_fdtab_view *v)
{
	uint64_t *p, w;
	int rc = -ENOENT;

	if (lock_fd(fd) < 0)
		return -EAGAIN;
	p = slot(fd, 0);
	w = p ? *p : 0;
	if (w && !(w & 1)) {
		const struct pg_sock *s = ((struct pg_desc *)(uintptr_t)w)->sock;
		v->domain = s->domain;
		v->type = s->type;
		v->protocol = s->protocol;
		v->flags = __atomic_load_n(&s->flags, __ATOMIC_RELAXED);
		v->site = s->site;
		v->pool = __atomic_load_n(&s->pool, __ATOMIC_RELAXED);
		v->dest = __atomic_load_n(&s->dest, __ATOMIC_RELAXED);
		v->desc = (const void *)(uintptr_t)w;
		v->sock = s;
		v->gen = s->gen;
		rc = 0;
	}
	unlock_fd(fd);
	return rc;
}

int pg_fdtab_set_policy(int fd, uint32_t pool, uint32_t dest)
{
	uint64_t *p, w;
	int rc = -ENOENT;

	if (lock_fd(fd) < 0)
		return -EAGAIN;
	p = slot(fd, 0);
	w = p ? *p : 0;
	if (w && !(w & 1)) {
		struct pg_sock *s = ((struct pg_desc *)(uintptr_t)w)->sock;
		uint32_t none = 0;
		rc = 0;
		if (pool && !__atomic_compare_exchange_n(&s->pool, &none, pool, 0, __ATOMIC_ACQ_REL,
							 __ATOMIC_RELAXED))
			rc = -EEXIST;
		if (dest)
			__atomic_store_n(&s->dest, dest, __ATOMIC_RELAXED);
	}
	unlock_fd(fd);
	return rc;
}

void pg_fdtab_set_flags(int fd, unsigned flags)
{
	uint64_t *p, w;

	if (lock_fd(fd) < 0)
		return;
	p = slot(fd, 0);
	w = p ? *p : 0;
	if (w && !(w & 1))
		__atomic_or_fetch(&((struct pg_desc *)(uintptr_t)w)->sock->flags, flags,
				  __ATOMIC_RELAXED);
	unlock_fd(fd);
}

static size_t slots_in(int lo, int hi, int *out, size_t max, int tombs)
{
	int top = (__atomic_load_n(&max_chunk, __ATOMIC_ACQUIRE) + 1) << PG_CHUNK_BITS;
	size_t n = 0;

	if (lo < 0)
		lo = 0;
	if (hi >= top)
		hi = top - 1;
	for (int fd = lo; fd <= hi; fd++) {
		uint64_t *c = __atomic_load_n(&chunks[fd >> PG_CHUNK_BITS], __ATOMIC_ACQUIRE), w;
		if (!c || (fd & (PG_CHUNK - 1)) >=
			      __atomic_load_n(&chunk_top[fd >> PG_CHUNK_BITS], __ATOMIC_ACQUIRE)) {
			fd |= PG_CHUNK - 1;
			continue;
		}
		w = __atomic_load_n(&c[fd & (PG_CHUNK - 1)], __ATOMIC_RELAXED);
		if (tombs ? (w & 3) == 3 : w && !(w & 1)) {
			if (n < max)
				out[n] = fd;
			n++;
		}
	}
	return n;
}

size_t pg_fdtab_fds_in(int lo, int hi, int *out, size_t max)
{
	return slots_in(lo, hi, out, max, 0);
}

size_t pg_fdtab_tombs_in(int lo, int hi, int *out, size_t max)
{
	return slots_in(lo, hi, out, max, 1);
}

size_t pg_fdtab_size_hint(void)
{
	size_t n = 0;

	/* Each shard's lock in turn, briefly: not a cut. */
	for (int i = 0; i < PG_SHARDS; i++) {
		if (pg_lock_take(PG_LOCK_SHARD0 + i, PG_LOCK_BOUND_MS) < 0)
			continue;
		n += shards[i].live + shards[i].nfins;
		pg_lock_give(PG_LOCK_SHARD0 + i);
	}
	return n;
}

void pg_fdtab_cut(struct pg_snap *buf, size_t cap, struct pg_cut *cut)
{
	int top;
	uint32_t epoch;

	memset(cut, 0, sizeof(*cut));
	pg_lock_take_range(PG_LOCK_SHARD0, PG_LOCK_SHARD0 + PG_SHARDS - 1);
	epoch = ++cut_epoch;
	top = __atomic_load_n(&max_chunk, __ATOMIC_ACQUIRE);
	for (int ci = 0; ci <= top; ci++) {
		const uint64_t *c = chunks[ci];
		int n = __atomic_load_n(&chunk_top[ci], __ATOMIC_ACQUIRE);
		if (!c)
			continue;
		for (int i = 0; i < n; i++) {
			const struct pg_desc *d;
			struct pg_sock *s;
			if (!c[i] || (c[i] & 1))
				continue;
			d = (const struct pg_desc *)(uintptr_t)c[i];
			s = d->sock;
			if (s->mark != epoch) {
				s->mark = epoch;
				cut->sockets++;
			}
			if (cut->listed == cap) {
				cut->unlisted++;
				continue;
			}
			buf[cut->listed++] = (struct pg_snap){
				.fd = d->fd,
				.via = d->via,
				.desc_site = d->site,
				.desc = d,
				.sock = s,
				.gen = s->gen,
				.inode = s->inode,
				.created_ns = s->created_ns,
				.site = s->site,
				.domain = s->domain,
				.type = s->type,
				.protocol = s->protocol,
				.flags =
				    s->flags | (s->epoch != fork_epoch ? PG_SOCK_INHERITED : 0),
			};
		}
	}
	for (int i = 0; i < PG_SHARDS; i++) {
		const struct pg_counts *n = &shards[i].n;
		cut->n.created += n->created;
		cut->n.inherited += n->inherited;
		cut->n.received += n->received;
		cut->n.closed += n->closed;
		cut->n.closed_unseen += n->closed_unseen;
		cut->n.double_closes += n->double_closes;
		cut->n.finalized += n->finalized;
		cut->dcs[i] = shards[i].dcs;
		cut->fins[i] = shards[i].fins;
		cut->fins_listed += shards[i].nfins;
	}
	pg_lock_give_range(PG_LOCK_SHARD0, PG_LOCK_SHARD0 + PG_SHARDS - 1);
}

int pg_fdtab_nothing_own(void)
{
	uint64_t own = 0;

	pg_lock_take_range(PG_LOCK_SHARD0, PG_LOCK_SHARD0 + PG_SHARDS - 1);
	for (int i = 0; i < PG_SHARDS; i++)
		own += shards[i].n.created + shards[i].n.received + shards[i].n.double_closes;
	pg_lock_give_range(PG_LOCK_SHARD0, PG_LOCK_SHARD0 + PG_SHARDS - 1);
	return own == 0;
}

/* Caller holds s->fd's lock: the descriptor of s, if the table still holds
 * it as it was at the cut. */
static struct pg_desc *same_as_cut(const struct pg_snap *s)
{
	uint64_t *p = slot(s->fd, 0);
	struct pg_desc *d = (struct pg_desc *)s->desc;

	/* One a close() has claimed is left to it. */
	if (!p || *p != (uint64_t)(uintptr_t)d || d->sock != s->sock || d->sock->gen != s->gen ||
	    GS_STATE(get_gs(d)) != PG_DESC_LIVE)
		return NULL;
	return d;
}

int pg_fdtab_drop(const struct pg_snap *s, int *socket_gone, struct pg_fdtab_gone *gone)
{
	struct pg_shard *sh = shard_of(s->fd);
	struct pg_desc *d;
	uint32_t gs;

	*socket_gone = 0;
	no_gone(gone);
	if (lock_fd(s->fd) < 0)
		return 0;
	d = same_as_cut(s);
	gs = d ? get_gs(d) : 0;
	/* A close() may claim it at this very moment: then it is its. */
	if (!d || !cas_gs(d, GS_WITH(gs, PG_DESC_LIVE), GS_WITH(gs, PG_DESC_DEAD))) {
		unlock_fd(s->fd);
		return 0;
	}
	*slot(s->fd, 0) = 0; /* no tombstone: we do not know who closed it */
	sh->live--;
	*socket_gone = drop_desc(sh, d, 0, &sh->n.closed_unseen, gone);
	unlock_fd(s->fd);
	return 1;
}

int pg_fdtab_drop_view(int fd, const struct pg_fdtab_view *v, struct pg_fdtab_gone *gone)
{
	struct pg_snap s = { .fd = fd, .desc = v->desc, .sock = v->sock, .gen = v->gen };
	int socket_gone = 0;

	pg_fdtab_drop(&s, &socket_gone, gone);
	return socket_gone;
}

void pg_fdtab_learn_inode(const struct pg_snap *s, uint64_t inode)
{
	struct pg_desc *d;

	if (lock_fd(s->fd) < 0)
		return;
	d = same_as_cut(s);
	if (d && !d->sock->inode)
		d->sock->inode = inode;
	unlock_fd(s->fd);
}

int pg_fdtab_tracked(int fd)
{
	uint64_t *p, w;

	/* helgrind cannot read the atomic load: under it, with the lock. */
	if (PG_UNLIKELY(pg_lock_hg) && lock_fd(fd) == 0) {
		p = slot(fd, 0);
		w = p ? *p : 0;
		unlock_fd(fd);
		return w && !(w & 1);
	}
	p = slot(fd, 0);
	w = p ? __atomic_load_n(p, __ATOMIC_ACQUIRE) : 0;
	return w && !(w & 1);
}

void pg_fdtab_fork_child(void)
{
	int top = max_chunk;
	struct pg_counts sum = { 0 };

	/* The sockets open now: what the counts say (they add up), read, not
	 * recounted record by record. */
	for (int i = 0; i < PG_SHARDS; i++) {
		const struct pg_counts *n = &shards[i].n;
		sum.created += n->created + n->inherited + n->received;
		sum.closed += n->closed + n->closed_unseen;
	}
	fork_epoch++;
	/* The slots are read; written only where the parent's closes left a
	 * tombstone (not the child's to report as a double close) and where a
	 * close was under way in a thread the child lacks. Descriptor counts
	 * of sockets are the parent's, right at the fork (every lock held). */
	for (int ci = 0; ci <= top; ci++) {
		uint64_t *c = chunks[ci];
		int n = chunk_top[ci];
		if (!c)
			continue;
		for (int i = 0; i < n; i++) {
			struct pg_desc *d;
			uint32_t gs;
			if (!c[i])
				continue;
			if (c[i] & 1) {
				c[i] = 0;
				continue;
			}
			d = (struct pg_desc *)(uintptr_t)c[i];
			gs = get_gs(d);
			if (GS_STATE(gs) != PG_DESC_LIVE)
				set_gs(d, GS_WITH(gs, PG_DESC_LIVE));
		}
	}
	for (int i = 0; i < PG_SHARDS; i++) {
		if (shards[i].n.created | shards[i].n.inherited | shards[i].n.received |
		    shards[i].n.closed | shards[i].n.closed_unseen | shards[i].n.double_closes |
		    shards[i].n.finalized)
			memset(&shards[i].n, 0, sizeof(shards[i].n));
		if (shards[i].dcs)
			shards[i].dcs = NULL;
		if (shards[i].fins) {
			shards[i].fins = NULL;
			shards[i].nfins = 0;
		}
	}
	__atomic_store_n(&fins_kept, 0, __ATOMIC_RELAXED);
	shards[0].n.inherited = sum.created - sum.closed;
}

void pg_fdtab_reset(void)
{
	pg_lock_take_range(PG_LOCK_SHARD0, PG_LOCK_SHARD0 + PG_SHARDS - 1);
	for (int ci = 0; ci <= max_chunk; ci++)
		if (chunks[ci])
			memset(chunks[ci], 0, (size_t)chunk_top[ci] * sizeof(uint64_t));
	memset(chunk_top, 0, sizeof(chunk_top));
	for (int i = 0; i < PG_SHARDS; i++)
		memset(&shards[i], 0, sizeof(shards[i]));
	__atomic_store_n(&lost, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&fins_kept, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&bytes, 0, __ATOMIC_RELAXED);
	for (int ci = 0; ci <= max_chunk; ci++)
		if (chunks[ci])
			__atomic_add_fetch(&bytes, PG_CHUNK * sizeof(uint64_t), __ATOMIC_RELAXED);
	pg_lock_give_range(PG_LOCK_SHARD0, PG_LOCK_SHARD0 + PG_SHARDS - 1);
}
