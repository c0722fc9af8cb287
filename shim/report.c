/* The report. Order of work: snapshot the registry (under its locks, briefly),
 * reconcile with the kernel (descriptors gone or now naming another inode are
 * dropped as closed_unseen), list sockets nobody told us about (untracked),
 * classify, group by call site, write. Nothing here holds a registry lock
 * while it makes a syscall. */
#include "shim/report.h"

#include "shim/common.h"
#include "shim/out.h"
#include "shim/registry.h"
#include "shim/sockinfo.h"
#include "shim/suppress.h"
#include "shim/symbolize.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#define PG_TEXT_SOCKETS_PER_SITE 20

enum pg_class {
	PG_LEAKED,
	PG_INHERITED,
	PG_UNTRACKED,
	PG_SUPPRESSED,
	PG_LISTENING, /* excused by ignore_listening */
	PG_YOUNG, /* excused by min_age_ms */
};

static const char *const class_names[] = {
	"leaked",
	"inherited",
	"untracked",
	"suppressed",
	"listening (ignore_listening=1)",
	"younger than min_age_ms",
};

struct rsock {
	uint64_t inode;
	const struct pg_site *site; /* NULL: no stack (inherited at load, untracked) */
	int64_t created_ns; /* 0: unknown */
	unsigned flags;
	int fd, nfds;
	int domain, type, protocol;
	int cls;
};

struct rsite {
	const struct pg_site *site;
	size_t first, n; /* range in the sorted socket array */
	uint64_t leaked;
};

struct ctx {
	const struct pg_report_opts *o;
	struct pg_out out;
	struct pg_symbolizer *sym;
	struct rsock *socks;
	size_t nsocks;
	struct rsite *sites;
	size_t nsites;
	struct pg_totals t;
	uint64_t untracked, leaked, suppressed, class_count[6];
	uint64_t sites_leaking;
};

static int cmp_snap_inode(const void *a, const void *b)
{
	const struct pg_snap *x = a, *y = b;

	if (x->inode != y->inode)
		return x->inode < y->inode ? -1 : 1;
	return x->fd - y->fd;
}

static int cmp_int(const void *a, const void *b)
{
	return *(const int *)a - *(const int *)b;
}

static int cmp_rsock_inode(const void *a, const void *b)
{
	const struct rsock *x = a, *y = b;

	return x->inode < y->inode ? -1 : x->inode > y->inode;
}

/* Sockets of one site together; the stackless ones (site NULL) last. */
static int cmp_rsock_site(const void *a, const void *b)
{
	const struct rsock *x = a, *y = b;
	uint32_t ix = x->site ? x->site->id : UINT32_MAX, iy = y->site ? y->site->id : UINT32_MAX;

	if (ix != iy)
		return ix < iy ? -1 : 1;
	return x->fd - y->fd;
}

static int cmp_rsite(const void *a, const void *b)
{
	const struct rsite *x = a, *y = b;

	if (x->leaked != y->leaked)
		return x->leaked > y->leaked ? -1 : 1;
	if (x->n != y->n)
		return x->n > y->n ? -1 : 1;
	if (!x->site || !y->site)
		return !x->site - !y->site;
	return x->site->id < y->site->id ? -1 : 1;
}

struct untracked_scan {
	struct ctx *c;
	const int *live_fds;
	size_t nlive;
	struct rsock *extra; /* untracked sockets found */
	size_t nextra, cap;
};

/* A live handle we know: no need to look at it again. */
static int known_fd(int fd, void *arg)
{
	const struct untracked_scan *u = arg;

	return bsearch(&fd, u->live_fds, u->nlive, sizeof(int), cmp_int) != NULL;
}

static void on_scanned_fd(int fd, uint64_t inode, void *arg)
{
	struct untracked_scan *u = arg;
	struct rsock key = { .inode = inode }, *hit;

	/* Another handle of a socket we know (made where we could not see,
	 * e.g. received over SCM_RIGHTS from ourselves). */
	hit = bsearch(&key, u->c->socks, u->c->nsocks, sizeof(*hit), cmp_rsock_inode);
	if (hit) {
		hit->nfds++;
		return;
	}
	for (size_t i = 0; i < u->nextra; i++) {
		if (u->extra[i].inode == inode) {
			u->extra[i].nfds++;
			return;
		}
	}
	if (u->nextra == u->cap) {
		size_t ncap = u->cap ? u->cap * 2 : 16;
		struct rsock *n = pg_realloc(u->extra, ncap * sizeof(*n));
		if (!n)
			return;
		u->extra = n;
		u->cap = ncap;
	}
	memset(&u->extra[u->nextra], 0, sizeof(u->extra[0]));
	u->extra[u->nextra].inode = inode;
	u->extra[u->nextra].fd = fd;
	u->extra[u->nextra].nfds = 1;
	u->extra[u->nextra].domain = -1;
	u->nextra++;
}

/* Snapshot, reconcile, add untracked: fills c->socks. */
static int gather(struct ctx *c)
{
	const struct pg_report_opts *o = c->o;
	struct pg_snap *snap;
	size_t n, live = 0;
	int rc;

	rc = pg_registry_snapshot(&snap, &n);
	if (rc < 0)
		return rc;
	if (o->kernel) {
		for (size_t i = 0; i < n; i++) {
			if (!pg_registry_reconcile(
				&snap[i], pg_sockinfo_identity(snap[i].fd, snap[i].inode,
							       snap[i].domain, snap[i].type)))
				continue;
			snap[live++] = snap[i];
		}
		n = live;
	}
	qsort(snap, n, sizeof(*snap), cmp_snap_inode);
	c->socks = pg_calloc(n ? n : 1, sizeof(*c->socks));
	if (!c->socks) {
		pg_free(snap);
		return -ENOMEM;
	}
	for (size_t i = 0; i < n; i++) {
		struct rsock *r;
		if (c->nsocks && c->socks[c->nsocks - 1].inode == snap[i].inode && snap[i].inode) {
			c->socks[c->nsocks - 1].nfds++;
			continue;
		}
		r = &c->socks[c->nsocks++];
		r->inode = snap[i].inode;
		r->site = snap[i].site;
		r->created_ns = snap[i].created_ns;
		r->flags = snap[i].flags;
		r->fd = snap[i].fd;
		r->nfds = 1;
		r->domain = snap[i].domain;
		r->type = snap[i].type;
		r->protocol = snap[i].protocol;
	}
	if (o->kernel) {
		struct untracked_scan u = { .c = c };
		int *fds = pg_alloc((n ? n : 1) * sizeof(int));
		if (fds) {
			for (size_t i = 0; i < n; i++)
				fds[i] = snap[i].fd;
			qsort(fds, n, sizeof(int), cmp_int);
			u.live_fds = fds;
			u.nlive = n;
			pg_sockinfo_scan(on_scanned_fd, known_fd, &u, o->close_fn);
			pg_free(fds);
		}
		if (u.nextra) {
			struct rsock *all =
			    pg_realloc(c->socks, (c->nsocks + u.nextra) * sizeof(*all));
			if (all) {
				c->socks = all;
				for (size_t i = 0; i < u.nextra; i++) {
					u.extra[i].cls = PG_UNTRACKED;
					c->socks[c->nsocks++] = u.extra[i];
				}
				c->untracked = u.nextra;
			}
		}
		pg_free(u.extra);
	}
	pg_free(snap);
	return 0;
}

static int is_listening(const struct ctx *c, const struct rsock *r)
{
	int v = 0;
	socklen_t l = sizeof(v);

	if (r->flags & PG_SOCK_LISTENING)
		return 1;
	if (c->o->kernel && !getsockopt(r->fd, SOL_SOCKET, SO_ACCEPTCONN, &v, &l))
		return v != 0;
	return 0;
}

static void classify(struct ctx *c)
{
	const struct pg_config *cfg = c->o->cfg;

	for (size_t i = 0; i < c->nsocks; i++) {
		struct rsock *r = &c->socks[i];
		if (r->cls == PG_UNTRACKED)
			;
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

/* Sites whose frames match a suppression: their leaks become suppressed.
 * Matching needs names, so the symbolizer is opened here when there are
 * suppressions at all. */
static void suppress(struct ctx *c)
{
	struct pg_suppress_frame fr[PG_MAX_DEPTH * 4];
	struct pg_sym sy[8];

	if (!c->o->supp || !c->o->supp->n)
		return;
	pg_suppress_reset_hits(c->o->supp);
	for (size_t i = 0; i < c->nsites; i++) {
		struct rsite *st = &c->sites[i];
		size_t n = 0;
		if (!st->leaked || !st->site)
			continue;
		if (!c->sym)
			c->sym = pg_sym_open(c->o->cfg->symbolize);
		for (uint32_t f = 0; f < st->site->depth; f++) {
			int k = pg_sym_lookup(c->sym, st->site->frames[f], 1, sy, 8);
			for (int j = 0; j < k && n < PG_ARRAY_LEN(fr); j++) {
				fr[n].function = sy[j].function;
				fr[n].module = sy[j].module;
				fr[n].file = sy[j].file;
				n++;
			}
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
	qsort(c->socks, c->nsocks, sizeof(*c->socks), cmp_rsock_site);
	c->sites = pg_calloc(c->nsocks ? c->nsocks : 1, sizeof(*c->sites));
	if (!c->sites)
		return -ENOMEM;
	for (size_t i = 0; i < c->nsocks; i++) {
		struct rsock *r = &c->socks[i];
		struct rsite *s = c->nsites ? &c->sites[c->nsites - 1] : NULL;
		if (!s || s->site != r->site) {
			s = &c->sites[c->nsites++];
			s->site = r->site;
			s->first = i;
		}
		s->n++;
		if (r->cls == PG_LEAKED)
			s->leaked++;
	}
	suppress(c);
	qsort(c->sites, c->nsites, sizeof(*c->sites), cmp_rsite);
	for (size_t i = 0; i < c->nsites; i++)
		if (c->sites[i].leaked)
			c->sites_leaking++;
	c->leaked = c->class_count[PG_LEAKED];
	c->suppressed = c->class_count[PG_SUPPRESSED];
	return 0;
}

/* ---- writing ---- */

static void query(const struct ctx *c, const struct rsock *r, struct pg_sockinfo *si)
{
	if (c->o->kernel) {
		si->domain = r->domain;
		si->type = r->type;
		si->protocol = r->protocol;
		pg_sockinfo_query(r->fd, si);
	} else {
		memset(si, 0, sizeof(*si));
		si->domain = r->domain;
		si->type = r->type;
		si->protocol = r->protocol;
	}
}

static long age_ms(const struct ctx *c, const struct rsock *r)
{
	if (!r->created_ns)
		return -1;
	return (long)((c->o->now_ns - r->created_ns) / 1000000);
}

static int known_module(const struct pg_sym *sy)
{
	return sy->module && strcmp(sy->module, "?") != 0;
}

static void text_frames(struct ctx *c, const struct pg_site *s, const char *indent)
{
	struct pg_sym sy[8];
	int k = 0;

	if (!s || s->depth == 0) {
		pg_out_printf(&c->out, "%s<no stack%s>\n", indent, s ? ": stack_depth=0" : "");
		return;
	}
	for (uint32_t i = 0; i < s->depth; i++) {
		int n = c->sym ? pg_sym_lookup(c->sym, s->frames[i], 1, sy, 8) : 0;
		if (n <= 0) {
			pg_out_printf(&c->out, "%s#%d 0x%lx\n", indent, k++,
				      (unsigned long)s->frames[i]);
			continue;
		}
		for (int j = 0; j < n; j++) {
			pg_out_printf(&c->out, "%s#%d 0x%lx", indent, k++,
				      (unsigned long)s->frames[i]);
			if (sy[j].function)
				pg_out_printf(&c->out, " in %s", sy[j].function);
			if (sy[j].file && sy[j].line)
				pg_out_printf(&c->out, " %s:%d", sy[j].file, sy[j].line);
			else if (known_module(&sy[j]))
				pg_out_printf(&c->out, " (%s+0x%lx)", sy[j].module,
					      (unsigned long)sy[j].offset);
			else
				pg_out_puts(&c->out, " (<unknown module>)");
			pg_out_puts(&c->out, "\n");
		}
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
}

static void text_site(struct ctx *c, const struct rsite *s)
{
	size_t shown = 0;

	if (s->leaked)
		pg_out_printf(&c->out, "Leak of %lu socket(s) (%zu open", (unsigned long)s->leaked,
			      s->n);
	else
		pg_out_printf(&c->out, "Open, not counted as leaked: %zu socket(s) (", s->n);
	if (s->site)
		pg_out_printf(&c->out, "%s%lu created here) from:\n", s->leaked ? ", " : "",
			      (unsigned long)__atomic_load_n(&s->site->created, __ATOMIC_RELAXED));
	else
		pg_out_printf(&c->out, "%sno creation stack):\n", s->leaked ? ", " : "");
	text_frames(c, s->site, "    ");
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

static void write_text(struct ctx *c)
{
	const struct pg_report_opts *o = c->o;
	const struct pg_double_close *d;

	pg_out_printf(&c->out, "==%d==portguard: %s report of %s\n\n", o->pid,
		      o->reason == PG_REASON_EXIT ? "exit" : "signal", o->exe ? o->exe : "?");
	for (size_t i = 0; i < c->nsites; i++)
		text_site(c, &c->sites[i]);
	for (d = pg_registry_double_closes(); d; d = d->next) {
		pg_out_printf(&c->out, "Double close of fd %d (%lu time(s)); closed again at:\n",
			      d->fd, (unsigned long)__atomic_load_n(&d->count, __ATOMIC_RELAXED));
		text_frames(c, d->closed_again, "    ");
		pg_out_puts(&c->out, "  first closed at:\n");
		text_frames(c, d->closed, "    ");
		pg_out_puts(&c->out, "  created at:\n");
		text_frames(c, d->created, "    ");
		pg_out_puts(&c->out, "\n");
	}
	if (o->extra)
		o->extra(o->extra_arg, &c->out, 0);
	pg_out_printf(&c->out,
		      "Totals: %lu created, %lu inherited, %lu untracked; %lu closed, %lu closed "
		      "unseen; %lu open, %lu leaked, %lu suppressed; %lu double close(s)",
		      (unsigned long)c->t.created, (unsigned long)c->t.inherited,
		      (unsigned long)c->untracked, (unsigned long)c->t.closed,
		      (unsigned long)c->t.closed_unseen, (unsigned long)c->nsocks,
		      (unsigned long)c->leaked, (unsigned long)c->suppressed,
		      (unsigned long)c->t.double_closes);
	if (c->t.lost)
		pg_out_printf(&c->out, "; %lu record(s) lost to memory exhaustion",
			      (unsigned long)c->t.lost);
	pg_out_puts(&c->out, ".\n\n");
	text_suppressions(c);
	pg_out_printf(&c->out, "SUMMARY: portguard: %lu socket(s) leaked from %lu call site(s).\n",
		      (unsigned long)c->leaked, (unsigned long)c->sites_leaking);
}

static void json_frames(struct ctx *c, const struct pg_site *s)
{
	struct pg_sym sy[8];
	int first = 1;

	pg_out_puts(&c->out, "[");
	for (uint32_t i = 0; s && i < s->depth; i++) {
		int n = c->sym ? pg_sym_lookup(c->sym, s->frames[i], 1, sy, 8) : 0;
		if (n <= 0) {
			pg_out_printf(&c->out, "%s{\"addr\": \"0x%lx\"}", first ? "" : ", ",
				      (unsigned long)s->frames[i]);
			first = 0;
			continue;
		}
		for (int j = 0; j < n; j++) {
			pg_out_printf(&c->out, "%s{\"addr\": \"0x%lx\"", first ? "" : ", ",
				      (unsigned long)s->frames[i]);
			first = 0;
			if (known_module(&sy[j])) {
				pg_out_puts(&c->out, ", \"module\": ");
				pg_out_json_str(&c->out, sy[j].module);
				pg_out_printf(&c->out, ", \"offset\": \"0x%lx\"",
					      (unsigned long)sy[j].offset);
			}
			if (sy[j].function) {
				pg_out_puts(&c->out, ", \"function\": ");
				pg_out_json_str(&c->out, sy[j].function);
			}
			if (sy[j].file && sy[j].line) {
				pg_out_puts(&c->out, ", \"file\": ");
				pg_out_json_str(&c->out, sy[j].file);
				pg_out_printf(&c->out, ", \"line\": %d", sy[j].line);
			}
			if (sy[j].inlined)
				pg_out_puts(&c->out, ", \"inlined\": true");
			pg_out_puts(&c->out, "}");
		}
	}
	pg_out_puts(&c->out, "]");
}

static void json_socket(struct ctx *c, const struct rsock *r, int first)
{
	struct pg_sockinfo si;
	const char *s;
	long age = age_ms(c, r);

	query(c, r, &si);
	pg_out_printf(&c->out, "%s{\"fd\": %d, \"handles\": %d, \"inode\": %lu", first ? "" : ", ",
		      r->fd, r->nfds, (unsigned long)r->inode);
	if ((s = pg_sockinfo_family_name(si.domain)))
		pg_out_printf(&c->out, ", \"family\": \"%s\"", s);
	if ((s = pg_sockinfo_type_name(si.type)))
		pg_out_printf(&c->out, ", \"type\": \"%s\"", s);
	if ((s = pg_sockinfo_proto_name(si.domain, si.type, si.protocol)))
		pg_out_printf(&c->out, ", \"protocol\": \"%s\"", s);
	if (si.local[0]) {
		pg_out_puts(&c->out, ", \"local\": ");
		pg_out_json_str(&c->out, si.local);
	}
	if (si.remote[0]) {
		pg_out_puts(&c->out, ", \"remote\": ");
		pg_out_json_str(&c->out, si.remote);
	}
	if ((s = pg_sockinfo_tcp_state_name(si.tcp_state)))
		pg_out_printf(&c->out, ", \"state\": \"%s\"", s);
	pg_out_printf(
	    &c->out, ", \"listening\": %s, \"inherited\": %s, \"untracked\": %s, \"leaked\": %s",
	    si.listening || (r->flags & PG_SOCK_LISTENING) ? "true" : "false",
	    r->cls == PG_INHERITED ? "true" : "false", r->cls == PG_UNTRACKED ? "true" : "false",
	    r->cls == PG_LEAKED ? "true" : "false");
	if (r->cls == PG_SUPPRESSED)
		pg_out_puts(&c->out, ", \"suppressed\": true");
	if (age >= 0)
		pg_out_printf(&c->out, ", \"age_ms\": %ld", age);
	pg_out_puts(&c->out, "}");
}

static void write_json(struct ctx *c)
{
	const struct pg_report_opts *o = c->o;
	const struct pg_double_close *d;

	pg_out_printf(&c->out, "{\"portguard\": 1, \"pid\": %d, \"exe\": ", o->pid);
	pg_out_json_str(&c->out, o->exe);
	pg_out_printf(&c->out, ", \"reason\": \"%s\"",
		      o->reason == PG_REASON_EXIT ? "exit" : "signal");
	pg_out_printf(&c->out,
		      ", \"totals\": {\"created\": %lu, \"closed\": %lu, \"closed_unseen\": %lu, "
		      "\"open\": %lu, \"leaked\": %lu, \"suppressed\": %lu, \"inherited\": %lu, "
		      "\"untracked\": %lu, \"double_closes\": %lu, \"lost\": %lu}",
		      (unsigned long)c->t.created, (unsigned long)c->t.closed,
		      (unsigned long)c->t.closed_unseen, (unsigned long)c->nsocks,
		      (unsigned long)c->leaked, (unsigned long)c->suppressed,
		      (unsigned long)c->t.inherited, (unsigned long)c->untracked,
		      (unsigned long)c->t.double_closes, (unsigned long)c->t.lost);
	pg_out_puts(&c->out, ", \"sites\": [");
	for (size_t i = 0; i < c->nsites; i++) {
		const struct rsite *s = &c->sites[i];
		pg_out_printf(
		    &c->out, "%s{\"open\": %zu, \"leaked\": %lu, \"created\": %lu, \"frames\": ",
		    i ? ", " : "", s->n, (unsigned long)s->leaked,
		    (unsigned long)(s->site ? __atomic_load_n(&s->site->created, __ATOMIC_RELAXED)
					    : 0));
		json_frames(c, s->site);
		pg_out_puts(&c->out, ", \"sockets\": [");
		for (size_t j = s->first; j < s->first + s->n; j++)
			json_socket(c, &c->socks[j], j == s->first);
		pg_out_puts(&c->out, "]}");
	}
	pg_out_puts(&c->out, "], \"double_closes\": [");
	for (d = pg_registry_double_closes(); d; d = d->next) {
		pg_out_printf(&c->out, "%s{\"fd\": %d, \"count\": %lu, \"created\": ",
			      d == pg_registry_double_closes() ? "" : ", ", d->fd,
			      (unsigned long)__atomic_load_n(&d->count, __ATOMIC_RELAXED));
		json_frames(c, d->created);
		pg_out_puts(&c->out, ", \"closed\": ");
		json_frames(c, d->closed);
		pg_out_puts(&c->out, ", \"closed_again\": ");
		json_frames(c, d->closed_again);
		pg_out_puts(&c->out, "}");
	}
	pg_out_puts(&c->out, "]");
	if (o->supp) {
		int first = 1;
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
	if (o->extra)
		o->extra(o->extra_arg, &c->out, 1);
	pg_out_puts(&c->out, "}\n");
}

int pg_report_write(const struct pg_report_opts *o, struct pg_report_result *res)
{
	struct ctx *c = pg_calloc(1, sizeof(*c));
	int rc;

	if (!c)
		return -ENOMEM;
	c->o = o;
	pg_out_init(&c->out, o->fd);
	rc = gather(c);
	if (rc == 0) {
		classify(c);
		rc = group(c);
	}
	/* Totals after reconciliation, which may have moved sockets to
	 * closed_unseen. */
	pg_registry_totals(&c->t);
	if (rc == 0) {
		int say = o->cfg->format == PG_FORMAT_JSON || !o->quiet_if_clean || c->leaked ||
			  c->t.double_closes || o->extra_events;
		if (say) {
			if (!c->sym)
				c->sym = pg_sym_open(o->cfg->symbolize);
			if (o->cfg->format == PG_FORMAT_JSON)
				write_json(c);
			else
				write_text(c);
			rc = pg_out_flush(&c->out);
		}
		if (c->sym)
			pg_sym_close(c->sym);
		if (res) {
			res->open = c->nsocks;
			res->leaked = c->leaked;
			res->suppressed = c->suppressed;
			res->untracked = c->untracked;
			res->sites_leaking = c->sites_leaking;
			res->written = say;
		}
	}
	pg_free(c->socks);
	pg_free(c->sites);
	pg_free(c);
	return rc;
}
