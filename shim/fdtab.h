/* The registry: which descriptors name which sockets. Pure bookkeeping: no
 * system call but mmap for its memory, no logging, no malloc; the callers
 * give it the facts (inode, time, call site) they got from the kernel.
 *
 * Descriptor -> socket is a flat table indexed by descriptor number (small
 * dense integers, as fdsan indexes them), in chunks that are mapped when
 * first needed and never freed. Each descriptor number belongs to a shard
 * (fd % PG_SHARDS) whose lock (shim/locks.h) guards its slots, its counts,
 * its free records and its double closes: threads working on different
 * descriptors rarely meet, and holding every shard lock is a freeze, the
 * moment a report's snapshot and counts are taken together. */
#ifndef PG_FDTAB_H
#define PG_FDTAB_H

#include <stddef.h>
#include <stdint.h>

#include "shim/locks.h"

/* How a descriptor came to be. */
enum pg_via {
	PG_VIA_SOCKET = 1,
	PG_VIA_SOCKETPAIR,
	PG_VIA_ACCEPT,
	PG_VIA_RECVMSG,
	PG_VIA_INHERITED,
	PG_VIA_DUP,
	PG_VIA_DUP2,
	PG_VIA_DUP3,
	PG_VIA_FCNTL,
};
const char *pg_via_name(int via);

enum {
	PG_SOCK_INHERITED = 1u << 0, /* open when the library loaded, or at fork */
	PG_SOCK_LISTENING = 1u << 1, /* listen() succeeded on it */
	PG_SOCK_ACCEPTED = 1u << 2, /* made by accept/accept4 */
	PG_SOCK_RECEIVED = 1u << 3, /* came over SCM_RIGHTS */
	PG_SOCK_ACTIVE_CLOSED = 1u << 4, /* its active close was counted (shutdown) */
	PG_SOCK_FINALIZED = 1u << 5, /* reports: closed by the interpreter's finalizer */
	PG_SOCK_FIN_CLOSING = 1u << 6, /* being closed by the finalizer */
};

/* A new socket's facts. */
struct pg_sock_facts {
	uint64_t inode; /* 0: not known yet (learnt at the first report) */
	int64_t created_ns;
	uint32_t site; /* call site id (shim/sites.h), 0: none */
	int domain, type, protocol; /* -1: not known */
	unsigned flags;
	int via;
};

/* Counts of sockets (not descriptors), each counting what happened. */
struct pg_counts {
	uint64_t created, inherited, received, closed, closed_unseen, double_closes;
	uint64_t finalized; /* of closed: by the interpreter's finalizer */
};

/* What a socket that went held for the policy (shim/enforce.c): the
 * caller gives it back. */
struct pg_fdtab_gone {
	uint32_t pool, dest;
};

/* Records a new socket on fd. A socket still recorded on fd was closed
 * behind our back: counted closed_unseen, its policy state in *gone.
 * Returns 0, -ENOMEM or -EAGAIN (the lock could not be had); a failure is
 * counted in lost. */
int pg_fdtab_add(int fd, const struct pg_sock_facts *f, struct pg_fdtab_gone *gone);

/* newfd becomes another descriptor of oldfd's socket (dup & co.), made at
 * site by via. 0, -ENOENT (oldfd not tracked), -ENOMEM or -EAGAIN. */
int pg_fdtab_dup(int oldfd, int newfd, uint32_t site, int via, struct pg_fdtab_gone *gone);

/* close in two steps around the real call. begin (no lock) says what is
 * there, and with policy what the socket holds, and claims the descriptor:
 * until end, reconciliation leaves it alone, and a new socket that takes
 * the number first counts it closed. end settles it under the lock. */
enum { PG_ENTRY_NONE, PG_ENTRY_TOMB, PG_ENTRY_LIVE };
enum pg_close_outcome {
	PG_CLOSED, /* the kernel released the descriptor */
	PG_NOT_CLOSED, /* the call failed and the descriptor is still there */
	PG_WAS_GONE, /* EBADF: it had been closed behind our back */
};
struct pg_fdtab_close {
	int fd;
	int what; /* PG_ENTRY_* */
	void *desc; /* LIVE: the descriptor being closed */
	uint32_t gen; /* LIVE: its generation and state as claimed */
	uint64_t tomb; /* TOMB: what the slot held */
	/* LIVE, with policy: the socket's; last is 1 when this is its last
	 * descriptor (the connection really ends). */
	uint32_t site, pool, dest;
	unsigned flags;
	int last, type;
	/* Set by the caller between begin and end: the close is the
	 * interpreter's finalizer's (shim/python.h), at closed_ns. */
	int finalizer;
	int64_t closed_ns;
};
int pg_fdtab_close_begin(int fd, struct pg_fdtab_close *c, int policy);
/* Between begin and the real call: the close is the interpreter's
 * finalizer's (also when a new socket takes the number before end runs). */
void pg_fdtab_close_mark_finalizer(struct pg_fdtab_close *c);
/* Returns 1 when the socket went (its policy state in *gone). A close of a
 * descriptor this process closed already as a socket (TOMB, PG_WAS_GONE,
 * nothing reopened since) is a double close: recorded with close_site. */
int pg_fdtab_close_end(struct pg_fdtab_close *c, enum pg_close_outcome how, uint32_t close_site,
		       struct pg_fdtab_gone *gone);

/* What the policy needs of fd's socket. 0 or -ENOENT. */
struct pg_fdtab_view {
	int domain, type, protocol;
	unsigned flags;
	uint32_t site, pool, dest;
	const void *desc, *sock; /* identity, for pg_fdtab_drop_view */
	uint32_t gen;
};
int pg_fdtab_get(int fd, struct pg_fdtab_view *v);
/* Drops fd's descriptor if it is still the one v saw (the kernel says it
 * is gone): counted as reconciliation does. 1 when the socket went. */
int pg_fdtab_drop_view(int fd, const struct pg_fdtab_view *v, struct pg_fdtab_gone *gone);
/* Sets pool (when the socket holds none) and dest (when not 0); 0, -ENOENT,
 * -EEXIST (it holds a slot already: pool not set). */
int pg_fdtab_set_policy(int fd, uint32_t pool, uint32_t dest);
void pg_fdtab_set_flags(int fd, unsigned flags);

/* Tracked descriptors in [lo, hi] (close_range, closefrom): fills up to max
 * of out, returns how many there are. */
size_t pg_fdtab_fds_in(int lo, int hi, int *out, size_t max);
/* Numbers in [lo, hi] this process closed as sockets and nothing reopened
 * since, as far as it saw (double-close candidates); same convention. */
size_t pg_fdtab_tombs_in(int lo, int hi, int *out, size_t max);

/* One descriptor at the cut, with its socket's facts as they were. */
struct pg_snap {
	int fd;
	uint8_t via;
	uint32_t desc_site; /* where this descriptor was made, 0 for the first */
	const void *desc; /* identity of the descriptor record */
	const void *sock; /* identity of the socket (with gen) */
	uint32_t gen;
	uint64_t inode;
	int64_t created_ns;
	uint32_t site;
	int domain, type, protocol;
	unsigned flags;
};

/* A double close. Entries are only prepended and never freed (but by a
 * fork child or a reset); count grows. */
struct pg_dclose {
	int fd;
	uint64_t count;
	uint32_t created, closed, again; /* call sites */
	struct pg_dclose *next;
};

/* A socket the interpreter's finalizer closed (the program never did):
 * kept to be listed, up to PG_FINALIZED_KEPT of them; only prepended, never
 * freed (but by a fork child or a reset). */
struct pg_final {
	int64_t created_ns, closed_ns;
	uint32_t site;
	int domain, type, protocol;
	unsigned flags;
	struct pg_final *next;
};
#define PG_FINALIZED_KEPT 8192

/* A cut: every descriptor and every count at one moment (the freeze). */
struct pg_cut {
	struct pg_counts n;
	const struct pg_final *fins[PG_SHARDS];
	uint64_t fins_listed; /* entries in the fins lists */
	size_t listed; /* entries filled in */
	size_t unlisted; /* descriptors that did not fit */
	uint64_t sockets; /* distinct sockets, listed or not */
	const struct pg_dclose *dcs[PG_SHARDS];
};
/* Fills up to cap entries of buf, in descriptor order. */
void pg_fdtab_cut(struct pg_snap *buf, size_t cap, struct pg_cut *cut);
/* Whether this process (since its fork) has made or received no socket and
 * closed none twice: then it cannot have leaked one. */
int pg_fdtab_nothing_own(void);
/* About how many descriptors are tracked now (for sizing memory). */
size_t pg_fdtab_size_hint(void);

/* Reconciliation with the kernel, after a cut. drop: the kernel no longer
 * has s's descriptor (or it names another socket): if the table still
 * holds it as it was, it is dropped, and its socket, if that was its last
 * descriptor, counted closed_unseen; returns 1 then (*gone filled when the
 * socket went), 0 when it changed since the cut. learn: the kernel's inode
 * for a socket recorded without one. */
int pg_fdtab_drop(const struct pg_snap *s, int *socket_gone, struct pg_fdtab_gone *gone);
void pg_fdtab_learn_inode(const struct pg_snap *s, uint64_t inode);
/* Whether fd holds a tracked descriptor now (made after a cut). */
int pg_fdtab_tracked(int fd);

/* Calls that could not be recorded (no memory, a lock not to be had). */
void pg_fdtab_count_lost(void);
uint64_t pg_fdtab_lost(void);

/* fork child: every socket becomes inherited, the counts start over, the
 * parent's closes and double closes are forgotten. Called with every lock
 * held (shim/locks.h), before they are freed. */
void pg_fdtab_fork_child(void);

/* Tests and benches: everything forgotten. */
void pg_fdtab_reset(void);
/* Bytes held for records and slots (the benches' figure). */
size_t pg_fdtab_bytes(void);

#endif
