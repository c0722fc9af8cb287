/* The reuse policy applied inside the program (SPEC section 5): options set
 * before bind, pool slots around connect, churn counted at active closes.
 * Decisions come from policy/ (pure); this module keeps the state and the
 * counters and says what happened (events). It calls only down: the
 * registry, call sites, events. */
#ifndef PG_ENFORCE_H
#define PG_ENFORCE_H

#include <stdint.h>
#include <sys/socket.h>

#include "shim/config.h"

struct pg_out;

enum {
	PG_ENFORCE_BIND = 1u << 0, /* options to set before bind */
	PG_ENFORCE_CONNECT = 1u << 1, /* pool rules or churn: look at connects */
	PG_ENFORCE_CHURN = 1u << 2, /* churn: look at closes and shutdowns */
};
/* What the loaded policy asks for (0: nothing, the fast path). */
extern unsigned pg_enforce_what;

/* Loads the policy file and shorthands of cfg. An invalid file: one
 * warning, nothing applied, a policy_error event, and with strict=1 the
 * program ends with status 2. */
void pg_enforce_load(const struct pg_config *cfg);

void pg_enforce_bind_slow(int fd, const struct sockaddr *addr, socklen_t len);
static inline void pg_enforce_bind(int fd, const struct sockaddr *addr, socklen_t len)
{
	if (pg_enforce_what & PG_ENFORCE_BIND)
		pg_enforce_bind_slow(fd, addr, len);
}

struct pg_enforce_conn {
	int fd;
	int rule; /* pool rule whose slot this connect took, or -1 */
	uint32_t dest; /* churn destination id, 0 none */
};
/* Before connect: 0 to go on, -EADDRNOTAVAIL when the pool denies it. */
int pg_enforce_connect_slow(int fd, const struct sockaddr *addr, socklen_t len,
			    struct pg_enforce_conn *c);
static inline int pg_enforce_connect_begin(int fd, const struct sockaddr *addr, socklen_t len,
					   struct pg_enforce_conn *c)
{
	c->fd = -1;
	if (!(pg_enforce_what & PG_ENFORCE_CONNECT))
		return 0;
	return pg_enforce_connect_slow(fd, addr, len, c);
}
void pg_enforce_connect_end(struct pg_enforce_conn *c, int rc, int err);

/* The last descriptor of a socket with destination dest is about to close
 * (made at site, flags its registry flags). */
void pg_enforce_closing(int fd, uint32_t dest, uint32_t site, unsigned flags);
void pg_enforce_shutdown_slow(int fd, int how);
static inline void pg_enforce_shutdown(int fd, int how)
{
	if (pg_enforce_what & PG_ENFORCE_CHURN)
		pg_enforce_shutdown_slow(fd, how);
}
/* A socket that held a pool slot or a destination went, however it went. */
void pg_enforce_release(uint32_t pool, uint32_t dest);

/* The "policy" and "destinations" sections of a report. */
void pg_enforce_report(struct pg_out *o, int json);
/* Policy events so far: a clean exit report to a stream still prints. */
unsigned long pg_enforce_events(void);

/* fork child: its own counters. */
void pg_enforce_fork_child(void);

#endif
