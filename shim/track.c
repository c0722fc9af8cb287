/* The library's state and the hooks the wrappers call: init, socket births,
 * closes, exit and fork. */
#include "shim/track.h"

#include "shim/config.h"
#include "shim/dest.h"
#include "shim/enforce.h"
#include "shim/out.h"
#include "shim/real.h"
#include "shim/report.h"
#include "shim/signals.h"
#include "shim/sockinfo.h"
#include "shim/stack.h"
#include "shim/suppress.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/socket.h>
#include <stdio_ext.h>
#include <sys/uio.h>
#include <unistd.h>

int pg_ready;
static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static struct pg_config cfg;
static struct pg_dest dest;
static int self_pid;
static char exe[4096];
static pthread_mutex_t report_lock = PTHREAD_MUTEX_INITIALIZER;
static int exit_reported;
/* Set, under report_lock, once the exit report is written: a report signal
 * that comes while the process ends must not start a report that exit cuts
 * in half after the exit report. */
static int exit_done;
static int exit_status_known, exit_status;
static struct pg_suppress *supp;
static int exiting; /* a thread is ending the process (pg_track_exit_status) */
static pthread_t exiting_thread;

static void load_suppressions(void)
{
	char err[512];
	size_t len = 0;
	char *text;

	if (!cfg.suppressions[0])
		return;
	const char *why;

	text = pg_read_file(cfg.suppressions, 16 << 20, &len, &why);
	if (!text) {
		pg_warn("suppressions: cannot read %s: %s", cfg.suppressions, why);
		return;
	}
	if (pg_suppress_parse(text, len, cfg.suppressions, &supp, err, sizeof(err)) < 0)
		pg_warn("%s; no suppression applied", err);
	pg_free(text);
}

static void warn_line(const char *line, void *arg)
{
	(void)arg;
	pg_warn("%s", line);
}

static void load_policy(void)
{
	const char *err;
	char json[1024];
	struct pg_out o;

	if (pg_enforce_load(&cfg, &err) == 0)
		return;
	pg_warn("%s; policy not applied", err);
	if (cfg.strict) {
		/* strict=1: the user asked for no run on a bad policy. */
		_exit(2);
	}
	/* The report destination gets the event too, unless it was that
	 * warning already. */
	if (cfg.format == PG_FORMAT_JSON || cfg.dest != PG_DEST_STDERR) {
		pg_out_init(&o, -1);
		pg_out_printf(
		    &o, "{\"portguard\": 1, \"pid\": %d, \"event\": \"policy_error\", \"error\": ",
		    self_pid);
		pg_out_json_str(&o, err);
		pg_out_puts(&o, "}");
		snprintf(json, sizeof(json), "%.*s", (int)o.len, o.buf);
		char text[1024];
		snprintf(text, sizeof(text), "portguard: %s; policy not applied", err);
		pg_track_emit_event(text, json);
	}
}

/* Sockets open when the library loads (inherited across exec): one record
 * per socket, whatever number of descriptors name it. */
struct pg_inherited {
	struct {
		int fd;
		uint64_t inode;
	} * v;
	size_t n, cap;
	int failed;
};

static void note_inherited(int fd, uint64_t inode, void *arg)
{
	struct pg_inherited *h = arg;

	if (h->n == h->cap) {
		size_t cap = h->cap ? h->cap * 2 : 16;
		void *v = pg_realloc(h->v, cap * sizeof(*h->v));
		if (!v) {
			h->failed = 1;
			pg_registry_count_lost();
			return;
		}
		h->v = v;
		h->cap = cap;
	}
	h->v[h->n].fd = fd;
	h->v[h->n].inode = inode;
	h->n++;
}

static int cmp_inherited(const void *a, const void *b)
{
	const struct {
		int fd;
		uint64_t inode;
	} *x = a, *y = b;

	if (x->inode != y->inode)
		return x->inode < y->inode ? -1 : 1;
	return x->fd - y->fd;
}

static void add_inherited(void)
{
	struct pg_inherited h = { 0 };
	int64_t now = pg_now_coarse_ns();

	pg_sockinfo_scan(note_inherited, NULL, &h, pg_real.close);
	if (h.n)
		qsort(h.v, h.n, sizeof(*h.v), cmp_inherited);
	for (size_t i = 0; i < h.n; i++) {
		if (i && h.v[i].inode == h.v[i - 1].inode &&
		    pg_registry_dup(h.v[i - 1].fd, h.v[i].fd) == 0)
			continue;
		pg_registry_add(h.v[i].fd, h.v[i].inode, NULL, now, -1, -1, -1, PG_SOCK_INHERITED);
	}
	pg_free(h.v);
}

static void flush_events(void);

/* Threads in fork's prepare handler, waiting for the report lock: a report
 * asked for right after another waits for them (up to a second), so that a
 * stream of report signals cannot starve fork(). */
static int forks_waiting;

static void let_forks_go(void)
{
	for (int i = 0; i < 10000 && __atomic_load_n(&forks_waiting, __ATOMIC_ACQUIRE); i++)
		usleep(100);
}

/* The program's buffered output before ours, when reports go to stdout. We
 * never wait on a lock of the program's: its thread may hold stdout's lock
 * while it forks, and fork's prepare handler waits for ours. Called with no
 * lock of ours held. */
static void flush_program_stdout(void)
{
	if (cfg.dest != PG_DEST_STDOUT ||
	    __fsetlocking(stdout, FSETLOCKING_QUERY) == FSETLOCKING_BYCALLER)
		return;
	if (ftrylockfile(stdout) == 0) {
		fflush_unlocked(stdout);
		funlockfile(stdout);
	}
}

static void write_report(enum pg_reason reason)
{
	struct pg_report_opts o;
	struct pg_report_result res;
	int close_after = 0, fd, cancel;

	int64_t t0 = pg_now_ns();

	memset(&o, 0, sizeof(o));
	memset(&res, 0, sizeof(res));
	cancel = pg_nocancel_begin();
	flush_program_stdout();
	let_forks_go();
	pthread_mutex_lock(&report_lock);
	if (exit_done) {
		pthread_mutex_unlock(&report_lock);
		pg_nocancel_end(cancel);
		return;
	}
	pg_alloc_no_fault++;
	flush_events();
	fd = pg_dest_open(&dest, &cfg, self_pid, &close_after);
	o.cfg = &cfg;
	o.reason = reason;
	o.pid = self_pid;
	o.exe = exe;
	o.now_ns = pg_now_coarse_ns();
	o.fd = fd;
	o.quiet_if_clean = reason == PG_REASON_EXIT && !close_after;
	o.kernel = 1;
	o.close_fn = pg_real.close;
	o.supp = supp;
	o.extra = pg_enforce_report;
	o.extra_events = pg_enforce_events() > 0;
	pg_report_write(&o, &res);
	if (close_after)
		pg_real.close(fd);
	pg_alloc_no_fault--;
	if (reason == PG_REASON_EXIT)
		exit_done = 1;
	pthread_mutex_unlock(&report_lock);
	pg_nocancel_end(cancel);
	if (cfg.verbosity >= 2)
		pg_warn("debug: %s report: %lu open, %lu leaked, %lu untracked; written in %.1f ms",
			reason == PG_REASON_EXIT ? "exit" : "signal", (unsigned long)res.open,
			(unsigned long)res.leaked, (unsigned long)res.untracked,
			(pg_now_ns() - t0) / 1e6);

	/* exitcode: only a clean exit becomes a failing one. */
	if (reason == PG_REASON_EXIT && cfg.exitcode && res.leaked && exit_status_known &&
	    exit_status == 0) {
		fflush(NULL);
		_exit(cfg.exitcode);
	}
}

/* Policy events are queued by the program's threads and written by the
 * library's own thread (or before the exit report): a connect() never waits
 * behind a report being written, nor holds the report lock while the report
 * thread waits for the dynamic loader's lock (dlopen of libdw). */
struct pg_event_line {
	struct pg_event_line *next;
	char text[];
};
static pthread_mutex_t event_lock = PTHREAD_MUTEX_INITIALIZER;
static struct pg_event_line *events_head, **events_tail = &events_head;

/* Caller holds report_lock. */
static void write_event_line(const char *line)
{
	int close_after = 0, fd = pg_dest_open(&dest, &cfg, self_pid, &close_after);

	if (fd >= 0) {
		struct iovec v[2] = { { (void *)line, strlen(line) }, { (void *)"\n", 1 } };
		/* One write: lines of several processes sharing a stream do not
		 * interleave. */
		while (writev(fd, v, 2) < 0 && errno == EINTR)
			;
	}
	if (close_after)
		pg_real.close(fd);
}

/* Caller holds report_lock: events go out before the report they precede.
 * After the exit report nothing more is written. */
static void flush_events(void)
{
	struct pg_event_line *e, *next;

	if (exit_done)
		return;
	pthread_mutex_lock(&event_lock);
	e = events_head;
	events_head = NULL;
	events_tail = &events_head;
	pthread_mutex_unlock(&event_lock);
	for (; e; e = next) {
		next = e->next;
		write_event_line(e->text);
		pg_free(e);
	}
}

void pg_track_emit_event(const char *text, const char *json)
{
	const char *line = cfg.format == PG_FORMAT_JSON ? json : text;
	size_t len = strlen(line);
	struct pg_event_line *e = pg_alloc(sizeof(*e) + len + 1);
	int saved = errno;

	if (e) {
		e->next = NULL;
		memcpy(e->text, line, len + 1);
		pthread_mutex_lock(&event_lock);
		*events_tail = e;
		events_tail = &e->next;
		pthread_mutex_unlock(&event_lock);
		if (pg_signals_wake() == 0) {
			errno = saved;
			return;
		}
	}
	/* No thread to write it (no report signal, or before the first
	 * socket), or no memory for the queue: write it here. */
	int cancel = pg_nocancel_begin();
	flush_program_stdout();
	pthread_mutex_lock(&report_lock);
	flush_events();
	if (!e && !exit_done)
		write_event_line(line);
	pthread_mutex_unlock(&report_lock);
	pg_nocancel_end(cancel);
	errno = saved;
}

void pg_track_reconcile(void)
{
	struct pg_snap *snap;
	size_t n;

	if (pg_registry_snapshot(&snap, &n) < 0)
		return;
	for (size_t i = 0; i < n; i++)
		pg_registry_reconcile(&snap[i], pg_sockinfo_identity(snap[i].fd, snap[i].inode,
								     snap[i].domain, snap[i].type));
	pg_free(snap);
}

static void on_wake(int report)
{
	if (report) {
		write_report(PG_REASON_SIGNAL);
		return;
	}
	flush_program_stdout();
	pthread_mutex_lock(&report_lock);
	flush_events();
	pthread_mutex_unlock(&report_lock);
}

static void fork_prepare(void)
{
	__atomic_add_fetch(&forks_waiting, 1, __ATOMIC_ACQ_REL);
	pthread_mutex_lock(&report_lock);
	__atomic_sub_fetch(&forks_waiting, 1, __ATOMIC_ACQ_REL);
	pg_registry_fork_prepare();
}

static void fork_parent(void)
{
	pg_registry_fork_parent();
	pthread_mutex_unlock(&report_lock);
}

static void fork_child(void)
{
	/* The queued events are the parent's, which writes them. */
	pthread_mutex_init(&event_lock, NULL);
	events_head = NULL;
	events_tail = &events_head;
	pg_registry_fork_child();
	pg_enforce_fork_child();
	pthread_mutex_init(&report_lock, NULL);
	self_pid = getpid();
	exit_reported = 0;
	exit_done = 0;
	exiting = 0;
	pg_signals_fork_child();
}

static void do_init(void)
{
	const char *fault;
	int secure = getauxval(AT_SECURE) != 0;
	ssize_t n;
	/* Init may run on any thread's first wrapped call; it opens files. */
	int cancel = pg_nocancel_begin();

	pg_inside++;
	pg_real_bind();
	pg_alloc_set_accounting(0);
	pg_warn_pin_stderr();
	self_pid = getpid();
	pg_config_defaults(&cfg);
	pg_config_parse(&cfg, getenv("PORTGUARD_OPTIONS"), secure, warn_line, NULL);
	/* Test hook: make every Nth allocation of the library fail. */
	fault = secure ? NULL : getenv("PORTGUARD_FAULT_ALLOC");
	if (fault && atoi(fault) > 0)
		pg_alloc_set_fault((unsigned)atoi(fault));
	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	exe[n > 0 ? n : 0] = 0;
	pg_dest_remember_std(&dest);
	load_suppressions();
	load_policy();
	if (cfg.stack_depth > 0)
		pg_stack_init();
	add_inherited();
	pg_signals_init(cfg.report_signal, on_wake);
	pthread_atfork(fork_prepare, fork_parent, fork_child);
	if (pg_registry_open() > 0)
		pg_signals_start_thread();
	if (cfg.verbosity >= 2)
		pg_warn("debug: pid %d (%s): stacks %d frames (%s), report signal %d, %s reports "
			"to %s%s, %lu inherited socket(s)",
			self_pid, exe, cfg.stack_depth, pg_stack_unwinder(), cfg.report_signal,
			cfg.format == PG_FORMAT_JSON ? "JSON" : "text",
			cfg.dest == PG_DEST_PATH     ? cfg.log_path
			: cfg.dest == PG_DEST_STDOUT ? "stdout"
						     : "stderr",
			cfg.dest == PG_DEST_PATH && !strstr(cfg.log_path, "%p") ? ".PID" : "",
			(unsigned long)pg_registry_open());
	__atomic_store_n(&pg_ready, 1, __ATOMIC_RELEASE);
	pg_inside--;
	pg_nocancel_end(cancel);
}

void pg_track_init(void)
{
	/* A wrapped call made by our own init (on this thread) must not wait
	 * for the init it is part of. */
	if (pg_inside)
		return;
	pthread_once(&init_once, do_init);
}

__attribute__((constructor)) static void pg_constructor(void)
{
	pg_track_init();
}

/* The exit report. A destructor of a preloaded library runs in _dl_fini,
 * after the program's atexit handlers and its own destructors, so sockets
 * they close are not reported. */
__attribute__((destructor)) static void pg_destructor(void)
{
	if (!pg_ready || !cfg.report_at_exit)
		return;
	if (__atomic_exchange_n(&exit_reported, 1, __ATOMIC_ACQ_REL))
		return;
	pg_inside++;
	write_report(PG_REASON_EXIT);
	pg_inside--;
}

int pg_vfork_fail(int err)
{
	errno = err;
	return -1;
}

/* One thread ends the process. glibc before 2.41 lets two threads run
 * exit() at once: the second finishes the exit handlers and calls _exit()
 * while the first is still writing the exit report in _dl_fini. As glibc
 * 2.41 does, a later caller waits (for ever: the first one ends the
 * process); the same thread calling exit() again from an exit handler goes
 * on, as glibc lets it. */
void pg_track_exit_status(int status)
{
	/* A vfork child shares our memory: its exit is not ours. */
	if (pg_vfork_child)
		return;
	if (__atomic_exchange_n(&exiting, 1, __ATOMIC_ACQ_REL)) {
		if (pthread_equal(__atomic_load_n(&exiting_thread, __ATOMIC_ACQUIRE),
				  pthread_self()))
			return;
		for (;;)
			pause();
	}
	__atomic_store_n(&exiting_thread, pthread_self(), __ATOMIC_RELEASE);
	exit_status = status;
	exit_status_known = 1;
}

static const struct pg_site *capture(void)
{
	uintptr_t frames[PG_MAX_DEPTH];
	int n = cfg.stack_depth > 0 ? pg_stack_capture(frames, cfg.stack_depth) : 0;

	return pg_site_intern(frames, (unsigned)n);
}

const struct pg_site *pg_track_capture(void)
{
	return capture();
}

void pg_track_bind(int fd, const struct sockaddr *addr, socklen_t len)
{
	if (!(pg_enforce_what & PG_ENFORCE_BIND))
		return;
	pg_inside++;
	pg_enforce_bind(fd, addr, len);
	pg_inside--;
}

int pg_track_connect_begin(int fd, const struct sockaddr *addr, socklen_t len,
			   struct pg_enforce_conn *c)
{
	int rc;

	c->fd = -1;
	if (!(pg_enforce_what & PG_ENFORCE_CONNECT))
		return 0;
	{
		/* A pool wait is a cancellation point, as connect is. */
		PG_INSIDE_SCOPE;
		rc = pg_enforce_connect_begin(fd, addr, len, c);
	}
	return rc;
}

void pg_track_connect_end(struct pg_enforce_conn *c, int rc, int err)
{
	if (c->fd < 0)
		return;
	pg_inside++;
	pg_enforce_connect_end(c, rc, err);
	pg_inside--;
}

/* pthread_cancel inside the real connect: the slot stays taken only if the
 * socket got connected (glibc 2.36 can act on a cancel after the system
 * call returned). */
void pg_track_connect_cancelled(struct pg_enforce_conn *c)
{
	struct sockaddr_storage ss;
	socklen_t l = sizeof(ss);
	int connected;

	if (c->fd < 0)
		return;
	connected = getpeername(c->fd, (struct sockaddr *)&ss, &l) == 0;
	pg_track_connect_end(c, connected ? 0 : -1, connected ? 0 : EINTR);
}

void pg_track_shutdown(int fd, int how)
{
	if (!(pg_enforce_what & PG_ENFORCE_CHURN))
		return;
	pg_inside++;
	pg_enforce_shutdown(fd, how);
	pg_inside--;
}

/* The last handle of a socket with a churn destination is about to close:
 * an active close if the connection is still established. */
static void closing(const struct pg_closing *c)
{
	if ((pg_enforce_what & PG_ENFORCE_CHURN) && c->dest && c->last)
		pg_enforce_closing(c);
}

static void born(int fd, int domain, int type, int protocol, unsigned flags,
		 const struct pg_site *site)
{
	if (!site) {
		pg_registry_count_lost();
		return;
	}
	type &= ~(SOCK_NONBLOCK | SOCK_CLOEXEC);
	/* inode 0: learnt at the first reconciliation, not here (see
	 * pg_registry_reconcile). */
	pg_registry_add(fd, 0, site, pg_now_coarse_ns(), domain, type, protocol, flags);
	pg_signals_start_thread();
}

void pg_track_socket(int fd, int domain, int type, int protocol)
{
	pg_inside++;
	born(fd, domain, type, protocol, 0, capture());
	pg_inside--;
}

void pg_track_socketpair(const int sv[2], int domain, int type, int protocol)
{
	const struct pg_site *site;

	pg_inside++;
	site = capture();
	born(sv[0], domain, type, protocol, 0, site);
	born(sv[1], domain, type, protocol, 0, site);
	pg_inside--;
}

void pg_track_accept(int fd)
{
	pg_inside++;
	born(fd, -1, -1, -1, PG_SOCK_ACCEPTED, capture());
	pg_inside--;
}

void pg_track_listen(int fd)
{
	pg_inside++;
	pg_registry_set_flags(fd, PG_SOCK_LISTENING);
	pg_inside--;
}

void pg_track_dup(int oldfd, int newfd)
{
	pg_inside++;
	pg_registry_dup(oldfd, newfd);
	pg_inside--;
}

void pg_track_close_begin(int fd, struct pg_close_op *op)
{
	pg_inside++;
	op->what = pg_registry_close_begin(fd, &op->c);
	if (op->what == PG_ENTRY_LIVE)
		closing(&op->c);
	pg_inside--;
}

void pg_track_close_end(struct pg_close_op *op, enum pg_close_outcome how)
{
	const struct pg_site *created, *closed;

	if (op->what == PG_ENTRY_NONE)
		return;
	pg_inside++;
	if (op->what == PG_ENTRY_LIVE) {
		pg_registry_close_end(&op->c, how, how == PG_CLOSED ? capture() : NULL);
	} else if (how == PG_WAS_GONE) {
		/* EBADF on a number whose socket we saw this process close, and
		 * that nothing reopened since (the kernel says it is free). */
		if (pg_registry_tombstone(op->c.fd, &created, &closed))
			pg_registry_double_close(op->c.fd, created, closed, capture());
	} else if (how == PG_CLOSED) {
		/* The number was reused by something we do not track. */
		pg_registry_forget(op->c.fd);
	}
	pg_inside--;
}

/* pthread_cancel inside the real close (or fclose): glibc acts on a pending
 * request before the system call, and 2.36 also right after it, so ask the
 * kernel whether the descriptor is still there. */
void pg_track_close_cancelled(struct pg_close_op *op)
{
	if (op->what == PG_ENTRY_NONE)
		return;
	pg_track_close_end(op, pg_real.fcntl(op->c.fd, F_GETFD) >= 0 ? PG_NOT_CLOSED : PG_CLOSED);
}

void pg_track_range_begin(unsigned lo, unsigned hi, struct pg_range_op *r)
{
	int few[64], *fds = few;
	size_t n;

	r->ops = NULL;
	r->n = 0;
	pg_inside++;
	if (lo > (unsigned)INT32_MAX)
		goto out;
	if (hi > (unsigned)INT32_MAX)
		hi = INT32_MAX;
	n = pg_registry_fds_in((int)lo, (int)hi, few, PG_ARRAY_LEN(few));
	if (n > PG_ARRAY_LEN(few)) {
		fds = pg_alloc(n * sizeof(int));
		if (!fds)
			goto out; /* left for reconciliation: closed_unseen */
		size_t again = pg_registry_fds_in((int)lo, (int)hi, fds, n);
		if (again < n)
			n = again;
	}
	r->ops = pg_calloc(n ? n : 1, sizeof(*r->ops));
	if (r->ops) {
		for (size_t i = 0; i < n; i++) {
			r->ops[r->n++].what = pg_registry_close_begin(fds[i], &r->ops[i].c);
			if (r->ops[i].what == PG_ENTRY_LIVE)
				closing(&r->ops[i].c);
		}
	}
	if (fds != few)
		pg_free(fds);
out:
	pg_inside--;
}

void pg_track_range_end(struct pg_range_op *r, int closed)
{
	const struct pg_site *site = NULL;

	pg_inside++;
	if (closed && r->n)
		site = capture();
	for (size_t i = 0; i < r->n; i++)
		if (r->ops[i].what == PG_ENTRY_LIVE)
			pg_registry_close_end(&r->ops[i].c, closed ? PG_CLOSED : PG_NOT_CLOSED,
					      site);
	pg_free(r->ops);
	pg_inside--;
}
