/* Who holds which socket: a walk of /proc/PID/fd, the way ss -p and lsof
 * find owners, plus each process's RLIMIT_NOFILE from /proc/PID/limits. */
#ifndef PG_PROCSCAN_H
#define PG_PROCSCAN_H

#include <stddef.h>
#include <stdint.h>

struct pg_owner {
	uint64_t inode;
	int pid;
};

struct pg_proc {
	int pid;
	long fds; /* open descriptors */
	long sockets; /* of which sockets */
	long fd_limit; /* soft RLIMIT_NOFILE; -1 unlimited or unknown */
};

struct pg_procscan {
	struct pg_owner *owners; /* sorted by inode, then pid; one per pair */
	size_t nowners, capowners;
	struct pg_proc *procs; /* sorted by pid */
	size_t nprocs, capprocs;
	long unreadable; /* processes whose fds we may not read */
};

/* Scans every process but skip_pid (0: none), or only only_pid (> 0).
 * Returns 0, or for only_pid -ESRCH / -EACCES when it cannot be read. */
int pg_procscan_run(struct pg_procscan *s, int only_pid, int skip_pid);
void pg_procscan_free(struct pg_procscan *s);

/* The pids holding inode: *first and the count (0 when none). */
size_t pg_procscan_owners_of(const struct pg_procscan *s, uint64_t inode, size_t *first);
const struct pg_proc *pg_procscan_find(const struct pg_procscan *s, int pid);

/* /proc/PID/comm without the newline, or "?". */
void pg_procscan_comm(int pid, char *buf, size_t size);

/* Parses "socket:[12345]"; 0 when it is not a socket. */
uint64_t pg_procscan_socket_inode(const char *link, size_t len);
/* The soft limit of "Max open files" in a /proc/PID/limits text; -1 when
 * unlimited or absent. */
long pg_procscan_parse_limits(const char *text);

#endif
