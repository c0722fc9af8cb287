/* Registry of socket handles in uthash tables.
 *
 * fd table: descriptor -> struct pg_fd, sharded by descriptor number so that
 * threads working on different sockets rarely meet on a lock. An entry whose
 * sock is NULL is a tombstone: the socket this process closed last on that
 * number, kept for double-close detection until the number is reused.
 * site table: stack hash -> struct pg_site, each distinct stack stored once.
 *
 * Locks are statically initialised (calls may arrive before any constructor)
 * and held only around table operations. */
#include "shim/common.h"

#include <errno.h>
#include <pthread.h>
#include <string.h>

#include "shim/registry.h"

#define PG_SHARDS 16

struct pg_sock {
	uint64_t inode;
	const struct pg_site *site;
	int64_t created_ns;
	int domain, type, protocol;
	unsigned flags;
	uint32_t nfds; /* handles that name it; changed under a shard lock */
	uint32_t pool; /* policy: pool rule + 1 whose slot it holds */
	void *dest; /* policy: churn destination */
};

struct pg_fd {
	UT_hash_handle hh;
	int fd;
	uint32_t seq;
	struct pg_sock *sock; /* NULL: tombstone */
	const struct pg_site *created_site; /* tombstone: who made the socket */
	const struct pg_site *closed_site; /* tombstone: who closed it */
};

struct pg_shard {
	pthread_mutex_t lock;
	struct pg_fd *table;
	/* Record numbers: compared only between records of one descriptor,
	 * which live in one shard, so a counter under the shard lock will do. */
	uint32_t seq;
} __attribute__((aligned(64)));

static struct pg_shard shards[PG_SHARDS] = {
#define PG_SHARD_INIT                             \
	{                                         \
		.lock = PTHREAD_MUTEX_INITIALIZER \
	}
	PG_SHARD_INIT, PG_SHARD_INIT, PG_SHARD_INIT, PG_SHARD_INIT, PG_SHARD_INIT, PG_SHARD_INIT,
	PG_SHARD_INIT, PG_SHARD_INIT, PG_SHARD_INIT, PG_SHARD_INIT, PG_SHARD_INIT, PG_SHARD_INIT,
	PG_SHARD_INIT, PG_SHARD_INIT, PG_SHARD_INIT, PG_SHARD_INIT,
};

static pthread_mutex_t site_lock = PTHREAD_MUTEX_INITIALIZER;
static struct pg_site *sites;
static uint32_t site_count;

static pthread_mutex_t dc_lock = PTHREAD_MUTEX_INITIALIZER;
static struct pg_double_close *dcs;

static struct pg_totals totals;
static void (*release_fn)(uint32_t pool, void *dest);

static struct pg_shard *shard_of(int fd)
{
	return &shards[(unsigned)fd % PG_SHARDS];
}

static void count(uint64_t *c)
{
	__atomic_add_fetch(c, 1, __ATOMIC_RELAXED);
}

static uint64_t hash_frames(const uintptr_t *frames, unsigned depth)
{
	uint64_t h = 0x9e3779b97f4a7c15ull ^ depth;

	for (unsigned i = 0; i < depth; i++) {
		h ^= frames[i];
		h *= 0xff51afd7ed558ccdull;
		h ^= h >> 32;
	}
	return h;
}

/* Caller holds site_lock. 64-bit hashes of different stacks may collide:
 * such stacks are kept apart by probing the next hash values; *h is left at
 * the hash of the match, or at the first free one. */
static struct pg_site *site_find(const uintptr_t *frames, unsigned depth, uint64_t *h)
{
	struct pg_site *s;

	for (;; (*h)++) {
		HASH_FIND(hh, sites, h, sizeof(*h), s);
		if (!s ||
		    (s->depth == depth && !memcmp(s->frames, frames, depth * sizeof(*frames))))
			return s;
	}
}

/* The last few sites this thread used: a loop that makes sockets from one
 * place finds its site without the global lock. Sites never change and are
 * freed only by pg_registry_reset, which bumps the generation. */
#define PG_SITE_CACHE 4
struct pg_site_cache {
	uint64_t hash;
	uint32_t gen;
	const struct pg_site *site;
};
static __thread struct pg_site_cache site_cache[PG_SITE_CACHE]
    __attribute__((tls_model("initial-exec")));
static __thread unsigned site_cache_next __attribute__((tls_model("initial-exec")));
static uint32_t sites_gen = 1;

static const struct pg_site *cache_get(uint64_t h, const uintptr_t *frames, unsigned depth)
{
	uint32_t gen = __atomic_load_n(&sites_gen, __ATOMIC_ACQUIRE);

	for (int i = 0; i < PG_SITE_CACHE; i++) {
		const struct pg_site *s = site_cache[i].site;
		if (s && site_cache[i].hash == h && site_cache[i].gen == gen && s->depth == depth &&
		    !memcmp(s->frames, frames, depth * sizeof(*frames)))
			return s;
	}
	return NULL;
}

static void cache_put(uint64_t h, const struct pg_site *s)
{
	struct pg_site_cache *c = &site_cache[site_cache_next++ % PG_SITE_CACHE];

	c->hash = h;
	c->gen = __atomic_load_n(&sites_gen, __ATOMIC_ACQUIRE);
	c->site = s;
}

const struct pg_site *pg_site_intern(const uintptr_t *frames, unsigned depth)
{
	const struct pg_site *hit;
	struct pg_site *s, *n;
	uint64_t h;

	if (depth > PG_MAX_DEPTH)
		depth = PG_MAX_DEPTH;
	h = hash_frames(frames, depth);
	hit = cache_get(h, frames, depth);
	if (hit)
		return hit;
	pthread_mutex_lock(&site_lock);
	s = site_find(frames, depth, &h);
	pthread_mutex_unlock(&site_lock);
	if (s) {
		cache_put(hash_frames(frames, depth), s);
		return s;
	}

	/* Allocate outside the lock, then insert unless another thread won. */
	n = pg_alloc(sizeof(*n) + depth * sizeof(*frames));
	if (!n)
		return NULL;
	memset(n, 0, sizeof(*n));
	n->depth = depth;
	memcpy(n->frames, frames, depth * sizeof(*frames));
	pthread_mutex_lock(&site_lock);
	h = hash_frames(frames, depth);
	s = site_find(frames, depth, &h);
	if (!s) {
		n->hash = h;
		n->id = ++site_count;
		pg_hash_oom = 0;
		HASH_ADD(hh, sites, hash, sizeof(n->hash), n);
		if (pg_hash_oom)
			site_count--;
		else
			s = n;
	}
	pthread_mutex_unlock(&site_lock);
	if (s != n)
		pg_free(n);
	if (s)
		cache_put(hash_frames(frames, depth), s);
	return s;
}

static void site_count_created(const struct pg_site *site)
{
	if (site)
		count(&((struct pg_site *)site)->created);
}

/* Caller holds the shard lock. Drops one handle of e's socket; returns the
 * socket when that was its last handle (the caller frees it). */
static struct pg_sock *unlink_handle(struct pg_fd *e)
{
	struct pg_sock *s = e->sock;

	e->sock = NULL;
	if (__atomic_sub_fetch(&s->nfds, 1, __ATOMIC_ACQ_REL) == 0)
		return s;
	return NULL;
}

static struct pg_fd *new_entry(int fd)
{
	struct pg_fd *e = pg_alloc(sizeof(*e));

	if (e) {
		memset(e, 0, sizeof(*e));
		e->fd = fd;
	}
	return e;
}

/* Caller holds the shard lock. Puts e into the table; 0 or -ENOMEM. */
static int insert_entry(struct pg_shard *sh, struct pg_fd *e)
{
	pg_hash_oom = 0;
	HASH_ADD_INT(sh->table, fd, e);
	return pg_hash_oom ? -ENOMEM : 0;
}

static void settle_dropped(struct pg_sock *gone, uint64_t *counter)
{
	void (*fn)(uint32_t, void *) = __atomic_load_n(&release_fn, __ATOMIC_ACQUIRE);

	if (!gone)
		return;
	count(counter);
	/* A pool slot is given back however the socket went: close, dup2 onto
	 * it, close_range, or a close seen only by reconciliation. */
	if (fn && (gone->pool || gone->dest))
		fn(gone->pool, gone->dest);
	pg_free(gone);
}

void pg_registry_set_release(void (*fn)(uint32_t pool, void *dest))
{
	__atomic_store_n(&release_fn, fn, __ATOMIC_RELEASE);
}

int pg_registry_get_conn(int fd, struct pg_conn *out)
{
	struct pg_shard *sh = shard_of(fd);
	struct pg_fd *e;
	int rc = -ENOENT;

	pthread_mutex_lock(&sh->lock);
	HASH_FIND_INT(sh->table, &fd, e);
	if (e && e->sock) {
		out->type = e->sock->type;
		out->protocol = e->sock->protocol;
		out->flags = e->sock->flags;
		out->pool = e->sock->pool;
		out->dest = e->sock->dest;
		out->site = e->sock->site;
		rc = 0;
	}
	pthread_mutex_unlock(&sh->lock);
	return rc;
}

int pg_registry_set_conn(int fd, uint32_t pool, void *dest)
{
	struct pg_shard *sh = shard_of(fd);
	struct pg_fd *e;
	int rc = -ENOENT;

	pthread_mutex_lock(&sh->lock);
	HASH_FIND_INT(sh->table, &fd, e);
	if (e && e->sock) {
		rc = 0;
		if (pool && e->sock->pool)
			rc = -EEXIST;
		else if (pool)
			e->sock->pool = pool;
		if (dest)
			e->sock->dest = dest;
	}
	pthread_mutex_unlock(&sh->lock);
	return rc;
}

/* Makes fd a handle of s: a new entry, or the number's entry reused (a
 * tombstone, or a live record the kernel says is gone: that socket is handed
 * back in *stale, closed unseen). Allocating under the lock is rare: only the
 * first socket on a descriptor number. 0 or -ENOMEM. */
static int attach(int fd, struct pg_sock *s, struct pg_sock **stale)
{
	struct pg_shard *sh = shard_of(fd);
	struct pg_fd *e;

	*stale = NULL;
	pthread_mutex_lock(&sh->lock);
	HASH_FIND_INT(sh->table, &fd, e);
	if (!e) {
		e = new_entry(fd);
		if (!e || insert_entry(sh, e) < 0) {
			pthread_mutex_unlock(&sh->lock);
			pg_free(e);
			return -ENOMEM;
		}
	} else if (e->sock) {
		*stale = unlink_handle(e);
	}
	e->sock = s;
	e->seq = ++sh->seq;
	e->created_site = e->closed_site = NULL;
	pthread_mutex_unlock(&sh->lock);
	return 0;
}

int pg_registry_add(int fd, uint64_t inode, const struct pg_site *site, int64_t now_ns, int domain,
		    int type, int protocol, unsigned flags)
{
	struct pg_sock *s = pg_alloc(sizeof(*s)), *stale;

	if (!s) {
		pg_registry_count_lost();
		return -ENOMEM;
	}
	memset(s, 0, sizeof(*s));
	s->inode = inode;
	s->site = site;
	s->created_ns = now_ns;
	s->domain = domain;
	s->type = type;
	s->protocol = protocol;
	s->flags = flags;
	s->nfds = 1;
	if (attach(fd, s, &stale) < 0) {
		pg_free(s);
		pg_registry_count_lost();
		return -ENOMEM;
	}
	settle_dropped(stale, &totals.closed_unseen);
	if (flags & PG_SOCK_INHERITED)
		count(&totals.inherited);
	else
		count(&totals.created);
	site_count_created(site);
	return 0;
}

int pg_registry_dup(int oldfd, int newfd)
{
	struct pg_shard *so = shard_of(oldfd);
	struct pg_sock *s = NULL, *stale;
	struct pg_fd *e;

	if (oldfd == newfd)
		return 0;
	/* Pin the socket (one more handle) under the old fd's lock, so that a
	 * racing close of oldfd cannot free it before newfd is in. */
	pthread_mutex_lock(&so->lock);
	HASH_FIND_INT(so->table, &oldfd, e);
	if (e && e->sock) {
		s = e->sock;
		__atomic_add_fetch(&s->nfds, 1, __ATOMIC_ACQ_REL);
	}
	pthread_mutex_unlock(&so->lock);
	if (!s)
		return -ENOENT;
	if (attach(newfd, s, &stale) < 0) {
		/* Undo the pin; if oldfd was closed meanwhile, it is gone now. */
		if (__atomic_sub_fetch(&s->nfds, 1, __ATOMIC_ACQ_REL) == 0)
			settle_dropped(s, &totals.closed);
		pg_registry_count_lost();
		return -ENOMEM;
	}
	settle_dropped(stale, &totals.closed_unseen);
	return 0;
}

void pg_registry_set_flags(int fd, unsigned flags)
{
	struct pg_shard *sh = shard_of(fd);
	struct pg_fd *e;

	pthread_mutex_lock(&sh->lock);
	HASH_FIND_INT(sh->table, &fd, e);
	if (e && e->sock)
		e->sock->flags |= flags;
	pthread_mutex_unlock(&sh->lock);
}

int pg_registry_is_tracked(int fd)
{
	struct pg_shard *sh = shard_of(fd);
	struct pg_fd *e;
	int r;

	pthread_mutex_lock(&sh->lock);
	HASH_FIND_INT(sh->table, &fd, e);
	r = e && e->sock;
	pthread_mutex_unlock(&sh->lock);
	return r;
}

int pg_registry_close_begin(int fd, struct pg_closing *c)
{
	struct pg_shard *sh = shard_of(fd);
	struct pg_fd *e;
	int what = PG_ENTRY_NONE;

	memset(c, 0, sizeof(*c));
	c->fd = fd;
	pthread_mutex_lock(&sh->lock);
	HASH_FIND_INT(sh->table, &fd, e);
	if (e && e->sock) {
		what = PG_ENTRY_LIVE;
		c->sock = e->sock;
		c->seq = e->seq;
		c->site = e->sock->site;
		c->pool = e->sock->pool;
		c->dest = e->sock->dest;
		c->flags = e->sock->flags;
		c->last = __atomic_load_n(&e->sock->nfds, __ATOMIC_ACQUIRE) == 1;
		/* Detached now; the tombstone gets its stacks in close_end. */
		e->sock = NULL;
		e->created_site = c->site;
		e->closed_site = NULL;
	} else if (e && e->created_site) {
		what = PG_ENTRY_TOMB;
	}
	pthread_mutex_unlock(&sh->lock);
	return what;
}

void pg_registry_close_end(struct pg_closing *c, enum pg_close_outcome how,
			   const struct pg_site *close_site)
{
	struct pg_shard *sh = shard_of(c->fd);
	struct pg_sock *s = c->sock, *gone = NULL;
	struct pg_fd *e;
	int ours;

	if (!s)
		return;
	pthread_mutex_lock(&sh->lock);
	HASH_FIND_INT(sh->table, &c->fd, e);
	/* seq unchanged: no new socket took the number meanwhile. */
	ours = e && e->seq == c->seq && !e->sock;
	if (how == PG_NOT_CLOSED && ours) {
		e->sock = s;
		e->created_site = NULL;
		pthread_mutex_unlock(&sh->lock);
		return;
	}
	if (ours) {
		if (how == PG_CLOSED)
			e->closed_site = close_site;
		else
			e->created_site = NULL; /* closed by someone unknown */
	}
	if (__atomic_sub_fetch(&s->nfds, 1, __ATOMIC_ACQ_REL) == 0)
		gone = s;
	pthread_mutex_unlock(&sh->lock);
	settle_dropped(gone, how == PG_CLOSED ? &totals.closed : &totals.closed_unseen);
}

int pg_registry_tombstone(int fd, const struct pg_site **created, const struct pg_site **closed)
{
	struct pg_shard *sh = shard_of(fd);
	struct pg_fd *e;
	int r = 0;

	pthread_mutex_lock(&sh->lock);
	HASH_FIND_INT(sh->table, &fd, e);
	if (e && !e->sock && e->created_site) {
		*created = e->created_site;
		*closed = e->closed_site;
		r = 1;
	}
	pthread_mutex_unlock(&sh->lock);
	return r;
}

void pg_registry_forget(int fd)
{
	struct pg_shard *sh = shard_of(fd);
	struct pg_fd *e;

	pthread_mutex_lock(&sh->lock);
	HASH_FIND_INT(sh->table, &fd, e);
	if (e && !e->sock)
		e->created_site = e->closed_site = NULL;
	pthread_mutex_unlock(&sh->lock);
}

void pg_registry_double_close(int fd, const struct pg_site *created, const struct pg_site *closed,
			      const struct pg_site *again)
{
	struct pg_double_close *d, *n;

	count(&totals.double_closes);
	pthread_mutex_lock(&dc_lock);
	for (d = dcs; d; d = d->next) {
		if (d->created == created && d->closed == closed && d->closed_again == again) {
			count(&d->count); /* reports read it without the lock */
			pthread_mutex_unlock(&dc_lock);
			return;
		}
	}
	pthread_mutex_unlock(&dc_lock);
	n = pg_alloc(sizeof(*n));
	if (!n)
		return;
	n->fd = fd;
	n->count = 1;
	n->created = created;
	n->closed = closed;
	n->closed_again = again;
	pthread_mutex_lock(&dc_lock);
	/* Published last: readers walk the list without the lock. */
	n->next = dcs;
	__atomic_store_n(&dcs, n, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&dc_lock);
}

const struct pg_double_close *pg_registry_double_closes(void)
{
	return __atomic_load_n(&dcs, __ATOMIC_ACQUIRE);
}

size_t pg_registry_fds_in(int lo, int hi, int *out, size_t max)
{
	size_t n = 0;

	for (int i = 0; i < PG_SHARDS; i++) {
		struct pg_fd *e, *tmp;
		pthread_mutex_lock(&shards[i].lock);
		HASH_ITER(hh, shards[i].table, e, tmp)
		{
			if (e->sock && e->fd >= lo && e->fd <= hi) {
				if (n < max)
					out[n] = e->fd;
				n++;
			}
		}
		pthread_mutex_unlock(&shards[i].lock);
	}
	return n;
}

int pg_registry_snapshot(struct pg_snap **out, size_t *n)
{
	size_t cap = 0, len = 0;
	struct pg_snap *v = NULL;

	for (int i = 0; i < PG_SHARDS; i++) {
		pthread_mutex_lock(&shards[i].lock);
		cap += HASH_COUNT(shards[i].table); /* a hint: the copy below grows */
		pthread_mutex_unlock(&shards[i].lock);
	}
	cap += 16;
	v = pg_alloc(cap * sizeof(*v));
	if (!v)
		return -ENOMEM;
	for (int i = 0; i < PG_SHARDS; i++) {
		struct pg_fd *e, *tmp;
		pthread_mutex_lock(&shards[i].lock);
		HASH_ITER(hh, shards[i].table, e, tmp)
		{
			if (!e->sock)
				continue;
			if (len == cap) {
				size_t ncap = cap * 2;
				struct pg_snap *nv = pg_realloc(v, ncap * sizeof(*v));
				if (!nv)
					break; /* report what fits */
				v = nv;
				cap = ncap;
			}
			struct pg_snap *p = &v[len++];
			p->fd = e->fd;
			p->seq = e->seq;
			p->inode = e->sock->inode;
			p->site = e->sock->site;
			p->created_ns = e->sock->created_ns;
			p->domain = e->sock->domain;
			p->type = e->sock->type;
			p->protocol = e->sock->protocol;
			p->flags = e->sock->flags;
		}
		pthread_mutex_unlock(&shards[i].lock);
	}
	*out = v;
	*n = len;
	return 0;
}

int pg_registry_reconcile(struct pg_snap *s, uint64_t kernel_inode)
{
	struct pg_shard *sh = shard_of(s->fd);
	struct pg_fd *e;

	if (!kernel_inode || (s->inode && s->inode != kernel_inode)) {
		pg_registry_drop_stale(s->fd, s->seq);
		return 0;
	}
	if (!s->inode) {
		pthread_mutex_lock(&sh->lock);
		HASH_FIND_INT(sh->table, &s->fd, e);
		if (e && e->sock && e->seq == s->seq && !e->sock->inode)
			e->sock->inode = kernel_inode;
		pthread_mutex_unlock(&sh->lock);
		s->inode = kernel_inode;
	}
	return 1;
}

void pg_registry_drop_stale(int fd, uint32_t seq)
{
	struct pg_shard *sh = shard_of(fd);
	struct pg_sock *gone = NULL;
	struct pg_fd *e;

	pthread_mutex_lock(&sh->lock);
	HASH_FIND_INT(sh->table, &fd, e);
	if (e && e->sock && e->seq == seq) {
		gone = unlink_handle(e);
		/* No tombstone: we do not know who closed it. */
		e->created_site = e->closed_site = NULL;
	}
	pthread_mutex_unlock(&sh->lock);
	settle_dropped(gone, &totals.closed_unseen);
}

void pg_registry_totals(struct pg_totals *t)
{
	t->created = __atomic_load_n(&totals.created, __ATOMIC_RELAXED);
	t->closed = __atomic_load_n(&totals.closed, __ATOMIC_RELAXED);
	t->closed_unseen = __atomic_load_n(&totals.closed_unseen, __ATOMIC_RELAXED);
	t->inherited = __atomic_load_n(&totals.inherited, __ATOMIC_RELAXED);
	t->lost = __atomic_load_n(&totals.lost, __ATOMIC_RELAXED);
	t->double_closes = __atomic_load_n(&totals.double_closes, __ATOMIC_RELAXED);
}

uint64_t pg_registry_open(void)
{
	struct pg_totals t;

	pg_registry_totals(&t);
	return t.created + t.inherited - t.closed - t.closed_unseen;
}

void pg_registry_count_lost(void)
{
	count(&totals.lost);
}

void pg_registry_fork_prepare(void)
{
	pthread_mutex_lock(&site_lock);
	pthread_mutex_lock(&dc_lock);
	for (int i = 0; i < PG_SHARDS; i++)
		pthread_mutex_lock(&shards[i].lock);
}

void pg_registry_fork_parent(void)
{
	for (int i = PG_SHARDS - 1; i >= 0; i--)
		pthread_mutex_unlock(&shards[i].lock);
	pthread_mutex_unlock(&dc_lock);
	pthread_mutex_unlock(&site_lock);
}

void pg_registry_fork_child(void)
{
	uint64_t open = 0;
	struct pg_site *s, *stmp;
	struct pg_double_close *d, *dn;

	/* The child is its own process: what it holds now came from the parent
	 * (inherited, stacks kept), and its counts start here. Tombstones are
	 * the parent's closes, not the child's. The sockets are those the
	 * table names: one another thread of the parent was closing at the
	 * fork is out of the table and not the child's (if the kernel had not
	 * closed it yet, the child's report finds it untracked). */
	for (int i = 0; i < PG_SHARDS; i++) {
		struct pg_fd *e, *tmp;
		HASH_ITER(hh, shards[i].table, e, tmp)
		{
			if (e->sock)
				e->sock->nfds = 0;
		}
	}
	for (int i = 0; i < PG_SHARDS; i++) {
		struct pg_fd *e, *tmp;
		HASH_ITER(hh, shards[i].table, e, tmp)
		{
			if (e->sock) {
				e->sock->flags |= PG_SOCK_INHERITED;
				if (e->sock->nfds++ == 0)
					open++;
			} else {
				e->created_site = e->closed_site = NULL;
			}
		}
	}
	memset(&totals, 0, sizeof(totals));
	totals.inherited = open;
	HASH_ITER(hh, sites, s, stmp)
	{
		s->created = 0;
	}
	for (d = dcs; d; d = dn) {
		dn = d->next;
		pg_free(d);
	}
	dcs = NULL;
	pg_registry_fork_parent();
}

void pg_registry_reset(void)
{
	struct pg_site *s, *stmp;
	struct pg_double_close *d, *dn;

	for (int i = 0; i < PG_SHARDS; i++) {
		struct pg_fd *e, *tmp;
		pthread_mutex_lock(&shards[i].lock);
		HASH_ITER(hh, shards[i].table, e, tmp)
		{
			HASH_DEL(shards[i].table, e);
			if (e->sock && __atomic_sub_fetch(&e->sock->nfds, 1, __ATOMIC_ACQ_REL) == 0)
				pg_free(e->sock);
			pg_free(e);
		}
		pthread_mutex_unlock(&shards[i].lock);
	}
	pthread_mutex_lock(&site_lock);
	HASH_ITER(hh, sites, s, stmp)
	{
		HASH_DEL(sites, s);
		pg_free(s);
	}
	site_count = 0;
	pthread_mutex_unlock(&site_lock);
	pthread_mutex_lock(&dc_lock);
	for (d = dcs; d; d = dn) {
		dn = d->next;
		pg_free(d);
	}
	dcs = NULL;
	pthread_mutex_unlock(&dc_lock);
	memset(&totals, 0, sizeof(totals));
}
