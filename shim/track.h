/* What the wrappers in interpose.c tell the library. Each hook is called
 * after the real call (or around it, for closes), with errno already saved by
 * the wrapper; none of them changes errno. */
#ifndef PG_TRACK_H
#define PG_TRACK_H

#include <stdio.h>
#include <sys/socket.h>

#include "shim/common.h"
#include "shim/registry.h"

extern int pg_ready;
void pg_track_init(void);

static inline int pg_track_active(void)
{
	if (PG_UNLIKELY(!__atomic_load_n(&pg_ready, __ATOMIC_ACQUIRE)))
		pg_track_init();
	return !(pg_inside | pg_vfork_child);
}

/* vfork's error path (errno from the asm stub in interpose.c). */
int pg_vfork_fail(int err);

void pg_track_socket(int fd, int domain, int type, int protocol);
void pg_track_socketpair(const int sv[2], int domain, int type, int protocol);
void pg_track_accept(int fd);
void pg_track_listen(int fd);
void pg_track_dup(int oldfd, int newfd);

/* A descriptor that may close: begin before the real call, end after. */
struct pg_close_op {
	struct pg_closing c;
	int what; /* PG_ENTRY_* */
};
void pg_track_close_begin(int fd, struct pg_close_op *op);
void pg_track_close_end(struct pg_close_op *op, enum pg_close_outcome how);
/* The thread was cancelled inside the real call: settle op as the kernel
 * says it went. */
void pg_track_close_cancelled(struct pg_close_op *op);

/* close_range / closefrom: every tracked fd in [lo, hi]. */
struct pg_range_op {
	struct pg_close_op *ops;
	size_t n;
};
void pg_track_range_begin(unsigned lo, unsigned hi, struct pg_range_op *r);
void pg_track_range_end(struct pg_range_op *r, int closed);

void pg_track_exit_status(int status);

/* The policy around bind, connect and shutdown. connect_begin returns 0 or
 * -EADDRNOTAVAIL (the pool denies: the wrapper fails the call). */
struct pg_enforce_conn;
void pg_track_bind(int fd, const struct sockaddr *addr, socklen_t len);
int pg_track_connect_begin(int fd, const struct sockaddr *addr, socklen_t len,
			   struct pg_enforce_conn *c);
void pg_track_connect_end(struct pg_enforce_conn *c, int rc, int err);
void pg_track_connect_cancelled(struct pg_enforce_conn *c);
void pg_track_shutdown(int fd, int how);

#endif
