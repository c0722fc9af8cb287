/* The reuse policy applied inside the program (SPEC section 5): options set
 * before bind, pool slots around connect, churn counted at active closes.
 * Decisions come from policy/ (pure); this module keeps the state and the
 * counters and says what happened. */
#ifndef PG_ENFORCE_H
#define PG_ENFORCE_H

#include <sys/socket.h>

#include "shim/config.h"
#include "shim/registry.h"

struct pg_out;

enum {
	PG_ENFORCE_BIND = 1u << 0, /* options to set before bind */
	PG_ENFORCE_CONNECT = 1u << 1, /* pool rules or churn: look at connects */
	PG_ENFORCE_CHURN = 1u << 2, /* churn: look at closes and shutdowns */
};
/* What the loaded policy asks for (0: nothing, the fast path). */
extern unsigned pg_enforce_what;

/* Loads the policy file and shorthands of cfg. Returns 0, or -EINVAL when
 * the file is invalid (nothing applied; the message is kept for the report
 * and returned through *err). */
int pg_enforce_load(const struct pg_config *cfg, const char **err);

void pg_enforce_bind(int fd, const struct sockaddr *addr, socklen_t len);

struct pg_enforce_conn {
	int fd;
	int rule; /* pool rule whose slot this connect took, or -1 */
	void *dest;
};
/* Before connect: 0 to go on, -EADDRNOTAVAIL when the pool denies it. */
int pg_enforce_connect_begin(int fd, const struct sockaddr *addr, socklen_t len,
			     struct pg_enforce_conn *c);
void pg_enforce_connect_end(struct pg_enforce_conn *c, int rc, int err);

/* The last handle of a socket is about to close (c from the registry). */
void pg_enforce_closing(const struct pg_closing *c);
void pg_enforce_shutdown(int fd, int how);

/* The "policy" and "destinations" sections of a report. */
void pg_enforce_report(void *arg, struct pg_out *o, int json);
/* Policy events so far: a clean exit report to a stream still prints. */
unsigned long pg_enforce_events(void);

/* fork child: its own counters, its waiters gone. */
void pg_enforce_fork_child(void);

/* Provided by track.c: write one event line where reports go, capture the
 * caller's stack, reconcile the registry with the kernel. */
void pg_track_emit_event(const char *text, const char *json);
const struct pg_site *pg_track_capture(void);
void pg_track_reconcile(void);

#endif
