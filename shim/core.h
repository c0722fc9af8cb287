/* The library's core: the one owner of its state (options, the process's
 * identity, the lifecycle from load to the exit report) and the API that
 * the wrappers of shim/interpose.c call, and the unit tests call directly.
 * Calls flow down from here: to the registry (fdtab), call sites and stacks,
 * the policy (enforce), events and the report orchestration (reporter).
 *
 * Every hook is called after (or around) the real call, with the "inside"
 * guard set by the wrapper, and changes no errno. */
#ifndef PG_CORE_H
#define PG_CORE_H

#include <stdint.h>
#include <sys/socket.h>

#include "shim/common.h"
#include "shim/config.h"
#include "shim/fdtab.h"

struct pg_enforce_conn;

extern int pg_core_ready;
void pg_core_init(void);

/* Whether this call is to be recorded: the library is initialised (done
 * here on the first call), and the caller is not the library itself or a
 * vfork child. */
static inline int pg_core_on(void)
{
	if (PG_UNLIKELY(!__atomic_load_n(&pg_core_ready, __ATOMIC_ACQUIRE)))
		pg_core_init();
	return !(pg_inside | pg_vfork_child);
}

/* A socket made, or closed, while the library was busy on this thread (a
 * signal handler on top of it): not recorded, counted in totals.lost. */
void pg_core_missed(void);

/* Births: socket, socketpair, accept/accept4, a socket received over
 * SCM_RIGHTS. */
void pg_core_socket(int fd, int domain, int type, int protocol);
void pg_core_socketpair(const int sv[2], int domain, int type, int protocol);
void pg_core_accept(int fd);
void pg_core_received(int fd);
struct msghdr;
void pg_core_received_msg(const struct msghdr *m);
void pg_core_listen(int fd);
/* newfd is another descriptor of oldfd's socket (via: PG_VIA_DUP, ...). */
void pg_core_dup(int oldfd, int newfd, int via);

/* A descriptor that may close: begin before the real call, end after (or
 * cancelled, when pthread_cancel unwound the real call). */
struct pg_core_close {
	struct pg_fdtab_close c;
};
void pg_core_close_begin(int fd, struct pg_core_close *op);
void pg_core_close_end(struct pg_core_close *op, enum pg_close_outcome how);
void pg_core_close_cancelled(struct pg_core_close *op);

/* close_range / closefrom: every tracked descriptor in [lo, hi]. */
struct pg_core_range {
	struct pg_core_close few[32], *ops;
	size_t n, cap; /* cap: entries of ops when it is not few */
};
/* finite: a range with an upper bound (close_range(3, 9)), whose numbers
 * already closed count as closed again; closefrom and close_range(fd, ~0U)
 * close "everything from here" and never do. */
void pg_core_range_begin(unsigned lo, unsigned hi, int finite, struct pg_core_range *r);
void pg_core_range_end(struct pg_core_range *r, int closed);

/* The policy around bind, connect and shutdown. connect_begin returns 0 or
 * -EADDRNOTAVAIL (the pool denies: the wrapper fails the call). */
void pg_core_bind(int fd, const struct sockaddr *addr, socklen_t len);
int pg_core_connect_begin(int fd, const struct sockaddr *addr, socklen_t len,
			  struct pg_enforce_conn *c);
void pg_core_connect_end(struct pg_enforce_conn *c, int rc, int err);
void pg_core_connect_cancelled(struct pg_enforce_conn *c);
void pg_core_shutdown(int fd, int how);

/* exit(status), or main returning status: the first thread to get here
 * ends the process (a later one waits; see core.c). */
void pg_core_exit_status(int status);

/* For the modules below: the options and the process's identity. */
const struct pg_config *pg_core_config(void);
int pg_core_pid(void);
/* argv[0] as the program was run ("" when unknown). */
const char *pg_core_argv0(void);
/* 1 in a child of fork (until it execs). */
int pg_core_forked(void);
const char *pg_core_exe(void);
int pg_core_exit_status_known(int *status);

/* fork child: its own pid, no exit under way (shim/forking.c). */
void pg_core_fork_child(void);

/* Tests: the core with these options, as if the library had just loaded
 * in this process (no constructor, no report thread, no fork handlers). */
void pg_core_init_for_test(const char *options);

#endif
