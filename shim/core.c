/* The core (shim/core.h): state, lifecycle, and the hooks. */
#include "shim/core.h"

#include "shim/enforce.h"
#include "shim/events.h"
#include "shim/forking.h"
#include "shim/locks.h"
#include "shim/out.h"
#include "shim/python.h"
#include "shim/real.h"
#include "shim/reporter.h"
#include "shim/signals.h"
#include "shim/sites.h"
#include "shim/sockinfo.h"
#include "shim/stack.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

int pg_core_ready;
static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static struct pg_config cfg;
static int self_pid;
static char exe[4096];
static char argv0[4096]; /* as the user ran it, read at load (before any setproctitle) */
static int depth; /* cfg.stack_depth, read on the hot path */
static int exit_status_set, exit_status;
/* A thread is ending the process (pg_core_exit_status). */
static int exiting;
static pthread_t exiting_thread;

const struct pg_config *pg_core_config(void)
{
	return &cfg;
}

int pg_core_pid(void)
{
	return self_pid;
}

const char *pg_core_exe(void)
{
	return exe;
}

const char *pg_core_argv0(void)
{
	return argv0;
}

/* The first string of /proc/self/cmdline (argv[0] as exec'd). */
static void read_argv0(void)
{
	int fd = open("/proc/self/cmdline", O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	ssize_t n = fd >= 0 ? read(fd, argv0, sizeof(argv0) - 1) : -1;

	if (fd >= 0)
		pg_real.close(fd);
	argv0[n > 0 ? n : 0] = 0;
}

int pg_core_exit_status_known(int *status)
{
	*status = exit_status;
	return exit_status_set;
}

static void warn_line(const char *line, void *arg)
{
	(void)arg;
	pg_warn("%s", line);
}

/* Sockets open when the library loads (inherited across exec): one record
 * per socket, whatever number of descriptors name it. */
struct pg_inherited {
	struct pg_inh {
		int fd;
		uint64_t inode;
	} * v;
	size_t n, cap;
};

static void note_inherited(int fd, uint64_t inode, void *arg)
{
	struct pg_inherited *h = arg;

	if (h->n == h->cap) {
		size_t cap = h->cap ? h->cap * 2 : 64;
		struct pg_inh *v = pg_arena_alloc(cap * sizeof(*v));
		if (!v) {
			pg_fdtab_count_lost();
			return;
		}
		if (h->n)
			memcpy(v, h->v, h->n * sizeof(*v));
		pg_arena_free(h->v, h->cap * sizeof(*v));
		h->v = v;
		h->cap = cap;
	}
	h->v[h->n].fd = fd;
	h->v[h->n].inode = inode;
	h->n++;
}

static int cmp_inherited(const void *a, const void *b)
{
	const struct pg_inh *x = a, *y = b;

	if (x->inode != y->inode)
		return x->inode < y->inode ? -1 : 1;
	return x->fd - y->fd;
}

static void add_inherited(void)
{
	struct pg_inherited h = { 0 };
	struct pg_fdtab_gone gone;
	struct pg_sock_facts f = { .created_ns = pg_now_coarse_ns(),
				   .domain = -1,
				   .type = -1,
				   .protocol = -1,
				   .flags = PG_SOCK_INHERITED,
				   .via = PG_VIA_INHERITED };

	pg_sockinfo_scan_own(note_inherited, &h);
	if (h.n)
		qsort(h.v, h.n, sizeof(*h.v), cmp_inherited);
	for (size_t i = 0; i < h.n; i++) {
		if (i && h.v[i].inode == h.v[i - 1].inode &&
		    pg_fdtab_dup(h.v[i - 1].fd, h.v[i].fd, 0, PG_VIA_INHERITED, &gone) == 0)
			continue;
		f.inode = h.v[i].inode;
		pg_fdtab_add(h.v[i].fd, &f, &gone);
	}
	pg_arena_free(h.v, h.cap * sizeof(*h.v));
}

static void load_config(int secure)
{
	pg_config_defaults(&cfg);
	pg_config_parse(&cfg, getenv("PORTGUARD_OPTIONS"), secure, warn_line, NULL);
	depth = cfg.stack_depth;
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
	pg_locks_init();
	pg_alloc_set_accounting(0);
	pg_warn_pin_stderr();
	self_pid = getpid();
	load_config(secure);
	/* Test hook: make every Nth allocation of the library fail. */
	fault = secure ? NULL : getenv("PORTGUARD_FAULT_ALLOC");
	if (fault && atoi(fault) > 0) {
		pg_alloc_set_fault((unsigned)atoi(fault));
		pg_arena_set_fault((unsigned)atoi(fault));
	}
	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	exe[n > 0 ? n : 0] = 0;
	read_argv0();
	if (cfg.stack_depth > 0) {
		pg_stack_init();
		pg_python_native = cfg.native_frames;
		pg_python_init();
	}
	pg_reporter_init();
	pg_enforce_load(&cfg);
	add_inherited();
	pg_forking_init();
	__atomic_store_n(&pg_core_ready, 1, __ATOMIC_RELEASE);
	pg_inside--;
	pg_nocancel_end(cancel);
}

void pg_core_init(void)
{
	/* A wrapped call made by our own init (on this thread) must not wait
	 * for the init it is part of. */
	if (pg_inside)
		return;
	pthread_once(&init_once, do_init);
}

void pg_core_init_for_test(const char *options)
{
	pg_inside++;
	pg_real_bind();
	self_pid = getpid();
	pg_config_defaults(&cfg);
	pg_config_parse(&cfg, options, 0, NULL, NULL);
	depth = cfg.stack_depth;
	if (depth > 0)
		pg_stack_init();
	__atomic_store_n(&pg_core_ready, 1, __ATOMIC_RELEASE);
	pg_inside--;
}

__attribute__((constructor)) static void pg_constructor(void)
{
	pg_core_init();
}

/* The exit report. A destructor of a preloaded library runs in _dl_fini,
 * after the program's atexit handlers and its own destructors, so sockets
 * they close are not reported. */
__attribute__((destructor)) static void pg_destructor(void)
{
	if (!pg_core_ready || pg_vfork_child)
		return;
	pg_inside++;
	pg_reporter_exit();
	pg_inside--;
}

/* One thread ends the process. glibc before 2.41 lets two threads run
 * exit() at once: the second finishes the exit handlers and calls _exit()
 * while the first is still writing the exit report in _dl_fini. As glibc
 * 2.41 does, a later caller waits (for ever: the first one ends the
 * process); the same thread calling exit() again from an exit handler goes
 * on, as glibc lets it. */
void pg_core_exit_status(int status)
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
	exit_status_set = 1;
}

/* A child of fork that has not exec'd (exec loads the library anew). */
static int forked;

int pg_core_forked(void)
{
	return forked;
}

void pg_core_fork_child(void)
{
	forked = 1;
	pg_python_fork_child();
	self_pid = getpid();
	exiting = 0;
	exit_status_set = 0;
}

void pg_core_missed(void)
{
	if (!pg_library_thread)
		pg_fdtab_count_lost();
}

/* ---- births ---- */

/* The call site of the caller's stack, stack_depth frames deep. */
static inline uint32_t site_here(void)
{
	return depth ? pg_stack_site(depth) : 0;
}

static inline void born(int fd, int domain, int type, int protocol, unsigned flags, int via,
			uint32_t site)
{
	struct pg_sock_facts f = { .inode = 0,
				   .created_ns = pg_now_coarse_ns(),
				   .site = site,
				   .domain = domain,
				   .type = type >= 0 ? type & ~(SOCK_NONBLOCK | SOCK_CLOEXEC) : -1,
				   .protocol = protocol,
				   .flags = flags,
				   .via = via };
	struct pg_fdtab_gone gone = { 0, 0 };

	/* inode 0: learnt at the first report (an fstat here would cost as
	 * much as the rest of the tracking). */
	if (pg_fdtab_add(fd, &f, pg_enforce_what ? &gone : NULL) == 0 && site)
		pg_sites_count_created(site);
	if (PG_UNLIKELY(gone.pool || gone.dest))
		pg_enforce_release(gone.pool, gone.dest);
	pg_reporter_socket_seen();
}

PG_HOT void pg_core_socket(int fd, int domain, int type, int protocol)
{
	born(fd, domain, type, protocol, 0, PG_VIA_SOCKET, site_here());
}

void pg_core_socketpair(const int sv[2], int domain, int type, int protocol)
{
	uint32_t site = site_here();

	born(sv[0], domain, type, protocol, 0, PG_VIA_SOCKETPAIR, site);
	born(sv[1], domain, type, protocol, 0, PG_VIA_SOCKETPAIR, site);
}

PG_HOT void pg_core_accept(int fd)
{
	born(fd, -1, -1, -1, PG_SOCK_ACCEPTED, PG_VIA_ACCEPT, site_here());
}

void pg_core_received(int fd)
{
	born(fd, -1, -1, -1, PG_SOCK_RECEIVED, PG_VIA_RECVMSG, site_here());
}

/* Descriptors that came over SCM_RIGHTS: the sockets among them are born
 * here, at the recvmsg call's stack (valgrind: "created at recvmsg"). */
void pg_core_received_msg(const struct msghdr *m)
{
	uint32_t site = 0;
	int have_site = 0;

	for (const struct cmsghdr *h = CMSG_FIRSTHDR(m); h;
	     h = CMSG_NXTHDR((struct msghdr *)m, (struct cmsghdr *)h)) {
		const unsigned char *data = CMSG_DATA(h);
		size_t n;
		if (h->cmsg_level != SOL_SOCKET || h->cmsg_type != SCM_RIGHTS ||
		    h->cmsg_len < CMSG_LEN(0))
			continue;
		n = (h->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (size_t i = 0; i < n; i++) {
			struct stat st;
			int fd;
			memcpy(&fd, data + i * sizeof(int), sizeof(int));
			if (fd < 0 || fstat(fd, &st) != 0 || !S_ISSOCK(st.st_mode))
				continue;
			if (!have_site)
				site = site_here(), have_site = 1;
			born(fd, -1, -1, -1, PG_SOCK_RECEIVED, PG_VIA_RECVMSG, site);
		}
	}
}

void pg_core_listen(int fd)
{
	pg_fdtab_set_flags(fd, PG_SOCK_LISTENING);
}

void pg_core_dup(int oldfd, int newfd, int via)
{
	struct pg_fdtab_gone gone;
	uint32_t site = site_here();

	if (pg_fdtab_dup(oldfd, newfd, site, via, &gone) == 0 && site)
		pg_sites_count_created(site);
	if (gone.pool || gone.dest)
		pg_enforce_release(gone.pool, gone.dest);
}

/* ---- closes ---- */

PG_HOT void pg_core_close_begin(int fd, struct pg_core_close *op)
{
	pg_fdtab_close_begin(fd, &op->c, pg_enforce_what & PG_ENFORCE_CHURN);
	/* The last descriptor of a socket with a churn destination: an active
	 * close if the connection is still established. */
	if (PG_UNLIKELY(pg_enforce_what & PG_ENFORCE_CHURN) && op->c.what == PG_ENTRY_LIVE &&
	    op->c.dest && op->c.last)
		pg_enforce_closing(fd, op->c.dest, op->c.site, op->c.flags);
}

PG_HOT void pg_core_close_end(struct pg_core_close *op, enum pg_close_outcome how)
{
	struct pg_fdtab_gone gone = { 0, 0 };
	uint32_t site = 0;

	if (op->c.what == PG_ENTRY_NONE)
		return;
	/* The closing stack: for a tombstone (double-close reports) and for a
	 * double close itself. */
	if ((op->c.what == PG_ENTRY_LIVE && how == PG_CLOSED) ||
	    (op->c.what == PG_ENTRY_TOMB && how == PG_WAS_GONE))
		site = site_here();
	/* A close from a __del__ method is a finalizer's too (SPEC section 2:
	 * the program itself never closed the socket). */
	if (PG_UNLIKELY(pg_python_on) && site && !op->c.finalizer) {
		const struct pg_site *cs = pg_sites_get(site);
		op->c.finalizer = cs && cs->in_del;
	}
	if (PG_UNLIKELY(op->c.finalizer))
		op->c.closed_ns = pg_now_coarse_ns();
	if (pg_fdtab_close_end(&op->c, how, site, pg_enforce_what ? &gone : NULL) &&
	    PG_UNLIKELY(gone.pool || gone.dest))
		pg_enforce_release(gone.pool, gone.dest);
	if (PG_UNLIKELY(pg_enforce_what) && pg_events_pending())
		pg_reporter_wake_events();
}

/* pthread_cancel inside the real close (or fclose): glibc acts on a pending
 * request before the system call, and 2.36 also right after it, so ask the
 * kernel whether the descriptor is still there. */
void pg_core_close_cancelled(struct pg_core_close *op)
{
	if (op->c.what == PG_ENTRY_NONE)
		return;
	pg_core_close_end(op, pg_real.fcntl(op->c.fd, F_GETFD) >= 0 ? PG_NOT_CLOSED : PG_CLOSED);
}

/* A finite range over numbers already closed as sockets: each one the
 * kernel does not have (nothing reopened it, not even behind our back) is
 * closed again by this call (SPEC section 2). Before the call: after it,
 * every number of the range is gone. */
static void range_double_closes(unsigned lo, unsigned hi)
{
	int tombs[64], err = errno;
	size_t n = pg_fdtab_tombs_in((int)lo, (int)hi, tombs, PG_ARRAY_LEN(tombs));

	if (n > PG_ARRAY_LEN(tombs))
		n = PG_ARRAY_LEN(tombs);
	for (size_t i = 0; i < n; i++) {
		struct pg_core_close op;
		if (pg_real.fcntl(tombs[i], F_GETFD) >= 0 || errno != EBADF)
			continue;
		pg_core_close_begin(tombs[i], &op);
		pg_core_close_end(&op, PG_WAS_GONE);
	}
	errno = err;
}

void pg_core_range_begin(unsigned lo, unsigned hi, int finite, struct pg_core_range *r)
{
	int few[32], *fds = few;
	size_t n, cap = 0;

	r->ops = r->few;
	r->n = r->cap = 0;
	if (lo > (unsigned)INT32_MAX)
		return;
	if (hi > (unsigned)INT32_MAX)
		hi = INT32_MAX;
	if (finite)
		range_double_closes(lo, hi);
	n = pg_fdtab_fds_in((int)lo, (int)hi, few, PG_ARRAY_LEN(few));
	if (n > PG_ARRAY_LEN(few)) {
		cap = n;
		fds = pg_arena_alloc(cap * sizeof(int));
		r->ops = pg_arena_alloc(cap * sizeof(*r->ops));
		if (!fds || !r->ops) {
			/* Left for reconciliation: closed_unseen. */
			pg_arena_free(fds, cap * sizeof(int));
			pg_arena_free(r->ops, cap * sizeof(*r->ops));
			r->ops = r->few;
			return;
		}
		r->cap = cap;
		/* Any made since are left to reconciliation. */
		n = pg_fdtab_fds_in((int)lo, (int)hi, fds, cap);
		if (n > cap)
			n = cap;
	}
	for (size_t i = 0; i < n; i++)
		pg_core_close_begin(fds[i], &r->ops[r->n++]);
	if (fds != few)
		pg_arena_free(fds, cap * sizeof(int));
}

void pg_core_range_end(struct pg_core_range *r, int closed)
{
	for (size_t i = 0; i < r->n; i++)
		if (r->ops[i].c.what == PG_ENTRY_LIVE)
			pg_core_close_end(&r->ops[i], closed ? PG_CLOSED : PG_NOT_CLOSED);
	if (r->ops != r->few)
		pg_arena_free(r->ops, r->cap * sizeof(*r->ops));
}

/* ---- the policy ---- */

void pg_core_bind(int fd, const struct sockaddr *addr, socklen_t len)
{
	pg_enforce_bind(fd, addr, len);
}

int pg_core_connect_begin(int fd, const struct sockaddr *addr, socklen_t len,
			  struct pg_enforce_conn *c)
{
	int rc = pg_enforce_connect_begin(fd, addr, len, c);

	if (pg_events_pending())
		pg_reporter_wake_events();
	return rc;
}

void pg_core_connect_end(struct pg_enforce_conn *c, int rc, int err)
{
	pg_enforce_connect_end(c, rc, err);
}

/* pthread_cancel inside the real connect: the slot stays taken only if the
 * socket got connected (glibc 2.36 can act on a cancel after the system
 * call returned). */
void pg_core_connect_cancelled(struct pg_enforce_conn *c)
{
	struct sockaddr_storage ss;
	socklen_t l = sizeof(ss);
	int connected;

	if (c->fd < 0)
		return;
	connected = getpeername(c->fd, (struct sockaddr *)&ss, &l) == 0;
	pg_enforce_connect_end(c, connected ? 0 : -1, connected ? 0 : EINTR);
}

void pg_core_shutdown(int fd, int how)
{
	pg_enforce_shutdown(fd, how);
	if (pg_events_pending())
		pg_reporter_wake_events();
}
