#include "shim/enforce.h"

#include "common/names.h"
#include "policy/policy.h"
#include "shim/common.h"
#include "shim/out.h"
#include "shim/sockinfo.h"
#include "shim/symbolize.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/tcp.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "shim/hash.h"

#define PG_MAX_DESTS 4096

unsigned pg_enforce_what;

static struct pg_policy pol;
static char pol_file[PATH_MAX];
static char pol_error[PATH_MAX + 256];
static int verbosity;
static uint32_t range_size;
static int tw_reuse = -1;

/* Pool: connected sockets per rule, and the waiters of mode=block. */
static pthread_mutex_t pool_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t pool_cond = PTHREAD_COND_INITIALIZER;
static uint32_t in_use[PG_POLICY_POOL_MAX];

struct pg_counters {
	unsigned long reuseaddr, reuseport, bind_no_port, pool_waits, pool_denials, events;
};
static struct pg_counters counters;

/* Churn per destination: created on the first connect, never freed (the
 * sockets point at them), at most PG_MAX_DESTS. */
struct pg_dest_stats {
	UT_hash_handle hh;
	struct pg_policy_dest key;
	struct pg_churn churn;
};
static pthread_mutex_t dest_lock = PTHREAD_MUTEX_INITIALIZER;
static struct pg_dest_stats *dests;
static unsigned ndests;

/* Events already said: one per kind, destination and call site. */
struct pg_seen_key {
	int kind;
	struct pg_policy_dest dest;
	const void *site;
};
struct pg_seen {
	UT_hash_handle hh;
	struct pg_seen_key key;
};
static pthread_mutex_t seen_lock = PTHREAD_MUTEX_INITIALIZER;
static struct pg_seen *seen;

enum { EV_POOL_WAIT, EV_POOL_DENIED, EV_POOL_WARN, EV_CHURN };
static const char *const ev_names[] = { "pool_wait", "pool_denied", "pool_limit", "churn" };

static void add(unsigned long *c)
{
	__atomic_add_fetch(c, 1, __ATOMIC_RELAXED);
}

static unsigned long get(const unsigned long *c)
{
	return __atomic_load_n(c, __ATOMIC_RELAXED);
}

static int read_small(const char *path, char *buf, size_t size)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
	ssize_t n;

	if (fd < 0)
		return -1;
	n = read(fd, buf, size - 1);
	close(fd);
	if (n < 0)
		return -1;
	buf[n] = 0;
	return 0;
}

static void read_kernel_facts(void)
{
	char buf[64];
	unsigned lo, hi;

	range_size = 0;
	if (!read_small("/proc/sys/net/ipv4/ip_local_port_range", buf, sizeof(buf)) &&
	    sscanf(buf, "%u %u", &lo, &hi) == 2 && hi >= lo)
		range_size = hi - lo + 1;
	if (!read_small("/proc/sys/net/ipv4/tcp_tw_reuse", buf, sizeof(buf)))
		tw_reuse = buf[0] - '0';
}

static void release(uint32_t pool, void *dest)
{
	(void)dest;
	if (!pool)
		return;
	pthread_mutex_lock(&pool_lock);
	if (in_use[pool - 1] > 0)
		in_use[pool - 1]--;
	pthread_cond_broadcast(&pool_cond);
	pthread_mutex_unlock(&pool_lock);
}

int pg_enforce_load(const struct pg_config *cfg, const char **err)
{
	int rc = 0;

	verbosity = cfg->verbosity;
	pg_policy_init(&pol);
	if (cfg->policy[0]) {
		size_t len = 0;
		struct pg_policy parsed;
		const char *why;
		/* A policy file is small; the parser caps lines anyway. */
		char *text = pg_read_file(cfg->policy, 1 << 20, &len, &why);

		snprintf(pol_file, sizeof(pol_file), "%s", cfg->policy);
		if (!text) {
			snprintf(pol_error, sizeof(pol_error), "%s: cannot read: %s", cfg->policy,
				 why);
			rc = -EINVAL;
		} else if (pg_policy_parse(&parsed, text, len, cfg->policy, pol_error,
					   sizeof(pol_error)) < 0) {
			rc = -EINVAL;
		} else {
			pol = parsed;
		}
		pg_free(text);
	}
	/* Shorthands add to a valid file; an invalid file applies nothing. */
	if (rc == 0) {
		pg_policy_set_flag(&pol, "reuseaddr", cfg->reuseaddr);
		pg_policy_set_flag(&pol, "reuseport", cfg->reuseport);
		pg_policy_set_flag(&pol, "bind_no_port", cfg->bind_no_port);
	}
	pg_enforce_what = 0;
	if (pol.flag[PG_POLICY_REUSEADDR] || pol.flag[PG_POLICY_REUSEPORT] ||
	    pol.flag[PG_POLICY_BIND_NO_PORT])
		pg_enforce_what |= PG_ENFORCE_BIND;
	if (pol.npool || pol.churn_warn_per_sec)
		pg_enforce_what |= PG_ENFORCE_CONNECT;
	if (pol.churn_warn_per_sec)
		pg_enforce_what |= PG_ENFORCE_CHURN;
	if (pg_enforce_what)
		pg_registry_set_release(release);
	read_kernel_facts();
	*err = rc ? pol_error : NULL;
	return rc;
}

static int sockopt_on(int fd, int level, int opt)
{
	int v = 0;
	socklen_t l = sizeof(v);

	return getsockopt(fd, level, opt, &v, &l) == 0 && v != 0;
}

static int set_on(int fd, int level, int opt)
{
	int one = 1;

	return setsockopt(fd, level, opt, &one, sizeof(one)) == 0;
}

static void socket_kind(int fd, int *type, int *protocol)
{
	struct pg_conn conn;
	socklen_t l = sizeof(int);

	if (pg_registry_get_conn(fd, &conn) == 0 && conn.type >= 0) {
		*type = conn.type;
		*protocol = conn.protocol;
		return;
	}
	/* Untracked, or accepted (kind not recorded): ask the kernel. */
	if (getsockopt(fd, SOL_SOCKET, SO_TYPE, type, &l) < 0)
		*type = -1;
	l = sizeof(int);
	if (getsockopt(fd, SOL_SOCKET, SO_PROTOCOL, protocol, &l) < 0)
		*protocol = -1;
}

/* The program's address, if it can be read: a bad pointer must reach the
 * kernel, which returns EFAULT, never crash us first. */
static int copy_addr(const struct sockaddr *addr, socklen_t len, struct sockaddr_storage *ss,
		     socklen_t *n)
{
	*n = len < sizeof(*ss) ? len : (socklen_t)sizeof(*ss);
	if (!addr || *n < sizeof(sa_family_t) || !pg_mem_readable(addr, *n))
		return -EFAULT;
	memcpy(ss, addr, *n);
	return 0;
}

void pg_enforce_bind(int fd, const struct sockaddr *uaddr, socklen_t ulen)
{
	struct sockaddr_storage ss;
	const struct sockaddr *addr = (const struct sockaddr *)&ss;
	socklen_t len;
	int type, protocol;
	unsigned want;

	if (copy_addr(uaddr, ulen, &ss, &len) < 0)
		return;
	socket_kind(fd, &type, &protocol);
	want = pg_policy_decide_bind(&pol, type, protocol, addr, len);
	/* Only what the socket lacks, and every application counted. */
	if ((want & PG_BIND_SET_REUSEADDR) && !sockopt_on(fd, SOL_SOCKET, SO_REUSEADDR) &&
	    set_on(fd, SOL_SOCKET, SO_REUSEADDR))
		add(&counters.reuseaddr);
	if ((want & PG_BIND_SET_REUSEPORT) && !sockopt_on(fd, SOL_SOCKET, SO_REUSEPORT) &&
	    set_on(fd, SOL_SOCKET, SO_REUSEPORT))
		add(&counters.reuseport);
	if ((want & PG_BIND_SET_NO_PORT) && !sockopt_on(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT) &&
	    set_on(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT))
		add(&counters.bind_no_port);
}

/* ---- events ---- */

static int first_time(int kind, const struct pg_policy_dest *d, const void *site)
{
	struct pg_seen_key k;
	struct pg_seen *s;
	int fresh = 0;

	if (verbosity >= 2)
		return 1;
	memset(&k, 0, sizeof(k));
	k.kind = kind;
	k.dest = *d;
	k.site = site;
	pthread_mutex_lock(&seen_lock);
	HASH_FIND(hh, seen, &k, sizeof(k), s);
	if (!s && (s = pg_calloc(1, sizeof(*s)))) {
		s->key = k;
		pg_hash_oom = 0;
		HASH_ADD(hh, seen, key, sizeof(k), s);
		if (pg_hash_oom)
			pg_free(s);
		fresh = 1;
	}
	pthread_mutex_unlock(&seen_lock);
	return fresh;
}

/* The call site, short, for one line: a few frames, names from the symbol
 * tables only (no debug information loaded inside connect()). */
static void site_text(const struct pg_site *site, struct pg_out *t, struct pg_out *j)
{
	struct pg_symbolizer *sym = pg_sym_open(0);
	struct pg_sym sy;
	unsigned n = site ? (site->depth < 4 ? site->depth : 4) : 0;

	pg_out_puts(j, ", \"frames\": [");
	for (unsigned i = 0; i < n; i++) {
		int k = sym ? pg_sym_lookup(sym, site->frames[i], 1, &sy, 1) : 0;
		pg_out_printf(t, "%s#%u 0x%lx", i ? " " : "", i, (unsigned long)site->frames[i]);
		pg_out_printf(j, "%s{\"addr\": \"0x%lx\"", i ? ", " : "",
			      (unsigned long)site->frames[i]);
		if (k > 0 && sy.function)
			pg_out_printf(t, " in %s", sy.function);
		if (k > 0 && sy.module && strcmp(sy.module, "?")) {
			const char *base = strrchr(sy.module, '/');
			pg_out_printf(t, " (%s+0x%lx)", base ? base + 1 : sy.module,
				      (unsigned long)sy.offset);
			pg_out_puts(j, ", \"module\": ");
			pg_out_json_str(j, sy.module);
			pg_out_printf(j, ", \"offset\": \"0x%lx\"", (unsigned long)sy.offset);
		}
		if (k > 0 && sy.function) {
			pg_out_puts(j, ", \"function\": ");
			pg_out_json_str(j, sy.function);
		}
		pg_out_puts(j, "}");
	}
	pg_out_puts(j, "]");
	if (!n)
		pg_out_puts(t, "(no stack)");
	if (sym)
		pg_sym_close(sym);
}

struct pg_event {
	struct pg_out t, j;
};

static struct pg_event *event_begin(int kind, const struct pg_policy_dest *d)
{
	struct pg_event *e = pg_alloc(sizeof(*e));
	char dest[PG_POLICY_DEST_STRLEN];

	if (!e)
		return NULL;
	pg_out_init(&e->t, -1);
	pg_out_init(&e->j, -1);
	pg_policy_format_dest(d, dest, sizeof(dest));
	pg_out_printf(&e->t, "portguard: %s: %s: ", ev_names[kind], dest);
	pg_out_printf(&e->j,
		      "{\"portguard\": 1, \"pid\": %d, \"event\": \"%s\", \"remote\": \"%s\"",
		      (int)getpid(), ev_names[kind], dest);
	return e;
}

static void event_end(struct pg_event *e, const struct pg_site *site)
{
	if (!e)
		return;
	pg_out_puts(&e->t, "; at ");
	site_text(site, &e->t, &e->j);
	pg_out_write(&e->t, "", 1);
	pg_out_puts(&e->j, "}");
	pg_out_write(&e->j, "", 1);
	add(&counters.events);
	if (verbosity >= 1)
		pg_track_emit_event(e->t.buf, e->j.buf);
	pg_free(e);
}

static void pool_event(int kind, int rule, const struct pg_policy_dest *d, uint32_t used,
		       const struct pg_site *site)
{
	const struct pg_policy_pool *p = &pol.pool[rule];
	struct pg_event *e;
	char pat[PG_POLICY_DEST_STRLEN];

	if (!first_time(kind, d, site))
		return;
	e = event_begin(kind, d);
	if (!e)
		return;
	pg_policy_format_dest(&p->dest, pat, sizeof(pat));
	pg_out_printf(&e->t, "%u of max=%u connections in use (rule %s:%u: pool %s mode=%s)", used,
		      p->max, pol_file, p->line, pat, pg_policy_mode_name(p->mode));
	if (kind == EV_POOL_DENIED)
		pg_out_puts(&e->t, "; connect failed with EADDRNOTAVAIL");
	else if (kind == EV_POOL_WAIT)
		pg_out_printf(&e->t, "; waiting up to %u ms", p->wait_ms);
	else
		pg_out_puts(&e->t, "; allowed (mode=warn)");
	pg_out_printf(&e->j,
		      ", \"rule\": \"%s:%u\", \"pattern\": \"%s\", \"mode\": \"%s\", \"max\": %u, "
		      "\"in_use\": %u",
		      pol_file, p->line, pat, pg_policy_mode_name(p->mode), p->max, used);
	event_end(e, site);
}

/* ---- connect ---- */

static int is_tcp(int fd)
{
	int type, protocol;

	socket_kind(fd, &type, &protocol);
	return (type & 0xf) == SOCK_STREAM && (protocol == IPPROTO_TCP || protocol == 0);
}

static struct pg_dest_stats *dest_get(const struct pg_policy_dest *d)
{
	struct pg_dest_stats *s;

	pthread_mutex_lock(&dest_lock);
	HASH_FIND(hh, dests, d, sizeof(*d), s);
	if (!s && ndests < PG_MAX_DESTS && (s = pg_calloc(1, sizeof(*s)))) {
		s->key = *d;
		pg_hash_oom = 0;
		HASH_ADD(hh, dests, key, sizeof(*d), s);
		if (pg_hash_oom) {
			pg_free(s);
			s = NULL;
		} else {
			ndests++;
		}
	}
	pthread_mutex_unlock(&dest_lock);
	return s;
}

static int is_nonblocking(int fd)
{
	int fl = fcntl(fd, F_GETFL);

	return fl >= 0 && (fl & O_NONBLOCK);
}

/* pool_lock held, for the cleanup of a pthread_cancel inside the wait
 * (pthread_cond_clockwait takes the lock again before it unwinds). */
struct pg_pool_hold {
	int locked;
};

static void pool_unwound(struct pg_pool_hold *h)
{
	if (h->locked)
		pthread_mutex_unlock(&pool_lock);
}

int pg_enforce_connect_begin(int fd, const struct sockaddr *uaddr, socklen_t ulen,
			     struct pg_enforce_conn *c)
{
	struct pg_pool_hold hold __attribute__((cleanup(pool_unwound))) = { 0 };
	struct sockaddr_storage ss;
	const struct sockaddr *addr = (const struct sockaddr *)&ss;
	socklen_t len;
	struct pg_policy_dest d;
	struct pg_conn conn;
	const struct pg_site *site = NULL;
	int rule, waited = 0, denied = 0;
	int64_t start = 0;
	enum pg_pool_verdict v;
	uint32_t used = 0;

	c->fd = fd;
	c->rule = -1;
	c->dest = NULL;
	if (copy_addr(uaddr, ulen, &ss, &len) < 0 ||
	    pg_policy_dest_from_sockaddr(&d, addr, len) < 0 || !is_tcp(fd))
		return 0;
	/* Accepted sockets are not destinations: only connect() gets here. */
	if (pol.churn_warn_per_sec)
		c->dest = dest_get(&d);
	rule = pg_policy_match_pool(&pol, addr, len);
	if (rule < 0)
		return 0;
	/* A socket that holds a slot already (connect again after
	 * EINPROGRESS) takes no second one; an untracked one cannot give it
	 * back at close, so it is not counted. */
	if (pg_registry_get_conn(fd, &conn) < 0 || conn.pool)
		return 0;

	pthread_mutex_lock(&pool_lock);
	hold.locked = 1;
	for (;;) {
		int64_t now = pg_now_ns();
		used = in_use[rule];
		v = pg_policy_decide_pool(&pol.pool[rule], used, false, waited ? now - start : 0);
		if (v == PG_POOL_BLOCK && !waited && is_nonblocking(fd))
			v = pg_policy_decide_pool(&pol.pool[rule], used, true, 0);
		if (v == PG_POOL_ALLOW || v == PG_POOL_WARN) {
			in_use[rule]++;
			c->rule = rule;
			break;
		}
		if (v == PG_POOL_FAIL) {
			denied = 1;
			break;
		}
		if (!waited) {
			/* Before waiting: a close we could not see frees its
			 * slot too. Reconciling takes registry locks and calls
			 * release(), so not under pool_lock. */
			hold.locked = 0;
			pthread_mutex_unlock(&pool_lock);
			pg_track_reconcile();
			add(&counters.pool_waits);
			site = pg_track_capture();
			pool_event(EV_POOL_WAIT, rule, &d, used, site);
			pthread_mutex_lock(&pool_lock);
			hold.locked = 1;
			waited = 1;
			start = now;
			continue;
		}
		struct timespec until;
		int64_t end = start + (int64_t)pol.pool[rule].wait_ms * 1000000;
		until.tv_sec = end / 1000000000;
		until.tv_nsec = end % 1000000000;
		/* A cancellation point, as connect itself is. */
		pthread_cond_clockwait(&pool_cond, &pool_lock, CLOCK_MONOTONIC, &until);
	}
	hold.locked = 0;
	pthread_mutex_unlock(&pool_lock);
	if (v == PG_POOL_WARN || denied) {
		if (!site)
			site = pg_track_capture();
		if (denied)
			add(&counters.pool_denials);
		pool_event(denied ? EV_POOL_DENIED : EV_POOL_WARN, rule, &d, used, site);
	}
	return denied ? -EADDRNOTAVAIL : 0;
}

void pg_enforce_connect_end(struct pg_enforce_conn *c, int rc, int err)
{
	int ok = rc == 0 || err == EINPROGRESS;

	if (ok && c->dest) {
		pthread_mutex_lock(&dest_lock);
		pg_churn_connect(&((struct pg_dest_stats *)c->dest)->churn, pg_now_coarse_ns());
		pthread_mutex_unlock(&dest_lock);
	}
	if (ok &&
	    pg_registry_set_conn(c->fd, c->rule >= 0 ? (uint32_t)c->rule + 1 : 0, c->dest) == 0)
		return;
	/* Failed, or the socket went meanwhile: give the slot back. */
	if (c->rule >= 0)
		release((uint32_t)c->rule + 1, NULL);
}

/* ---- churn ---- */

static int established(int fd)
{
	struct tcp_info ti;
	socklen_t l = sizeof(ti);

	return getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &l) == 0 &&
	       ti.tcpi_state == PG_TCP_ESTABLISHED;
}

static void active_close(struct pg_dest_stats *ds, const struct pg_site *site)
{
	int64_t now = pg_now_coarse_ns();
	double rate;
	uint32_t peak;
	struct pg_event *e;
	enum pg_churn_forecast f;

	uint64_t connects, closes;

	pthread_mutex_lock(&dest_lock);
	pg_churn_active_close(&ds->churn, now);
	rate = pg_churn_rate(&ds->churn, now);
	peak = pg_churn_peak_per_sec(&ds->churn);
	connects = ds->churn.connects;
	closes = ds->churn.active_closes;
	pthread_mutex_unlock(&dest_lock);
	if (!pg_churn_should_warn(&pol, rate))
		return;
	f = pg_churn_forecast(rate, PG_CHURN_TIME_WAIT_S, range_size);
	/* Once per destination and call site, and again when the forecast
	 * gets worse (ok, warning, exhaustion): a warning that fired at the
	 * first crossing must not hide the exhaustion that follows. */
	if (!first_time(EV_CHURN + 16 * (int)f, &ds->key, site))
		return;
	e = event_begin(EV_CHURN, &ds->key);
	if (!e)
		return;
	pg_out_printf(&e->t,
		      "%.0f active closes/s over the last %d s (warn_per_sec=%u, peak %u/s): about "
		      "%.0f of %u local ports held in TIME_WAIT, forecast %s",
		      rate, PG_CHURN_WINDOW_S, pol.churn_warn_per_sec, peak,
		      rate * PG_CHURN_TIME_WAIT_S, range_size ? range_size : PG_CHURN_DEFAULT_RANGE,
		      pg_churn_forecast_name(f));
	/* tcp_tw_reuse lets new outgoing connections take ports still in
	 * TIME_WAIT (2: loopback only), which softens the forecast. */
	if (tw_reuse == 1 ||
	    (tw_reuse == 2 && ((ds->key.family == AF_INET && ds->key.addr[0] == 127) ||
			       (ds->key.family == AF_INET6 && ds->key.addr[15] == 1))))
		pg_out_printf(&e->t,
			      " (tcp_tw_reuse=%d may reuse TIME_WAIT ports for this destination)",
			      tw_reuse);
	pg_out_printf(&e->j,
		      ", \"connects\": %lu, \"active_closes\": %lu, \"rate_per_sec\": %.1f, "
		      "\"warn_per_sec\": %u, \"peak_per_sec\": %u, \"time_wait_ports\": %.0f, "
		      "\"range\": %u, \"forecast\": \"%s\", \"tcp_tw_reuse\": %d",
		      (unsigned long)connects, (unsigned long)closes, rate, pol.churn_warn_per_sec,
		      peak, rate * PG_CHURN_TIME_WAIT_S,
		      range_size ? range_size : PG_CHURN_DEFAULT_RANGE, pg_churn_forecast_name(f),
		      tw_reuse);
	event_end(e, site);
}

void pg_enforce_closing(const struct pg_closing *c)
{
	if (!c->dest || !c->last || (c->flags & PG_SOCK_ACTIVE_CLOSED) || !established(c->fd))
		return;
	active_close(c->dest, c->site);
}

void pg_enforce_shutdown(int fd, int how)
{
	struct pg_conn conn;

	if (how != SHUT_WR && how != SHUT_RDWR)
		return;
	if (pg_registry_get_conn(fd, &conn) < 0 || !conn.dest ||
	    (conn.flags & PG_SOCK_ACTIVE_CLOSED) || !established(fd))
		return;
	pg_registry_set_flags(fd, PG_SOCK_ACTIVE_CLOSED);
	active_close(conn.dest, conn.site);
}

/* ---- report sections ---- */

unsigned long pg_enforce_events(void)
{
	return get(&counters.events);
}

static int cmp_dest(const void *a, const void *b)
{
	const struct pg_dest_stats *x = *(const struct pg_dest_stats *const *)a;
	const struct pg_dest_stats *y = *(const struct pg_dest_stats *const *)b;

	if (x->churn.active_closes != y->churn.active_closes)
		return x->churn.active_closes > y->churn.active_closes ? -1 : 1;
	return x->churn.connects > y->churn.connects ? -1 : x->churn.connects < y->churn.connects;
}

void pg_enforce_report(void *arg, struct pg_out *o, int json)
{
	struct pg_dest_stats **v = NULL, *s, *tmp;
	size_t n = 0;
	int64_t now = pg_now_coarse_ns();

	(void)arg;
	pthread_mutex_lock(&dest_lock);
	if (ndests)
		v = pg_alloc(ndests * sizeof(*v));
	HASH_ITER(hh, dests, s, tmp)
	{
		if (v)
			v[n++] = s;
	}
	if (n)
		qsort(v, n, sizeof(*v), cmp_dest);
	if (json) {
		pg_out_puts(o, ", \"destinations\": [");
		for (size_t i = 0; i < n; i++) {
			char dest[PG_POLICY_DEST_STRLEN];
			double rate = pg_churn_rate(&v[i]->churn, now);
			pg_policy_format_dest(&v[i]->key, dest, sizeof(dest));
			pg_out_printf(
			    o,
			    "%s{\"remote\": \"%s\", \"connects\": %lu, \"active_closes\": %lu, "
			    "\"peak_per_sec\": %u, \"rate_per_sec\": %.1f, \"forecast\": \"%s\"}",
			    i ? ", " : "", dest, (unsigned long)v[i]->churn.connects,
			    (unsigned long)v[i]->churn.active_closes,
			    pg_churn_peak_per_sec(&v[i]->churn), rate,
			    pg_churn_forecast_name(
				pg_churn_forecast(rate, PG_CHURN_TIME_WAIT_S, range_size)));
		}
		pg_out_printf(
		    o,
		    "], \"policy\": {\"reuseaddr_applied\": %lu, \"reuseport_applied\": %lu, "
		    "\"bind_no_port_applied\": %lu, \"pool_waits\": %lu, \"pool_denials\": %lu",
		    get(&counters.reuseaddr), get(&counters.reuseport), get(&counters.bind_no_port),
		    get(&counters.pool_waits), get(&counters.pool_denials));
		if (pol_file[0]) {
			pg_out_puts(o, ", \"file\": ");
			pg_out_json_str(o, pol_file);
		}
		if (pol_error[0]) {
			pg_out_puts(o, ", \"error\": ");
			pg_out_json_str(o, pol_error);
		}
		pg_out_puts(o, "}");
	} else {
		for (size_t i = 0; i < n; i++) {
			char dest[PG_POLICY_DEST_STRLEN];
			double rate = pg_churn_rate(&v[i]->churn, now);
			pg_policy_format_dest(&v[i]->key, dest, sizeof(dest));
			pg_out_printf(o,
				      "Churn to %s: %lu connects, %lu active closes, peak %u/s, "
				      "%.0f/s over the last %d s: forecast %s.\n",
				      dest, (unsigned long)v[i]->churn.connects,
				      (unsigned long)v[i]->churn.active_closes,
				      pg_churn_peak_per_sec(&v[i]->churn), rate, PG_CHURN_WINDOW_S,
				      pg_churn_forecast_name(pg_churn_forecast(
					  rate, PG_CHURN_TIME_WAIT_S, range_size)));
		}
		if (n)
			pg_out_puts(o, "\n");
		if (pol_error[0])
			pg_out_printf(o, "Policy not applied: %s\n\n", pol_error);
		else if (pg_enforce_what)
			pg_out_printf(o,
				      "Policy: %lu SO_REUSEADDR, %lu SO_REUSEPORT, %lu "
				      "IP_BIND_ADDRESS_NO_PORT applied; %lu pool wait(s), %lu pool "
				      "denial(s).\n\n",
				      get(&counters.reuseaddr), get(&counters.reuseport),
				      get(&counters.bind_no_port), get(&counters.pool_waits),
				      get(&counters.pool_denials));
	}
	pthread_mutex_unlock(&dest_lock);
	pg_free(v);
}

void pg_enforce_fork_child(void)
{
	struct pg_dest_stats *s, *tmp;

	/* Locks may have been held by other threads of the parent. */
	pthread_mutex_init(&pool_lock, NULL);
	pthread_cond_init(&pool_cond, NULL);
	pthread_mutex_init(&dest_lock, NULL);
	pthread_mutex_init(&seen_lock, NULL);
	memset(&counters, 0, sizeof(counters));
	HASH_ITER(hh, dests, s, tmp)
	{
		memset(&s->churn, 0, sizeof(s->churn));
	}
}
