#include "shim/enforce.h"

#include "common/names.h"
#include "policy/policy.h"
#include "shim/arena.h"
#include "shim/common.h"
#include "shim/events.h"
#include "shim/fdtab.h"
#include "shim/locks.h"
#include "shim/out.h"
#include "shim/sockinfo.h"
#include "shim/stack.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/tcp.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
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
static int verbosity, depth;
static uint32_t range_size;
static int tw_reuse = -1;

/* Pool: connected sockets per rule (PG_LOCK_POOL), and a futex the waiters
 * of mode=block sleep on. */
static uint32_t in_use[PG_POLICY_POOL_MAX];
static unsigned pool_seq;

struct pg_counters {
	unsigned long reuseaddr, reuseport, bind_no_port, pool_waits, pool_denials, events;
};
static struct pg_counters counters;

/* Churn per destination (PG_LOCK_DESTS): created on the first connect,
 * never freed, named by id (1 ... PG_MAX_DESTS) in the sockets' records. */
struct pg_dest_stats {
	UT_hash_handle hh;
	struct pg_policy_dest key;
	struct pg_churn churn;
	uint32_t id;
};
static struct pg_dest_stats *dests, *dest_by_id[PG_MAX_DESTS + 1];
static unsigned ndests;

/* Events already said: one per kind, destination and call site. */
struct pg_seen_key {
	int kind;
	struct pg_policy_dest dest;
	uint32_t site;
};
struct pg_seen {
	UT_hash_handle hh;
	struct pg_seen_key key;
};
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

void pg_enforce_release(uint32_t pool, uint32_t dest)
{
	(void)dest;
	if (!pool || pool > PG_POLICY_POOL_MAX)
		return;
	if (pg_lock_take(PG_LOCK_POOL, PG_LOCK_BOUND_MS) < 0)
		return;
	if (in_use[pool - 1] > 0)
		in_use[pool - 1]--;
	pg_lock_give(PG_LOCK_POOL);
	pg_cond_wake(&pool_seq);
}

void pg_enforce_load(const struct pg_config *cfg)
{
	int rc = 0;

	verbosity = cfg->verbosity;
	depth = cfg->stack_depth;
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
	read_kernel_facts();
	if (rc == 0)
		return;
	pg_warn("%s; policy not applied", pol_error);
	if (cfg->strict)
		_exit(2); /* strict=1: the user asked for no run on a bad policy */
	/* The report destination gets the event too, unless it was that
	 * warning already. */
	if (cfg->format == PG_FORMAT_JSON || cfg->dest != PG_DEST_STDERR) {
		char text[PG_EVENT_TEXT], json[PG_EVENT_JSON];
		struct pg_out o;
		pg_out_init_buf(&o, json, sizeof(json));
		pg_out_printf(
		    &o, "{\"portguard\": 1, \"pid\": %d, \"event\": \"policy_error\", \"error\": ",
		    (int)getpid());
		pg_out_json_str(&o, pol_error);
		pg_out_end_buf(&o);
		snprintf(text, sizeof(text), "portguard: %.450s; policy not applied", pol_error);
		pg_events_push(text, json, PG_EVENT_NO_FRAMES);
	}
}

/* The socket's type and protocol: from the registry, or (untracked, or
 * accepted: not recorded) from the kernel. */
static void socket_kind(int fd, int *type, int *protocol)
{
	struct pg_fdtab_view v;
	socklen_t l = sizeof(int);

	if (pg_fdtab_get(fd, &v) == 0 && v.type >= 0) {
		*type = v.type;
		*protocol = v.protocol;
		return;
	}
	if (getsockopt(fd, SOL_SOCKET, SO_TYPE, type, &l) < 0)
		*type = -1;
	l = sizeof(int);
	if (getsockopt(fd, SOL_SOCKET, SO_PROTOCOL, protocol, &l) < 0)
		*protocol = -1;
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

void pg_enforce_bind_slow(int fd, const struct sockaddr *uaddr, socklen_t ulen)
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

static int first_time(int kind, const struct pg_policy_dest *d, uint32_t site)
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
	if (pg_lock_take(PG_LOCK_SEEN, PG_LOCK_BOUND_MS) < 0)
		return 0;
	HASH_FIND(hh, seen, &k, sizeof(k), s);
	if (!s && (s = pg_arena_calloc(sizeof(*s)))) {
		s->key = k;
		pg_hash_oom = 0;
		HASH_ADD(hh, seen, key, sizeof(k), s);
		if (pg_hash_oom)
			pg_arena_free(s, sizeof(*s));
		fresh = 1;
	}
	pg_lock_give(PG_LOCK_SEEN);
	return fresh;
}

/* An event line in two buffers of fixed size (no malloc: this runs in the
 * program's connect or close). The frames are added by the writer. */
struct pg_event_lines {
	struct pg_out t, j;
	char text[PG_EVENT_TEXT], json[PG_EVENT_JSON];
};

static void event_begin(struct pg_event_lines *e, int kind, const struct pg_policy_dest *d)
{
	char dest[PG_POLICY_DEST_STRLEN];

	pg_out_init_buf(&e->t, e->text, sizeof(e->text));
	pg_out_init_buf(&e->j, e->json, sizeof(e->json));
	pg_policy_format_dest(d, dest, sizeof(dest));
	pg_out_printf(&e->t, "portguard: %s: %s: ", ev_names[kind], dest);
	pg_out_printf(&e->j,
		      "{\"portguard\": 1, \"pid\": %d, \"event\": \"%s\", \"remote\": \"%s\"",
		      (int)getpid(), ev_names[kind], dest);
}

static void event_end(struct pg_event_lines *e, uint32_t site)
{
	pg_out_end_buf(&e->t);
	pg_out_end_buf(&e->j);
	add(&counters.events);
	if (verbosity >= 1)
		pg_events_push(e->text, e->json, site);
}

static void pool_event(int kind, int rule, const struct pg_policy_dest *d, uint32_t used,
		       uint32_t site)
{
	const struct pg_policy_pool *p = &pol.pool[rule];
	struct pg_event_lines e;
	char pat[PG_POLICY_DEST_STRLEN];

	if (!first_time(kind, d, site))
		return;
	event_begin(&e, kind, d);
	pg_policy_format_dest(&p->dest, pat, sizeof(pat));
	pg_out_printf(&e.t, "%u of max=%u connections in use (rule %s:%u: pool %s mode=%s)", used,
		      p->max, pol_file, p->line, pat, pg_policy_mode_name(p->mode));
	if (kind == EV_POOL_DENIED)
		pg_out_puts(&e.t, "; connect failed with EADDRNOTAVAIL");
	else if (kind == EV_POOL_WAIT)
		pg_out_printf(&e.t, "; waiting up to %u ms", p->wait_ms);
	else
		pg_out_puts(&e.t, "; allowed (mode=warn)");
	pg_out_printf(&e.j,
		      ", \"rule\": \"%s:%u\", \"pattern\": \"%s\", \"mode\": \"%s\", \"max\": %u, "
		      "\"in_use\": %u",
		      pol_file, p->line, pat, pg_policy_mode_name(p->mode), p->max, used);
	event_end(&e, site);
}

/* ---- connect ---- */

static int is_tcp(int fd)
{
	int type, protocol;

	socket_kind(fd, &type, &protocol);
	return (type & 0xf) == SOCK_STREAM && (protocol == IPPROTO_TCP || protocol == 0);
}

static uint32_t dest_get(const struct pg_policy_dest *d)
{
	struct pg_dest_stats *s;
	uint32_t id = 0;

	if (pg_lock_take(PG_LOCK_DESTS, PG_LOCK_BOUND_MS) < 0)
		return 0;
	HASH_FIND(hh, dests, d, sizeof(*d), s);
	if (!s && ndests < PG_MAX_DESTS && (s = pg_arena_calloc(sizeof(*s)))) {
		s->key = *d;
		pg_hash_oom = 0;
		HASH_ADD(hh, dests, key, sizeof(*d), s);
		if (pg_hash_oom) {
			pg_arena_free(s, sizeof(*s));
			s = NULL;
		} else {
			s->id = ++ndests;
			dest_by_id[s->id] = s;
		}
	}
	if (s)
		id = s->id;
	pg_lock_give(PG_LOCK_DESTS);
	return id;
}

static int is_nonblocking(int fd)
{
	int fl = fcntl(fd, F_GETFL);

	return fl >= 0 && (fl & O_NONBLOCK);
}

/* Before waiting for a slot: a socket holding one that the kernel no longer
 * has (closed where no wrapper saw it) gives it back. */
static void reconcile_pool(void)
{
	int few[256];
	size_t n = pg_fdtab_fds_in(0, INT32_MAX, few, PG_ARRAY_LEN(few));

	if (n > PG_ARRAY_LEN(few))
		n = PG_ARRAY_LEN(few);
	for (size_t i = 0; i < n; i++) {
		struct pg_fdtab_view v;
		struct pg_fdtab_gone gone;
		if (pg_fdtab_get(few[i], &v) < 0 || !v.pool || pg_sockinfo_inode(few[i]))
			continue;
		if (pg_fdtab_drop_view(few[i], &v, &gone))
			pg_enforce_release(gone.pool, gone.dest);
	}
}

/* pool_lock held, for the cleanup of a pthread_cancel inside the wait. */
struct pg_pool_hold {
	int locked;
};

static void pool_unwound(struct pg_pool_hold *h)
{
	if (h->locked)
		pg_lock_give(PG_LOCK_POOL);
}

int pg_enforce_connect_slow(int fd, const struct sockaddr *uaddr, socklen_t ulen,
			    struct pg_enforce_conn *c)
{
	struct pg_pool_hold hold __attribute__((cleanup(pool_unwound))) = { 0 };
	struct sockaddr_storage ss;
	const struct sockaddr *addr = (const struct sockaddr *)&ss;
	socklen_t len;
	struct pg_policy_dest d;
	struct pg_fdtab_view v;
	uint32_t site = 0;
	int rule, waited = 0, denied = 0, have_site = 0;
	int64_t start = 0;
	enum pg_pool_verdict verdict = PG_POOL_ALLOW;
	uint32_t used = 0;

	c->fd = fd;
	c->rule = -1;
	c->dest = 0;
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
	if (pg_fdtab_get(fd, &v) < 0 || v.pool)
		return 0;
	if (pg_lock_take(PG_LOCK_POOL, PG_LOCK_BOUND_MS) < 0)
		return 0;
	hold.locked = 1;
	for (;;) {
		int64_t now = pg_now_ns();
		used = in_use[rule];
		verdict =
		    pg_policy_decide_pool(&pol.pool[rule], used, false, waited ? now - start : 0);
		if (verdict == PG_POOL_BLOCK && !waited && is_nonblocking(fd))
			verdict = pg_policy_decide_pool(&pol.pool[rule], used, true, 0);
		if (verdict == PG_POOL_ALLOW || verdict == PG_POOL_WARN) {
			in_use[rule]++;
			c->rule = rule;
			break;
		}
		if (verdict == PG_POOL_FAIL) {
			denied = 1;
			break;
		}
		if (!waited) {
			hold.locked = 0;
			pg_lock_give(PG_LOCK_POOL);
			reconcile_pool();
			add(&counters.pool_waits);
			site = pg_stack_site(depth);
			have_site = 1;
			pool_event(EV_POOL_WAIT, rule, &d, used, site);
			if (pg_lock_take(PG_LOCK_POOL, PG_LOCK_BOUND_MS) < 0)
				return 0;
			hold.locked = 1;
			waited = 1;
			start = now;
			continue;
		}
		{
			int64_t left = start + (int64_t)pol.pool[rule].wait_ms * 1000000 - now;
			int ms = left > 100000000 ? 100 : (int)(left / 1000000) + 1;
			hold.locked = 0;
			if (pg_cond_wait(&pool_seq, PG_LOCK_POOL, ms) < 0)
				return 0;
			hold.locked = 1;
			/* A cancellation point, as connect itself is: a pending
			 * pthread_cancel acts here (the cleanup gives the lock
			 * back). */
			pthread_testcancel();
		}
	}
	hold.locked = 0;
	pg_lock_give(PG_LOCK_POOL);
	if (verdict == PG_POOL_WARN || denied) {
		if (!have_site)
			site = pg_stack_site(depth);
		if (denied)
			add(&counters.pool_denials);
		pool_event(denied ? EV_POOL_DENIED : EV_POOL_WARN, rule, &d, used, site);
	}
	return denied ? -EADDRNOTAVAIL : 0;
}

static struct pg_dest_stats *dest_stats(uint32_t id)
{
	return id && id <= PG_MAX_DESTS ? __atomic_load_n(&dest_by_id[id], __ATOMIC_ACQUIRE) : NULL;
}

void pg_enforce_connect_end(struct pg_enforce_conn *c, int rc, int err)
{
	int ok = rc == 0 || err == EINPROGRESS;
	struct pg_dest_stats *ds = dest_stats(c->dest);

	if (c->fd < 0)
		return;
	if (ok && ds && pg_lock_take(PG_LOCK_DESTS, PG_LOCK_BOUND_MS) == 0) {
		pg_churn_connect(&ds->churn, pg_now_coarse_ns());
		pg_lock_give(PG_LOCK_DESTS);
	}
	if (ok &&
	    pg_fdtab_set_policy(c->fd, c->rule >= 0 ? (uint32_t)c->rule + 1 : 0, c->dest) == 0)
		return;
	/* Failed, or the socket went meanwhile: give the slot back. */
	if (c->rule >= 0)
		pg_enforce_release((uint32_t)c->rule + 1, 0);
}

/* ---- churn ---- */

static int established(int fd)
{
	struct tcp_info ti;
	socklen_t l = sizeof(ti);

	return getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &l) == 0 &&
	       ti.tcpi_state == PG_TCP_ESTABLISHED;
}

static void active_close(uint32_t dest, uint32_t site)
{
	struct pg_dest_stats *ds = dest_stats(dest);
	int64_t now = pg_now_coarse_ns();
	double rate;
	uint32_t peak;
	struct pg_event_lines e;
	enum pg_churn_forecast f;
	uint64_t connects, closes;

	if (!ds || pg_lock_take(PG_LOCK_DESTS, PG_LOCK_BOUND_MS) < 0)
		return;
	pg_churn_active_close(&ds->churn, now);
	rate = pg_churn_rate(&ds->churn, now);
	peak = pg_churn_peak_per_sec(&ds->churn);
	connects = ds->churn.connects;
	closes = ds->churn.active_closes;
	pg_lock_give(PG_LOCK_DESTS);
	if (!pg_churn_should_warn(&pol, rate))
		return;
	f = pg_churn_forecast(rate, PG_CHURN_TIME_WAIT_S, range_size);
	/* Once per destination and call site, and again when the forecast
	 * gets worse (ok, warning, exhaustion): a warning that fired at the
	 * first crossing must not hide the exhaustion that follows. */
	if (!first_time(EV_CHURN + 16 * (int)f, &ds->key, site))
		return;
	event_begin(&e, EV_CHURN, &ds->key);
	pg_out_printf(&e.t,
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
		pg_out_printf(&e.t,
			      " (tcp_tw_reuse=%d may reuse TIME_WAIT ports for this destination)",
			      tw_reuse);
	pg_out_printf(&e.j,
		      ", \"connects\": %lu, \"active_closes\": %lu, \"rate_per_sec\": %.1f, "
		      "\"warn_per_sec\": %u, \"peak_per_sec\": %u, \"time_wait_ports\": %.0f, "
		      "\"range\": %u, \"forecast\": \"%s\", \"tcp_tw_reuse\": %d",
		      (unsigned long)connects, (unsigned long)closes, rate, pol.churn_warn_per_sec,
		      peak, rate * PG_CHURN_TIME_WAIT_S,
		      range_size ? range_size : PG_CHURN_DEFAULT_RANGE, pg_churn_forecast_name(f),
		      tw_reuse);
	event_end(&e, site);
}

void pg_enforce_closing(int fd, uint32_t dest, uint32_t site, unsigned flags)
{
	if (!(pg_enforce_what & PG_ENFORCE_CHURN) || (flags & PG_SOCK_ACTIVE_CLOSED) ||
	    !established(fd))
		return;
	active_close(dest, site);
}

void pg_enforce_shutdown_slow(int fd, int how)
{
	struct pg_fdtab_view v;

	if (how != SHUT_WR && how != SHUT_RDWR)
		return;
	if (pg_fdtab_get(fd, &v) < 0 || !v.dest || (v.flags & PG_SOCK_ACTIVE_CLOSED) ||
	    !established(fd))
		return;
	pg_fdtab_set_flags(fd, PG_SOCK_ACTIVE_CLOSED);
	active_close(v.dest, v.site);
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

void pg_enforce_report(struct pg_out *o, int json)
{
	struct pg_dest_stats *v[PG_MAX_DESTS];
	struct pg_churn churn[64];
	size_t n = 0;
	int64_t now = pg_now_coarse_ns();

	/* A copy under the lock of the busiest 64, written out without it. */
	if (pg_lock_take(PG_LOCK_DESTS, PG_LOCK_BOUND_MS) == 0) {
		for (unsigned i = 1; i <= ndests; i++)
			v[n++] = dest_by_id[i];
		qsort(v, n, sizeof(*v), cmp_dest);
		if (n > PG_ARRAY_LEN(churn))
			n = PG_ARRAY_LEN(churn);
		for (size_t i = 0; i < n; i++)
			churn[i] = v[i]->churn;
		pg_lock_give(PG_LOCK_DESTS);
	}
	if (json) {
		pg_out_puts(o, ", \"destinations\": [");
		for (size_t i = 0; i < n; i++) {
			char dest[PG_POLICY_DEST_STRLEN];
			double rate = pg_churn_rate(&churn[i], now);
			pg_policy_format_dest(&v[i]->key, dest, sizeof(dest));
			pg_out_printf(
			    o,
			    "%s{\"remote\": \"%s\", \"connects\": %lu, \"active_closes\": %lu, "
			    "\"peak_per_sec\": %u, \"rate_per_sec\": %.1f, \"forecast\": \"%s\"}",
			    i ? ", " : "", dest, (unsigned long)churn[i].connects,
			    (unsigned long)churn[i].active_closes, pg_churn_peak_per_sec(&churn[i]),
			    rate,
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
		return;
	}
	for (size_t i = 0; i < n; i++) {
		char dest[PG_POLICY_DEST_STRLEN];
		double rate = pg_churn_rate(&churn[i], now);
		pg_policy_format_dest(&v[i]->key, dest, sizeof(dest));
		pg_out_printf(o,
			      "Churn to %s: %lu connects, %lu active closes, peak %u/s, "
			      "%.0f/s over the last %d s: forecast %s.\n",
			      dest, (unsigned long)churn[i].connects,
			      (unsigned long)churn[i].active_closes,
			      pg_churn_peak_per_sec(&churn[i]), rate, PG_CHURN_WINDOW_S,
			      pg_churn_forecast_name(
				  pg_churn_forecast(rate, PG_CHURN_TIME_WAIT_S, range_size)));
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

void pg_enforce_fork_child(void)
{
	memset(&counters, 0, sizeof(counters));
	for (unsigned i = 1; i <= ndests; i++)
		memset(&dest_by_id[i]->churn, 0, sizeof(dest_by_id[i]->churn));
}
