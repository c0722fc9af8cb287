/* The kernel's TCP socket table, read through sock_diag netlink as ss(8)
 * does, or from /proc/net/tcp{,6} where netlink is not available. */
#ifndef PG_SOCKTAB_H
#define PG_SOCKTAB_H

#include <stddef.h>
#include <stdint.h>

/* One TCP socket. Addresses are 16 bytes; an IPv4 one (also an IPv4-mapped
 * IPv6 one, which takes its port from the same pool) is stored as family 4
 * in the first 4 bytes. Ports in host order. */
struct pg_tcpsock {
	uint8_t laddr[16], raddr[16];
	uint64_t inode; /* 0: no owner (TIME_WAIT, orphaned) */
	uint16_t lport, rport;
	uint8_t family; /* 4 or 6 */
	uint8_t state; /* TCP_ESTABLISHED ... (netinet/tcp.h numbering) */
};

struct pg_socktab {
	struct pg_tcpsock *v;
	size_t n, cap;
	const char *source; /* "sock_diag" or "proc" */
};

/* Reads every TCP socket of the network namespace. 0 or -errno (netlink
 * refused; the caller falls back to the /proc reader). */
int pg_socktab_read_diag(struct pg_socktab *t);
/* The same from /proc/net/tcp and /proc/net/tcp6. 0 or -errno. */
int pg_socktab_read_proc(struct pg_socktab *t);
/* Parses one /proc/net/tcp{,6} line; 0, or -EINVAL (a header or garbage). */
int pg_socktab_parse_line(const char *line, int family, struct pg_tcpsock *out);

void pg_socktab_free(struct pg_socktab *t);

/* "ESTABLISHED", "TIME_WAIT", ...: the kernel's names; NULL when unknown. */
/* "127.0.0.1", "::1" (no brackets). */
void pg_socktab_addr_str(int family, const uint8_t *addr, char *buf, size_t size);

#endif
