#include "shim/sockinfo.h"

#include "common/names.h"
#include "shim/common.h"
#include "shim/real.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/tcp.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

uint64_t pg_sockinfo_inode(int fd)
{
	struct stat st;

	if (fstat(fd, &st) < 0 || !S_ISSOCK(st.st_mode))
		return 0;
	return st.st_ino;
}

/* open host close ':' port into out, without printf (every socket of a
 * report is formatted). */
static void put_host_port(char *out, size_t size, const char *open, const char *host,
			  const char *close, unsigned port)
{
	char num[8], *p = num + sizeof(num);
	size_t n = 0;
	const char *parts[4] = { open, host, close, ":" };

	*--p = 0;
	do
		*--p = (char)('0' + port % 10);
	while ((port /= 10));
	for (int i = 0; i < 5; i++) {
		const char *s = i < 4 ? parts[i] : p;
		while (*s && n + 1 < size)
			out[n++] = *s++;
	}
	out[n < size ? n : size - 1] = 0;
}

static void format_addr(const struct sockaddr_storage *ss, socklen_t len, char *out, size_t size)
{
	char ip[INET6_ADDRSTRLEN];

	out[0] = 0;
	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *in = (const void *)ss;
		inet_ntop(AF_INET, &in->sin_addr, ip, sizeof(ip));
		put_host_port(out, size, "", ip, "", ntohs(in->sin_port));
	} else if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const void *)ss;
		inet_ntop(AF_INET6, &in6->sin6_addr, ip, sizeof(ip));
		put_host_port(out, size, "[", ip, "]", ntohs(in6->sin6_port));
	} else if (ss->ss_family == AF_UNIX) {
		const struct sockaddr_un *un = (const void *)ss;
		size_t plen = len > offsetof(struct sockaddr_un, sun_path)
				  ? len - offsetof(struct sockaddr_un, sun_path)
				  : 0;
		if (plen == 0)
			return;
		if (un->sun_path[0] == 0) {
			/* Abstract names are shown as ss does, with '@'. */
			snprintf(out, size, "@%.*s", (int)(plen - 1), un->sun_path + 1);
		} else {
			snprintf(out, size, "%.*s", (int)strnlen(un->sun_path, plen), un->sun_path);
		}
	}
}

void pg_sockinfo_query(int fd, struct pg_sockinfo *si)
{
	struct sockaddr_storage ss;
	socklen_t len, il = sizeof(int);
	int v, domain = si->domain, type = si->type, protocol = si->protocol, inet;

	/* As few calls as the socket needs: a 20,000-socket report makes these
	 * for every socket. */
	memset(si, 0, sizeof(*si));
	si->domain = domain;
	si->type = type;
	si->protocol = protocol;
	if (domain < 0 && !getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &v, &il))
		si->domain = v;
	il = sizeof(int);
	if (type < 0 && !getsockopt(fd, SOL_SOCKET, SO_TYPE, &v, &il))
		si->type = v;
	il = sizeof(int);
	inet = si->domain == AF_INET || si->domain == AF_INET6;
	/* Protocol 0 of an IP stream or datagram socket is TCP or UDP (the
	 * kernel's default); anything else, ask. */
	if (protocol <= 0 && inet && si->type == SOCK_STREAM)
		si->protocol = IPPROTO_TCP;
	else if (protocol <= 0 && inet && si->type == SOCK_DGRAM)
		si->protocol = IPPROTO_UDP;
	else if (protocol <= 0 && !getsockopt(fd, SOL_SOCKET, SO_PROTOCOL, &v, &il))
		si->protocol = v;
	il = sizeof(int);
	if (inet && si->type == SOCK_STREAM && si->protocol == IPPROTO_TCP) {
		/* The state also says whether it listens. */
		struct tcp_info ti;
		socklen_t tl = sizeof(ti);
		if (!getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &tl))
			si->tcp_state = ti.tcpi_state;
		si->listening = si->tcp_state == PG_TCP_LISTEN;
	} else if (si->type != SOCK_DGRAM && !getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &v, &il)) {
		si->listening = v != 0;
	}
	len = sizeof(ss);
	memset(&ss, 0, sizeof(ss));
	if (!getsockname(fd, (struct sockaddr *)&ss, &len))
		format_addr(&ss, len, si->local, sizeof(si->local));
	/* A listening or never-connected TCP socket has no peer. */
	if (si->listening || si->tcp_state == PG_TCP_CLOSE)
		return;
	len = sizeof(ss);
	memset(&ss, 0, sizeof(ss));
	if (!getpeername(fd, (struct sockaddr *)&ss, &len))
		format_addr(&ss, len, si->remote, sizeof(si->remote));
}

const char *pg_sockinfo_family_name(int domain)
{
	switch (domain) {
	case AF_INET: return "inet";
	case AF_INET6: return "inet6";
	case AF_UNIX: return "unix";
	case AF_NETLINK: return "netlink";
	case AF_PACKET: return "packet";
	default: return NULL;
	}
}

const char *pg_sockinfo_type_name(int type)
{
	switch (type & 0xf) {
	case SOCK_STREAM: return "stream";
	case SOCK_DGRAM: return "dgram";
	case SOCK_SEQPACKET: return "seqpacket";
	case SOCK_RAW: return "raw";
	case SOCK_RDM: return "rdm";
	default: return NULL;
	}
}

const char *pg_sockinfo_proto_name(int domain, int type, int protocol)
{
	if (domain == AF_UNIX)
		return "unix";
	if (domain == AF_NETLINK)
		return "netlink";
	if (domain != AF_INET && domain != AF_INET6)
		return NULL;
	switch (protocol) {
	case IPPROTO_TCP: return "tcp";
	case IPPROTO_UDP: return "udp";
	case IPPROTO_UDPLITE: return "udplite";
	case IPPROTO_SCTP: return "sctp";
	case IPPROTO_ICMP: return "icmp";
	case IPPROTO_ICMPV6: return "icmpv6";
	case IPPROTO_MPTCP: return "mptcp";
	case 0:
		if ((type & 0xf) == SOCK_STREAM)
			return "tcp";
		if ((type & 0xf) == SOCK_DGRAM)
			return "udp";
		return NULL;
	default: return (type & 0xf) == SOCK_RAW ? "raw" : NULL;
	}
}

const char *pg_sockinfo_tcp_state_name(int state)
{
	return pg_names_tcp_state(state);
}

int pg_sockinfo_scan_own(void (*fn)(int fd, uint64_t inode, void *arg), void *arg)
{
	/* The entries of /proc/self/fd, read with getdents64 into a buffer on
	 * the stack (no malloc: this can run inside the first wrapped call,
	 * wherever the program makes it), then an fstat of each. The
	 * directory's own descriptor is skipped. */
	char buf[4096];
	int dir = open("/proc/self/fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	long n;

	if (dir < 0)
		return -errno;
	while ((n = pg_raw_syscall(SYS_getdents64, dir, (long)buf, sizeof(buf), 0, 0, 0)) > 0) {
		for (long off = 0; off < n;) {
			const struct {
				uint64_t ino;
				int64_t off;
				unsigned short reclen;
				unsigned char type;
				char name[];
			} *d = (const void *)(buf + off);
			int fd = 0;
			const char *c = d->name;
			off += d->reclen;
			if (*c < '0' || *c > '9')
				continue;
			for (; *c >= '0' && *c <= '9'; c++)
				fd = fd * 10 + (*c - '0');
			if (fd != dir) {
				uint64_t ino = pg_sockinfo_inode(fd);
				if (ino)
					fn(fd, ino, arg);
			}
		}
	}
	pg_real.close(dir);
	return n < 0 ? (int)n : 0;
}
