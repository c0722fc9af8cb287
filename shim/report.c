/* The report. Order of work: a cut of the registry (the freeze: every
 * descriptor and every count at one moment), reconciliation with the kernel
 * (a descriptor gone, or naming another socket now, is dropped and counted
 * closed_unseen: both the list and the counts change, so they still add
 * up), the sockets nobody told us about (untracked), classification,
 * grouping by call site, writing. No lock is held while the kernel is
 * asked anything, and nothing is taken from malloc but the symbolizer's
 * (which may fail: frames then show module+offset). */
#include "shim/report.h"

#include "shim/arena.h"
#include "shim/common.h"
#include "shim/enforce.h"
#include "shim/fdtab.h"
#include "shim/out.h"
#include "shim/progfd.h"
#include "shim/python.h"
#include "shim/sites.h"
#include "shim/sockinfo.h"
#include "shim/suppress.h"
#include "shim/symbolize.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#define PG_TEXT_SOCKETS_PER_SITE 20
/* The group of sockets without a creation stack (inherited at load,
 * untracked); site id 0 is "stack_depth=0". */
#define PG_NO_STACK UINT32_MAX

enum pg_class {
	PG_LEAKED,
	PG_INHERITED,
	PG_UNTRACKED,
	PG_SUPPRESSED,
	PG_LISTENING, /* excused by ignore_listening */
	PG_YOUNG, /* excused by min_age_ms */
	PG_FINALIZED, /* closed by the interpreter's finalizer: a leak at exit */
};

static const char *const class_names[] = {
	"leaked",
	"inherited",
	"untracked",
	"suppressed",
	"listening (ignore_listening=1)",
	"younger than min_age_ms",
	"finalized",
};

struct rsock {
	uint64_t inode;
	uint32_t group; /* site id, or PG_NO_STACK */
	int64_t created_ns; /* 0: unknown */
	int64_t closed_ns; /* finalized ones */
	unsigned flags;
	int fd, nfds;
	int domain, type, protocol;
	int cls;
	/* Its descriptors: snap[first_desc ... first_desc + ndesc - 1]. */
	size_t first_desc, ndesc;
};

struct rsite {
	uint32_t group;
	const struct pg_site *site;
	size_t first, n; /* range in the sorted socket array */
	size_t fin; /* of n, finalized (closed) */
	uint64_t leaked;
};

struct ctx {
	const struct pg_report_opts *o;
	struct pg_out out;
	struct pg_symbolizer *sym;
	char *mem, *mem_end;
	struct pg_snap *snap;
	size_t nsnap;
	struct pg_progfd_sock *kfd; /* the program's sockets, by fd (NULL: ask one by one) */
	size_t nkfd;
	struct rsock *socks;
	size_t nsocks, cap_socks;
	struct rsite *sites;
	size_t nsites;
	struct pg_cut cut;
	uint64_t dropped_sockets, untracked, leaked, suppressed, class_count[7];
	uint64_t sites_leaking, open;
	uint64_t fin_listed; /* finalized sockets in socks */
};

#define PG_REPORT_FIXED ((size_t)128 << 10)
#define PG_REPORT_PER                                                               \
	(sizeof(struct pg_snap) + 2 * sizeof(struct rsock) + sizeof(struct rsite) + \
	 2 * sizeof(int) + sizeof(struct pg_progfd_sock))

size_t pg_report_mem_for(size_t n)
{
	return PG_REPORT_FIXED + sizeof(struct ctx) + (n + 256) * PG_REPORT_PER;
}

static void *carve(struct ctx *c, size_t size)
{
	char *p = c->mem;

	size = (size + 15) & ~(size_t)15;
	if ((size_t)(c->mem_end - p) < size)
		return NULL;
	c->mem += size;
	return p;
}

static int cmp_int(const void *a, const void *b)
{
	return *(const int *)a - *(const int *)b;
}

/* Descriptors of one socket together, the socket's first descriptor first. */
static int cmp_snap_sock(const void *a, const void *b)
{
	const struct pg_snap *x = a, *y = b;

	if (x->sock != y->sock)
		return (uintptr_t)x->sock < (uintptr_t)y->sock ? -1 : 1;
	if (x->desc_site == 0 && y->desc_site != 0 && x->via < PG_VIA_DUP)
		return -1;
	if (y->desc_site == 0 && x->desc_site != 0 && y->via < PG_VIA_DUP)
		return 1;
	return x->fd - y->fd;
}

static int cmp_rsock_inode(const void *a, const void *b)
{
	const struct rsock *x = a, *y = b;

	return x->inode < y->inode ? -1 : x->inode > y->inode;
}

/* Sockets of one group together, the stackless ones last. */
static int cmp_rsock_group(const void *a, const void *b)
{
	const struct rsock *x = a, *y = b;

	if (x->group != y->group)
		return x->group < y->group ? -1 : 1;
	return x->fd - y->fd;
}

static int cmp_rsite(const void *a, const void *b)
{
	const struct rsite *x = a, *y = b;

	if (x->leaked != y->leaked)
		return x->leaked > y->leaked ? -1 : 1;
	if (x->n != y->n)
		return x->n > y->n ? -1 : 1;
	return x->group < y->group ? -1 : x->group > y->group;
}

/* The kernel's view of a descriptor of the cut: 1 if it stands (inode
 * learnt), 0 when it was dropped (gone, or another socket now). */
static int cmp_kfd(const void *a, const void *b)
{
	return ((const struct pg_progfd_sock *)a)->fd - ((const struct pg_progfd_sock *)b)->fd;
}

/* The kernel's socket inode behind the program's fd: from the one scan of
 * its descriptors, or asked one by one where that scan could not be had. */
static uint64_t kernel_inode(const struct ctx *c, int fd)
{
	struct pg_progfd_sock key = { fd, 0 }, *hit;

	if (!c->kfd)
		return pg_progfd_inode(fd);
	hit = bsearch(&key, c->kfd, c->nkfd, sizeof(key), cmp_kfd);
	return hit ? hit->inode : 0;
}

static int reconcile(struct ctx *c, struct pg_snap *s)
{
	uint64_t ino = kernel_inode(c, s->fd);
	int gone = 0, stale = !ino || (s->inode && s->inode != ino);

	if (!stale && !s->inode && (s->domain >= 0 || s->type >= 0)) {
		/* Recorded without its inode: a socket of another family or type
		 * on the number was made behind our back. */
		int here = pg_progfd_get(s->fd), v;
		socklen_t l = sizeof(v);
		if (here >= 0) {
			if (s->domain >= 0 &&
			    (getsockopt(here, SOL_SOCKET, SO_DOMAIN, &v, &l) || v != s->domain))
				stale = 1;
			l = sizeof(v);
			if (!stale && s->type >= 0 &&
			    (getsockopt(here, SOL_SOCKET, SO_TYPE, &v, &l) || v != s->type))
				stale = 1;
			pg_progfd_put(here);
		}
	}
	if (!stale) {
		if (!s->inode) {
			pg_fdtab_learn_inode(s, ino);
			s->inode = ino;
		}
		return 1;
	}
	/* Gone since the cut by a close we saw (still open at the cut: kept),
	 * or closed behind our back (dropped, counted). */
	if (pg_fdtab_drop(s, &gone, NULL)) {
		if (gone)
			c->dropped_sockets++;
		return 0;
	}
	return 1;
}

struct untracked_scan {
	struct ctx *c;
	const int *known;
	size_t nknown;
	size_t first_extra;
};

static void on_scanned(int fd, uint64_t inode, void *arg)
{
	struct untracked_scan *u = arg;
	struct ctx *c = u->c;
	struct rsock key = { .inode = inode }, *hit;

	if (bsearch(&fd, u->known, u->nknown, sizeof(int), cmp_int))
		return;
	/* Another descriptor of a socket we know (made where we could not
	 * see, e.g. received over SCM_RIGHTS from ourselves). */
	hit = bsearch(&key, c->socks, u->first_extra, sizeof(*hit), cmp_rsock_inode);
	if (hit) {
		hit->nfds++;
		return;
	}
	for (size_t i = u->first_extra; i < c->nsocks; i++) {
		if (c->socks[i].inode == inode) {
			c->socks[i].nfds++;
			return;
		}
	}
	/* Recorded since the cut: neither counted nor listed here. */
	if (pg_fdtab_tracked(fd) || c->nsocks == c->cap_socks)
		return;
	c->socks[c->nsocks++] = (struct rsock){ .inode = inode,
						.group = PG_NO_STACK,
						.fd = fd,
						.nfds = 1,
						.domain = -1,
						.type = -1,
						.protocol = -1,
						.cls = PG_UNTRACKED };
	c->untracked++;
}

static int gather(struct ctx *c)
{
	const struct pg_report_opts *o = c->o;
	size_t cap = (size_t)(c->mem_end - c->mem) / PG_REPORT_PER, live = 0, distinct_listed = 0;
	/* Which table to read, and its size: before the cut, for reconciling. */
	int size = o->kernel ? pg_progfd_begin() : 0;
	int *known;

	c->snap = carve(c, cap * sizeof(*c->snap));
	known = carve(c, cap * sizeof(int));
	if (!c->snap || !known)
		return -ENOMEM;
	pg_fdtab_cut(c->snap, cap, &c->cut);
	c->nsnap = c->cut.listed;
	if (o->kernel) {
		/* After the cut: a socket made since is not in it, and one
		 * closed since is found gone only if the table still holds it. */
		long nk;
		c->kfd = carve(c, cap * sizeof(*c->kfd));
		nk = c->kfd ? pg_progfd_sockets(c->kfd, cap) : -1;
		if (nk < 0 || (size_t)nk > cap)
			c->kfd = NULL; /* one by one, then */
		else
			c->nkfd = (size_t)nk;
	}
	if (o->kernel) {
		for (size_t i = 0; i < c->nsnap; i++)
			if (reconcile(c, &c->snap[i]))
				c->snap[live++] = c->snap[i];
		c->nsnap = live;
	}
	/* The cut lists descriptors in order: the known numbers, sorted (a
	 * dropped one may hold a socket made behind our back: not known). */
	for (size_t i = 0; i < c->nsnap; i++)
		known[i] = c->snap[i].fd;
	qsort(c->snap, c->nsnap, sizeof(*c->snap), cmp_snap_sock);
	c->cap_socks = cap * 2;
	c->socks = carve(c, c->cap_socks * sizeof(*c->socks));
	if (!c->socks)
		return -ENOMEM;
	for (size_t i = 0; i < c->nsnap; i++) {
		const struct pg_snap *s = &c->snap[i];
		struct rsock *r;
		if (c->nsocks && c->socks[c->nsocks - 1].first_desc < i &&
		    c->snap[c->socks[c->nsocks - 1].first_desc].sock == s->sock) {
			c->socks[c->nsocks - 1].nfds++;
			c->socks[c->nsocks - 1].ndesc++;
			continue;
		}
		r = &c->socks[c->nsocks++];
		*r = (struct rsock){ .inode = s->inode,
				     .group = s->site,
				     .created_ns = s->created_ns,
				     .flags = s->flags,
				     .fd = s->fd,
				     .nfds = 1,
				     .domain = s->domain,
				     .type = s->type,
				     .protocol = s->protocol,
				     .first_desc = i,
				     .ndesc = 1 };
		/* Inherited at load: no creation stack at all. */
		if (!s->site && s->via == PG_VIA_INHERITED)
			r->group = PG_NO_STACK;
	}
	distinct_listed = c->nsocks;
	if (o->kernel) {
		struct untracked_scan u = { c, known, c->nsnap, c->nsocks };
		qsort(c->socks, c->nsocks, sizeof(*c->socks), cmp_rsock_inode);
		if (c->kfd) {
			for (size_t i = 0; i < c->nkfd; i++)
				on_scanned(c->kfd[i].fd, c->kfd[i].inode, &u);
		} else {
			for (int fd = 0; fd < size; fd++) {
				uint64_t ino = pg_progfd_inode(fd);
				if (ino)
					on_scanned(fd, ino, &u);
			}
		}
	}
	/* Sockets of the cut that did not fit (the memory set aside was too
	 * small) are open all the same. */
	c->open = c->nsocks + (c->cut.sockets > distinct_listed + c->dropped_sockets
				   ? c->cut.sockets - distinct_listed - c->dropped_sockets
				   : 0);
	(void)distinct_listed;
	return 0;
}

/* Sockets the interpreter's finalizer closed: listed in their sites, not
 * open (the program never closed them: leaked at exit, SPEC section 2). */
static void gather_finalized(struct ctx *c)
{
	for (int i = 0; i < PG_SHARDS; i++) {
		for (const struct pg_final *f = c->cut.fins[i]; f && c->nsocks < c->cap_socks;
		     f = f->next) {
			c->socks[c->nsocks++] = (struct rsock){
				.group = f->site ? f->site : PG_NO_STACK,
				.created_ns = f->created_ns,
				.closed_ns = f->closed_ns,
				.flags = f->flags | PG_SOCK_FINALIZED,
				.fd = -1,
				.domain = f->domain,
				.type = f->type,
				.protocol = f->protocol,
			};
			c->fin_listed++;
		}
	}
}

static int is_listening(const struct ctx *c, const struct rsock *r)
{
	int v = 0, here;
	socklen_t l = sizeof(v);

	if (r->flags & PG_SOCK_LISTENING)
		return 1;
	if (!c->o->kernel || (here = pg_progfd_get(r->fd)) < 0)
		return 0;
	if (getsockopt(here, SOL_SOCKET, SO_ACCEPTCONN, &v, &l))
		v = 0;
	pg_progfd_put(here);
	return v != 0;
}

static void classify(struct ctx *c)
{
	const struct pg_config *cfg = c->o->cfg;

	for (size_t i = 0; i < c->nsocks; i++) {
		struct rsock *r = &c->socks[i];
		if (r->cls == PG_UNTRACKED)
			;
		else if ((r->flags & PG_SOCK_FINALIZED) &&
			 (c->o->reason != PG_REASON_EXIT || (r->flags & PG_SOCK_INHERITED)))
			r->cls = PG_FINALIZED;
		else if (r->flags & PG_SOCK_FINALIZED)
			/* A leak at exit, excused as an open one would be (its
			 * age: how long it was open). */
			r->cls = cfg->ignore_listening && (r->flags & PG_SOCK_LISTENING)
				     ? PG_LISTENING
				 : cfg->min_age_ms > 0 &&
					 (r->closed_ns - r->created_ns) / 1000000 < cfg->min_age_ms
				     ? PG_YOUNG
				     : PG_LEAKED;
		else if (r->flags & PG_SOCK_INHERITED)
			r->cls = PG_INHERITED;
		else if (cfg->ignore_listening && is_listening(c, r))
			r->cls = PG_LISTENING;
		else if (cfg->min_age_ms > 0 &&
			 (c->o->now_ns - r->created_ns) / 1000000 < cfg->min_age_ms)
			r->cls = PG_YOUNG;
		else
			r->cls = PG_LEAKED;
		c->class_count[r->cls]++;
	}
}

/* A frame as shown: a C frame (its address, and a name when the
 * symbolizer has one; inlined frames are entries of their own) or a Python
 * frame. */
struct mframe {
	uintptr_t addr;
	int named;
	struct pg_sym sym;
	const struct pg_pyframe *py;
};
#define PG_MFRAMES (PG_MAX_DEPTH * 9)

/* s's frames, innermost first, with its Python frames in place of the
 * interpreter's evaluation loops: each _PyEval_EvalFrameDefault C frame
 * stands for the Python frames it ran (up to its entry frame). C frames
 * below the innermost Python frame stay (the socket module's); the
 * interpreter's own C frames after it are left out, unless native_frames=1.
 * Returns how many, at most max. */
static size_t merged(struct ctx *c, const struct pg_site *s, struct mframe *out, size_t max)
{
	struct pg_sym sy[8];
	size_t n = 0;
	uint32_t pi = 0;
	int native = c->o->cfg->native_frames, in_python = 0;

	for (uint32_t i = 0; s && i < s->depth && n < max; i++) {
		uintptr_t pc = s->frames[i];
		int k;
		if (s->npy && pg_python_is_eval(pc)) {
			while (pi < s->npy && n < max) {
				int entry = s->py[pi].entry;
				out[n++] = (struct mframe){ .py = &s->py[pi++] };
				if (entry)
					break;
			}
			in_python = 1;
			if (!native)
				continue;
		} else if (in_python && !native) {
			continue;
		}
		k = c->sym ? pg_sym_lookup(c->sym, pc, 1, sy, 8) : 0;
		if (k <= 0)
			out[n++] = (struct mframe){ .addr = pc };
		for (int j = 0; j < k && n < max; j++)
			out[n++] = (struct mframe){ .addr = pc, .named = 1, .sym = sy[j] };
	}
	/* Python frames beyond the C frames kept (stack_depth). */
	while (s && pi < s->npy && n < max)
		out[n++] = (struct mframe){ .py = &s->py[pi++] };
	return n;
}

/* Sites whose frames match a suppression: their leaks become suppressed.
 * Matching needs names, so the symbolizer is opened here when there are
 * suppressions at all. */
static void suppress(struct ctx *c)
{
	static struct pg_suppress_frame fr[PG_MFRAMES];
	static struct mframe mf[PG_MFRAMES];

	if (!c->o->supp || !c->o->supp->n)
		return;
	pg_suppress_reset_hits(c->o->supp);
	for (size_t i = 0; i < c->nsites; i++) {
		struct rsite *st = &c->sites[i];
		size_t n = 0;
		if (!st->leaked || !st->site)
			continue;
		if (!c->sym)
			c->sym = pg_sym_open(c->o->symbolize);
		/* The frames as the report shows them: Python functions and
		 * files match too. */
		for (size_t f = 0, m = merged(c, st->site, mf, PG_MFRAMES); f < m; f++) {
			if (mf[f].py) {
				fr[n].function = mf[f].py->function;
				fr[n].module = NULL;
				fr[n].file = mf[f].py->file;
			} else if (mf[f].named) {
				fr[n].function = mf[f].sym.function;
				fr[n].module = mf[f].sym.module;
				fr[n].file = mf[f].sym.file;
			} else {
				continue;
			}
			n++;
		}
		if (pg_suppress_match(c->o->supp, fr, n, st->leaked) < 0)
			continue;
		for (size_t k = st->first; k < st->first + st->n; k++) {
			if (c->socks[k].cls == PG_LEAKED) {
				c->socks[k].cls = PG_SUPPRESSED;
				c->class_count[PG_LEAKED]--;
				c->class_count[PG_SUPPRESSED]++;
			}
		}
		st->leaked = 0;
	}
}

static void text_suppressions(struct ctx *c)
{
	const struct pg_suppress *s = c->o->supp;
	int any = 0;

	for (size_t i = 0; s && i < s->n; i++)
		any |= s->rules[i].hits > 0;
	if (!any)
		return;
	pg_out_puts(&c->out, "-----------------------------------------------------\n"
			     "Suppressions used:\n  count template\n");
	for (size_t i = 0; i < s->n; i++)
		if (s->rules[i].hits)
			pg_out_printf(&c->out, "%7lu %s\n", (unsigned long)s->rules[i].hits,
				      s->rules[i].pattern);
	pg_out_puts(&c->out, "-----------------------------------------------------\n\n");
}

static int group(struct ctx *c)
{
	qsort(c->socks, c->nsocks, sizeof(*c->socks), cmp_rsock_group);
	c->sites = carve(c, (c->nsocks ? c->nsocks : 1) * sizeof(*c->sites));
	if (!c->sites)
		return -ENOMEM;
	for (size_t i = 0; i < c->nsocks; i++) {
		struct rsock *r = &c->socks[i];
		struct rsite *s = c->nsites ? &c->sites[c->nsites - 1] : NULL;
		if (!s || s->group != r->group) {
			/* Whole: the memory set aside is reused from report to
			 * report, and a count left from the last one listed its
			 * sockets again. */
			s = &c->sites[c->nsites++];
			*s = (struct rsite){ .group = r->group,
					     .site = r->group == PG_NO_STACK
							 ? NULL
							 : pg_sites_get(r->group),
					     .first = i };
		}
		s->n++;
		s->fin += (r->flags & PG_SOCK_FINALIZED) != 0;
		if (r->cls == PG_LEAKED)
			s->leaked++;
	}
	suppress(c);
	qsort(c->sites, c->nsites, sizeof(*c->sites), cmp_rsite);
	for (size_t i = 0; i < c->nsites; i++)
		if (c->sites[i].leaked)
			c->sites_leaking++;
	c->leaked = c->class_count[PG_LEAKED];
	/* Finalized sockets past what was kept or fits are leaked all the
	 * same at exit (counted, not listed). */
	if (c->o->reason == PG_REASON_EXIT && c->cut.n.finalized > c->fin_listed)
		c->leaked += c->cut.n.finalized - c->fin_listed;
	c->suppressed = c->class_count[PG_SUPPRESSED];
	return 0;
}

/* ---- writing ---- */

static void query(const struct ctx *c, const struct rsock *r, struct pg_sockinfo *si)
{
	int here;

	memset(si, 0, sizeof(*si));
	si->domain = r->domain;
	si->type = r->type;
	si->protocol = r->protocol;
	if (!c->o->kernel || r->fd < 0 || (here = pg_progfd_get(r->fd)) < 0)
		return;
	pg_sockinfo_query(here, si);
	pg_progfd_put(here);
}

/* Its age now; a finalized one's, when it was closed. */
static long age_ms(const struct ctx *c, const struct rsock *r)
{
	int64_t end = r->flags & PG_SOCK_FINALIZED ? r->closed_ns : c->o->now_ns;

	if (!r->created_ns || end < r->created_ns)
		return -1;
	return (long)((end - r->created_ns) / 1000000);
}

static int known_module(const struct pg_sym *sy)
{
	return sy->module && strcmp(sy->module, "?") != 0;
}

static void text_frames(struct ctx *c, uint32_t id, const char *indent)
{
	static struct mframe mf[PG_MFRAMES]; /* the report runs in one thread at a time */
	const struct pg_site *s = id == PG_NO_STACK ? NULL : pg_sites_get(id);
	size_t n;

	if (!s || s->depth + s->npy == 0) {
		pg_out_printf(&c->out, "%s<no stack%s>\n", indent,
			      id == 0 && c->o->cfg->stack_depth == 0 ? ": stack_depth=0" : "");
		return;
	}
	n = merged(c, s, mf, PG_MFRAMES);
	for (size_t k = 0; k < n; k++) {
		const struct mframe *f = &mf[k];
		if (f->py) {
			/* #3 in connect_backend svc/db.py:10 */
			pg_out_printf(&c->out, "%s#%zu in %s", indent, k,
				      f->py->function ? f->py->function : "?");
			if (f->py->file)
				pg_out_printf(&c->out, " %s", f->py->file);
			if (f->py->file && f->py->line)
				pg_out_printf(&c->out, ":%d", f->py->line);
			pg_out_puts(&c->out, "\n");
			continue;
		}
		pg_out_printf(&c->out, "%s#%zu 0x%lx", indent, k, (unsigned long)f->addr);
		if (!f->named) {
			pg_out_puts(&c->out, "\n");
			continue;
		}
		if (f->sym.function)
			pg_out_printf(&c->out, " in %s", f->sym.function);
		if (f->sym.file && f->sym.line)
			pg_out_printf(&c->out, " %s:%d", f->sym.file, f->sym.line);
		else if (known_module(&f->sym))
			pg_out_printf(&c->out, " (%s+0x%lx)", f->sym.module,
				      (unsigned long)f->sym.offset);
		else
			pg_out_puts(&c->out, " (<unknown module>)");
		pg_out_puts(&c->out, "\n");
	}
}

static void text_socket(struct ctx *c, const struct rsock *r)
{
	struct pg_sockinfo si;
	const char *proto, *state;
	long age = age_ms(c, r);

	query(c, r, &si);
	proto = pg_sockinfo_proto_name(si.domain, si.type, si.protocol);
	state = pg_sockinfo_tcp_state_name(si.tcp_state);
	if (r->flags & PG_SOCK_FINALIZED) {
		pg_out_printf(&c->out,
			      "  closed by the interpreter's finalizer, never by the "
			      "program: %s",
			      proto ? proto : "?");
		if (age >= 0)
			pg_out_printf(&c->out, ", open %ld ms", age);
		if (r->cls != PG_LEAKED && r->cls != PG_FINALIZED)
			pg_out_printf(&c->out, " [%s]", class_names[r->cls]);
		pg_out_puts(&c->out, "\n");
		return;
	}
	pg_out_printf(&c->out, "  fd %d: %s", r->fd, proto ? proto : "?");
	if (si.domain == AF_UNIX)
		pg_out_printf(&c->out, " %s",
			      pg_sockinfo_type_name(si.type) ? pg_sockinfo_type_name(si.type)
							     : "?");
	pg_out_printf(&c->out, " %s", si.local[0] ? si.local : "(unbound)");
	if (si.remote[0])
		pg_out_printf(&c->out, " -> %s", si.remote);
	if (si.listening)
		pg_out_puts(&c->out, " LISTEN");
	else if (state)
		pg_out_printf(&c->out, " %s", state);
	if (age >= 0)
		pg_out_printf(&c->out, ", age %ld ms", age);
	if (r->nfds > 1)
		pg_out_printf(&c->out, ", %d descriptors", r->nfds);
	if (r->cls != PG_LEAKED)
		pg_out_printf(&c->out, " [%s]", class_names[r->cls]);
	pg_out_puts(&c->out, "\n");
	/* Its other descriptors, each where it was made (valgrind lists each
	 * with its dup line). */
	for (size_t i = 1; i < r->ndesc; i++) {
		const struct pg_snap *d = &c->snap[r->first_desc + i];
		pg_out_printf(&c->out, "    fd %d (%s)%s\n", d->fd, pg_via_name(d->via),
			      d->desc_site ? ", made at:" : "");
		if (d->desc_site)
			text_frames(c, d->desc_site, "        ");
	}
}

static uint64_t site_created(const struct rsite *s)
{
	return s->site ? __atomic_load_n(&s->site->created, __ATOMIC_RELAXED) : 0;
}

static void text_site(struct ctx *c, const struct rsite *s)
{
	size_t shown = 0;

	const char *sep = "";

	if (s->leaked) {
		pg_out_printf(&c->out, "Leak of %lu socket(s) (%zu open", (unsigned long)s->leaked,
			      s->n - s->fin);
		sep = ", ";
	} else if (s->fin == s->n) {
		pg_out_printf(&c->out,
			      "Closed only by the interpreter's finalizer: %zu socket(s) (", s->n);
	} else {
		pg_out_printf(&c->out, "Open, not counted as leaked: %zu socket(s) (",
			      s->n - s->fin);
	}
	if (s->fin && (s->leaked || s->fin != s->n)) {
		pg_out_printf(&c->out, "%s%zu finalized", sep, s->fin);
		sep = ", ";
	}
	if (s->group != PG_NO_STACK)
		pg_out_printf(&c->out, "%s%lu created here) from:\n", sep,
			      (unsigned long)site_created(s));
	else
		pg_out_printf(&c->out, "%sno creation stack):\n", sep);
	text_frames(c, s->group, "    ");
	for (size_t i = s->first; i < s->first + s->n; i++) {
		const struct rsock *r = &c->socks[i];
		/* Leaked ones first: the reader came for them. */
		if (r->cls != PG_LEAKED && s->leaked)
			continue;
		if (shown++ < PG_TEXT_SOCKETS_PER_SITE)
			text_socket(c, r);
	}
	if (s->leaked) {
		for (size_t i = s->first; i < s->first + s->n; i++) {
			const struct rsock *r = &c->socks[i];
			if (r->cls != PG_LEAKED && shown++ < PG_TEXT_SOCKETS_PER_SITE)
				text_socket(c, r);
		}
	}
	if (shown > PG_TEXT_SOCKETS_PER_SITE)
		pg_out_printf(&c->out, "  ... and %zu more (the JSON report lists every one)\n",
			      shown - PG_TEXT_SOCKETS_PER_SITE);
	pg_out_puts(&c->out, "\n");
}

static const char *reason_name(enum pg_reason r)
{
	return r == PG_REASON_EXIT ? "exit" : r == PG_REASON_DUMP ? "dump" : "signal";
}

/* redis-server -> redis-check-rdb: the name the user ran is not the file. */
static int argv0_differs(const struct pg_report_opts *o)
{
	const char *a, *e;

	if (!o->argv0 || !o->argv0[0] || !o->exe)
		return 0;
	a = strrchr(o->argv0, '/');
	e = strrchr(o->exe, '/');
	return strcmp(a ? a + 1 : o->argv0, e ? e + 1 : o->exe) != 0;
}

static void write_text(struct ctx *c)
{
	const struct pg_report_opts *o = c->o;
	const struct pg_counts *n = &c->cut.n;

	pg_out_printf(&c->out, "==%d==portguard: %s report of %s", o->pid, reason_name(o->reason),
		      o->exe ? o->exe : "?");
	if (argv0_differs(o))
		pg_out_printf(&c->out, " (run as %s)", o->argv0);
	pg_out_printf(&c->out, "\n\n");
	for (size_t i = 0; i < c->nsites; i++)
		text_site(c, &c->sites[i]);
	for (int i = 0; i < PG_SHARDS; i++) {
		for (const struct pg_dclose *d = c->cut.dcs[i]; d; d = d->next) {
			pg_out_printf(
			    &c->out, "Double close of fd %d (%lu time(s)); closed again at:\n",
			    d->fd, (unsigned long)__atomic_load_n(&d->count, __ATOMIC_RELAXED));
			text_frames(c, d->again, "    ");
			pg_out_puts(&c->out, "  first closed at:\n");
			text_frames(c, d->closed, "    ");
			pg_out_puts(&c->out, "  created at:\n");
			text_frames(c, d->created ? d->created : PG_NO_STACK, "    ");
			pg_out_puts(&c->out, "\n");
		}
	}
	if (o->policy)
		pg_enforce_report(&c->out, 0);
	pg_out_printf(
	    &c->out,
	    "Totals: %lu created, %lu inherited, %lu received, %lu untracked; %lu closed, "
	    "%lu closed unseen; %lu open, %lu leaked, %lu suppressed; %lu double close(s)",
	    (unsigned long)n->created, (unsigned long)n->inherited, (unsigned long)n->received,
	    (unsigned long)c->untracked, (unsigned long)n->closed, (unsigned long)n->closed_unseen,
	    (unsigned long)c->open, (unsigned long)c->leaked, (unsigned long)c->suppressed,
	    (unsigned long)n->double_closes);
	if (n->finalized)
		pg_out_printf(&c->out, "; %lu of the closed by the interpreter's finalizer",
			      (unsigned long)n->finalized);
	if (pg_fdtab_lost())
		pg_out_printf(&c->out, "; %lu call(s) not recorded (lost)",
			      (unsigned long)pg_fdtab_lost());
	pg_out_puts(&c->out, ".\n\n");
	text_suppressions(c);
	pg_out_printf(&c->out, "SUMMARY: portguard: %lu socket(s) leaked from %lu call site(s).\n",
		      (unsigned long)c->leaked, (unsigned long)c->sites_leaking);
}

static void json_frames(struct ctx *c, uint32_t id)
{
	static struct mframe mf[PG_MFRAMES];
	const struct pg_site *s = id == PG_NO_STACK ? NULL : pg_sites_get(id);
	size_t n = s ? merged(c, s, mf, PG_MFRAMES) : 0;

	pg_out_puts(&c->out, "[");
	for (size_t k = 0; k < n; k++) {
		const struct mframe *f = &mf[k];
		if (k)
			pg_out_puts(&c->out, ", ");
		if (f->py) {
			pg_out_puts(&c->out, "{\"language\": \"python\"");
			if (f->py->function) {
				pg_out_puts(&c->out, ", \"function\": ");
				pg_out_json_str(&c->out, f->py->function);
			}
			if (f->py->file) {
				pg_out_puts(&c->out, ", \"file\": ");
				pg_out_json_str(&c->out, f->py->file);
			}
			if (f->py->line) {
				pg_out_puts(&c->out, ", \"line\": ");
				pg_out_long(&c->out, f->py->line);
			}
			pg_out_puts(&c->out, "}");
			continue;
		}
		pg_out_printf(&c->out, "{\"addr\": \"0x%lx\"", (unsigned long)f->addr);
		if (f->named && known_module(&f->sym)) {
			pg_out_puts(&c->out, ", \"module\": ");
			pg_out_json_str(&c->out, f->sym.module);
			pg_out_printf(&c->out, ", \"offset\": \"0x%lx\"",
				      (unsigned long)f->sym.offset);
		}
		if (f->named && f->sym.function) {
			pg_out_puts(&c->out, ", \"function\": ");
			pg_out_json_str(&c->out, f->sym.function);
		}
		if (f->named && f->sym.file && f->sym.line) {
			pg_out_puts(&c->out, ", \"file\": ");
			pg_out_json_str(&c->out, f->sym.file);
			pg_out_printf(&c->out, ", \"line\": %d", f->sym.line);
		}
		if (f->named && f->sym.inlined)
			pg_out_puts(&c->out, ", \"inlined\": true");
		pg_out_puts(&c->out, "}");
	}
	pg_out_puts(&c->out, "]");
}

static void json_descriptors(struct ctx *c, const struct rsock *r)
{
	pg_out_puts(&c->out, ", \"descriptors\": [");
	for (size_t i = 0; i < r->ndesc; i++) {
		const struct pg_snap *d = &c->snap[r->first_desc + i];
		pg_out_puts(&c->out, i ? ", {\"fd\": " : "{\"fd\": ");
		pg_out_long(&c->out, d->fd);
		pg_out_puts(&c->out, ", \"via\": \"");
		pg_out_puts(&c->out, pg_via_name(d->via));
		pg_out_puts(&c->out, "\"");
		if (d->desc_site) {
			pg_out_puts(&c->out, ", \"frames\": ");
			json_frames(c, d->desc_site);
		}
		pg_out_puts(&c->out, "}");
	}
	pg_out_puts(&c->out, "]");
}

/* , "key": "value" (value a name of ours: nothing to escape). */
static void json_name(struct ctx *c, const char *key, const char *value)
{
	if (!value)
		return;
	pg_out_puts(&c->out, ", \"");
	pg_out_puts(&c->out, key);
	pg_out_puts(&c->out, "\": \"");
	pg_out_puts(&c->out, value);
	pg_out_puts(&c->out, "\"");
}

static const char *json_bool(int v)
{
	return v ? "true" : "false";
}

/* Written without printf: a 20,000-socket report spent an eighth of its
 * time formatting these. */
static void json_socket(struct ctx *c, const struct rsock *r, int first)
{
	struct pg_sockinfo si;
	long age = age_ms(c, r);

	query(c, r, &si);
	if (r->flags & PG_SOCK_FINALIZED) {
		/* Closed: no descriptor, no inode, no address any more. */
		pg_out_puts(&c->out, first ? "{\"closed_by\": \"finalizer\", \"handles\": 0"
					   : ", {\"closed_by\": \"finalizer\", \"handles\": 0");
	} else {
		pg_out_puts(&c->out, first ? "{\"fd\": " : ", {\"fd\": ");
		pg_out_long(&c->out, r->fd);
		pg_out_puts(&c->out, ", \"handles\": ");
		pg_out_long(&c->out, r->nfds);
		pg_out_puts(&c->out, ", \"inode\": ");
		pg_out_ulong(&c->out, (unsigned long)r->inode);
	}
	json_name(c, "family", pg_sockinfo_family_name(si.domain));
	json_name(c, "type", pg_sockinfo_type_name(si.type));
	json_name(c, "protocol", pg_sockinfo_proto_name(si.domain, si.type, si.protocol));
	if (si.local[0]) {
		pg_out_puts(&c->out, ", \"local\": ");
		pg_out_json_str(&c->out, si.local);
	}
	if (si.remote[0]) {
		pg_out_puts(&c->out, ", \"remote\": ");
		pg_out_json_str(&c->out, si.remote);
	}
	json_name(c, "state", pg_sockinfo_tcp_state_name(si.tcp_state));
	pg_out_puts(&c->out, ", \"listening\": ");
	pg_out_puts(&c->out, json_bool(si.listening || (r->flags & PG_SOCK_LISTENING)));
	pg_out_puts(&c->out, ", \"inherited\": ");
	pg_out_puts(&c->out, json_bool(r->cls == PG_INHERITED));
	pg_out_puts(&c->out, ", \"untracked\": ");
	pg_out_puts(&c->out, json_bool(r->cls == PG_UNTRACKED));
	pg_out_puts(&c->out, ", \"leaked\": ");
	pg_out_puts(&c->out, json_bool(r->cls == PG_LEAKED));
	if (r->flags & PG_SOCK_RECEIVED)
		pg_out_puts(&c->out, ", \"received\": true");
	if (r->cls == PG_SUPPRESSED)
		pg_out_puts(&c->out, ", \"suppressed\": true");
	if (age >= 0) {
		pg_out_puts(&c->out, ", \"age_ms\": ");
		pg_out_long(&c->out, age);
	}
	if (r->ndesc)
		json_descriptors(c, r);
	pg_out_puts(&c->out, "}");
}

static void write_json(struct ctx *c)
{
	const struct pg_report_opts *o = c->o;
	const struct pg_counts *n = &c->cut.n;
	int first = 1;

	pg_out_printf(&c->out, "{\"portguard\": 1, \"pid\": %d, \"exe\": ", o->pid);
	pg_out_json_str(&c->out, o->exe);
	if (o->argv0 && o->argv0[0]) {
		pg_out_printf(&c->out, ", \"argv0\": ");
		pg_out_json_str(&c->out, o->argv0);
	}
	pg_out_printf(&c->out, ", \"reason\": \"%s\"", reason_name(o->reason));
	pg_out_printf(
	    &c->out,
	    ", \"totals\": {\"created\": %lu, \"inherited\": %lu, \"received\": %lu, "
	    "\"untracked\": %lu, \"closed\": %lu, \"closed_unseen\": %lu, \"open\": %lu, "
	    "\"leaked\": %lu, \"suppressed\": %lu, \"finalized\": %lu, \"double_closes\": "
	    "%lu, \"lost\": %lu}",
	    (unsigned long)n->created, (unsigned long)n->inherited, (unsigned long)n->received,
	    (unsigned long)c->untracked, (unsigned long)n->closed, (unsigned long)n->closed_unseen,
	    (unsigned long)c->open, (unsigned long)c->leaked, (unsigned long)c->suppressed,
	    (unsigned long)n->finalized, (unsigned long)n->double_closes,
	    (unsigned long)pg_fdtab_lost());
	pg_out_puts(&c->out, ", \"sites\": [");
	for (size_t i = 0; i < c->nsites; i++) {
		const struct rsite *s = &c->sites[i];
		pg_out_printf(&c->out, "%s{\"open\": %zu, \"leaked\": %lu, \"created\": %lu, ",
			      i ? ", " : "", s->n - s->fin, (unsigned long)s->leaked,
			      (unsigned long)site_created(s));
		if (s->fin) {
			pg_out_puts(&c->out, "\"finalized\": ");
			pg_out_ulong(&c->out, s->fin);
			pg_out_puts(&c->out, ", ");
		}
		pg_out_puts(&c->out, "\"frames\": ");
		json_frames(c, s->group);
		pg_out_puts(&c->out, ", \"sockets\": [");
		for (size_t j = s->first; j < s->first + s->n; j++)
			json_socket(c, &c->socks[j], j == s->first);
		pg_out_puts(&c->out, "]}");
	}
	pg_out_puts(&c->out, "], \"double_closes\": [");
	for (int i = 0; i < PG_SHARDS; i++) {
		for (const struct pg_dclose *d = c->cut.dcs[i]; d; d = d->next) {
			pg_out_printf(&c->out, "%s{\"fd\": %d, \"count\": %lu, \"created\": ",
				      first ? "" : ", ", d->fd,
				      (unsigned long)__atomic_load_n(&d->count, __ATOMIC_RELAXED));
			first = 0;
			json_frames(c, d->created ? d->created : PG_NO_STACK);
			pg_out_puts(&c->out, ", \"closed\": ");
			json_frames(c, d->closed);
			pg_out_puts(&c->out, ", \"closed_again\": ");
			json_frames(c, d->again);
			pg_out_puts(&c->out, "}");
		}
	}
	pg_out_puts(&c->out, "]");
	if (o->supp) {
		first = 1;
		pg_out_puts(&c->out, ", \"suppressions\": [");
		for (size_t i = 0; i < o->supp->n; i++) {
			if (!o->supp->rules[i].hits)
				continue;
			pg_out_printf(&c->out, "%s{\"pattern\": ", first ? "" : ", ");
			pg_out_json_str(&c->out, o->supp->rules[i].pattern);
			pg_out_printf(&c->out, ", \"line\": %u, \"count\": %lu}",
				      o->supp->rules[i].line,
				      (unsigned long)o->supp->rules[i].hits);
			first = 0;
		}
		pg_out_puts(&c->out, "]");
	}
	if (o->policy)
		pg_enforce_report(&c->out, 1);
	pg_out_puts(&c->out, "}\n");
}

int pg_report_write(const struct pg_report_opts *o, struct pg_report_result *res)
{
	size_t size;
	char *mem;
	struct ctx *c;
	int rc;

	/* An exit report with nothing to say, known from the counts alone (a
	 * forked child that only inherited its sockets): the kernel's table is
	 * not scanned; nothing it holds could be a leak of this process's. */
	if (o->reason == PG_REASON_EXIT && !o->events && pg_fdtab_nothing_own()) {
		if (res)
			memset(res, 0, sizeof(*res));
		return 0;
	}
	size = o->mem ? o->mem_size : pg_report_mem_for(pg_fdtab_size_hint() * 5 / 4 + 64);
	mem = o->mem ? o->mem : pg_arena_alloc(size);
	c = (struct ctx *)(((uintptr_t)mem + 15) & ~(uintptr_t)15);
	if (!mem || size < sizeof(*c) + 64)
		return -ENOMEM;
	memset(c, 0, sizeof(*c));
	c->o = o;
	c->mem = (char *)(c + 1);
	c->mem_end = mem + size;
	rc = gather(c);
	if (rc == 0) {
		gather_finalized(c);
		classify(c);
		rc = group(c);
	}
	/* The counts of the cut, and what reconciliation dropped since. */
	c->cut.n.closed_unseen += c->dropped_sockets;
	if (rc == 0) {
		/* Something to say: asked for (signal, dump); a leak, a double
		 * close, a policy event; or, but for a text report to a stream,
		 * sockets of its own (SPEC section 4: a process that only
		 * inherited sockets and leaked none writes nothing). */
		int matters = c->leaked || c->cut.n.double_closes || o->events;
		int own = c->cut.n.created + c->cut.n.received > 0;
		int say = o->reason != PG_REASON_EXIT || matters ||
			  (own && !(o->quiet_if_clean && o->cfg->format != PG_FORMAT_JSON));
		int fd = say ? (o->fd >= 0 || !o->open_fd ? o->fd : o->open_fd(o->open_arg)) : -1;
		if (say && fd < 0 && o->open_fd)
			say = 0; /* nowhere to write: the caller said why */
		if (say) {
			pg_out_init(&c->out, fd);
			if (!c->sym)
				c->sym = pg_sym_open(o->symbolize);
			if (o->cfg->format == PG_FORMAT_JSON)
				write_json(c);
			else
				write_text(c);
			rc = pg_out_flush(&c->out);
		}
		if (c->sym)
			pg_sym_close(c->sym);
		if (res) {
			res->open = c->open;
			res->leaked = c->leaked;
			res->suppressed = c->suppressed;
			res->untracked = c->untracked;
			res->sites_leaking = c->sites_leaking;
			res->written = say;
		}
	}
	if (!o->mem)
		pg_arena_free(mem, size);
	return rc;
}
