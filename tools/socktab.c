#include "tools/socktab.h"

#include "tools/cli.h"

#include <arpa/inet.h>
#include <errno.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

void pg_socktab_addr_str(int family, const uint8_t *addr, char *buf, size_t size)
{
	if (!inet_ntop(family == 4 ? AF_INET : AF_INET6, addr, buf, (socklen_t)size))
		snprintf(buf, size, "?");
}

void pg_socktab_free(struct pg_socktab *t)
{
	free(t->v);
	t->v = NULL;
	t->n = t->cap = 0;
}

static struct pg_tcpsock *push(struct pg_socktab *t)
{
	if (t->n == t->cap) {
		t->cap = t->cap ? t->cap * 2 : 4096;
		t->v = pg_cli_realloc(t->v, t->cap * sizeof(*t->v));
	}
	return &t->v[t->n++];
}

/* An IPv6 socket talking to ::ffff:a.b.c.d uses the IPv4 port space. */
static void set_addr(uint8_t *out, uint8_t *family, const void *raw, int af)
{
	static const uint8_t mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

	memset(out, 0, 16);
	if (af == AF_INET) {
		memcpy(out, raw, 4);
		*family = 4;
	} else if (memcmp(raw, mapped, 12) == 0) {
		memcpy(out, (const uint8_t *)raw + 12, 4);
		*family = 4;
	} else {
		memcpy(out, raw, 16);
		*family = 6;
	}
}

/* The states ss -a asks for: 1..TCP_NEW_SYN_RECV; "bound-inactive" sockets
 * (no 4-tuple) are left out, as ss leaves them out. */
#define PG_DIAG_STATES 0x1ffeu
#define PG_DIAG_LISTEN (1u << 10) /* TCP_LISTEN */

static int dump_family(int nl, int af, unsigned states, struct pg_socktab *t)
{
	struct {
		struct nlmsghdr nlh;
		struct inet_diag_req_v2 r;
	} req;
	struct sockaddr_nl sa = { .nl_family = AF_NETLINK };
	/* Big reads: one recv takes as many messages as the kernel has queued. */
	static char buf[1 << 16] __attribute__((aligned(8)));
	ssize_t n;

	memset(&req, 0, sizeof(req));
	req.nlh.nlmsg_len = sizeof(req);
	req.nlh.nlmsg_type = SOCK_DIAG_BY_FAMILY;
	req.nlh.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
	req.nlh.nlmsg_seq = (uint32_t)af;
	req.r.sdiag_family = (uint8_t)af;
	req.r.sdiag_protocol = IPPROTO_TCP;
	req.r.idiag_states = states;
	if (sendto(nl, &req, sizeof(req), 0, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		return -errno;
	for (;;) {
		n = recv(nl, buf, sizeof(buf), 0);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			return -EIO;
		for (struct nlmsghdr *h = (struct nlmsghdr *)buf; NLMSG_OK(h, (size_t)n);
		     h = NLMSG_NEXT(h, n)) {
			const struct inet_diag_msg *m;
			struct pg_tcpsock *s;

			if (h->nlmsg_type == NLMSG_DONE)
				return 0;
			if (h->nlmsg_type == NLMSG_ERROR) {
				const struct nlmsgerr *e = NLMSG_DATA(h);
				return h->nlmsg_len >= NLMSG_LENGTH(sizeof(*e)) && e->error
					   ? e->error
					   : -EIO;
			}
			if (h->nlmsg_type != SOCK_DIAG_BY_FAMILY ||
			    h->nlmsg_len < NLMSG_LENGTH(sizeof(*m)))
				continue;
			m = NLMSG_DATA(h);
			s = push(t);
			set_addr(s->laddr, &s->family, m->id.idiag_src, m->idiag_family);
			set_addr(s->raddr, &s->family, m->id.idiag_dst, m->idiag_family);
			s->lport = ntohs(m->id.idiag_sport);
			s->rport = ntohs(m->id.idiag_dport);
			s->state = m->idiag_state;
			s->inode = m->idiag_inode;
		}
	}
}

int pg_socktab_read_diag(struct pg_socktab *t)
{
	/* Listeners first, in a dump of their own: a dump is not atomic, and on
	 * a machine where sockets come and go by the thousand a resumed dump can
	 * skip entries. The listening table is small (one batch, as a rule), and
	 * a listener missed would make its server-side sockets look like
	 * clients holding ephemeral ports. */
	static const unsigned passes[] = { PG_DIAG_LISTEN, PG_DIAG_STATES & ~PG_DIAG_LISTEN };
	int nl, r = 0;

	nl = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
	if (nl < 0)
		return -errno;
	for (size_t i = 0; i < sizeof(passes) / sizeof(passes[0]) && r == 0; i++) {
		r = dump_family(nl, AF_INET, passes[i], t);
		/* A kernel without IPv6 answers the second dump with an error. */
		if (r == 0 && dump_family(nl, AF_INET6, passes[i], t) < 0)
			r = 0;
	}
	close(nl);
	if (r < 0)
		t->n = 0;
	t->source = "sock_diag";
	return r;
}

/* /proc/net/tcp prints each 32-bit word of the address as the kernel holds
 * it (network order) with %08X: reading the hex back as a native u32 gives
 * the same bytes in memory. */
static int parse_hexaddr(const char *s, int words, uint8_t *out, const char **end)
{
	for (int i = 0; i < words; i++) {
		uint32_t w = 0;
		for (int k = 0; k < 8; k++, s++) {
			int c = *s, d;
			if (c >= '0' && c <= '9')
				d = c - '0';
			else if (c >= 'A' && c <= 'F')
				d = c - 'A' + 10;
			else if (c >= 'a' && c <= 'f')
				d = c - 'a' + 10;
			else
				return -EINVAL;
			w = w << 4 | (uint32_t)d;
		}
		memcpy(out + 4 * i, &w, 4);
	}
	*end = s;
	return 0;
}

static int parse_endpoint(const char **p, int family, uint8_t *addr, uint8_t *fam, uint16_t *port)
{
	uint8_t raw[16];
	const char *s = *p;
	char *end;
	unsigned long v;

	while (*s == ' ')
		s++;
	if (parse_hexaddr(s, family == 4 ? 1 : 4, raw, &s) || *s != ':')
		return -EINVAL;
	v = strtoul(s + 1, &end, 16);
	if (end == s + 1 || v > 0xffff)
		return -EINVAL;
	set_addr(addr, fam, raw, family == 4 ? AF_INET : AF_INET6);
	*port = (uint16_t)v;
	*p = end;
	return 0;
}

int pg_socktab_parse_line(const char *line, int family, struct pg_tcpsock *out)
{
	const char *p = line;
	char *end;
	unsigned long v;
	unsigned long long ino;

	/* "  sl  local_address rem_address   st tx_queue:rx_queue tr:tm->when
	 *  retrnsmt   uid  timeout inode ..." */
	while (*p == ' ')
		p++;
	v = strtoul(p, &end, 10);
	(void)v;
	if (end == p || *end != ':')
		return -EINVAL;
	p = end + 1;
	if (parse_endpoint(&p, family, out->laddr, &out->family, &out->lport) ||
	    parse_endpoint(&p, family, out->raddr, &out->family, &out->rport))
		return -EINVAL;
	v = strtoul(p, &end, 16);
	if (end == p || v > 255)
		return -EINVAL;
	out->state = (uint8_t)v;
	p = end;
	/* tx:rx, tr:when, retrnsmt, uid, timeout, then the inode. */
	for (int field = 0; field < 5; field++) {
		while (*p == ' ')
			p++;
		p += strcspn(p, " ");
		if (!*p)
			return -EINVAL;
	}
	ino = strtoull(p, &end, 10);
	if (end == p)
		return -EINVAL;
	out->inode = ino;
	return 0;
}

static int read_proc_file(const char *path, int family, struct pg_socktab *t)
{
	char *line = NULL;
	size_t cap = 0;
	FILE *f;

	f = fopen(path, "re");
	if (!f)
		return -errno;
	/* 1 MiB of stdio buffer: the file is generated a page at a time. */
	setvbuf(f, NULL, _IOFBF, 1 << 20);
	while (getline(&line, &cap, f) > 0) {
		struct pg_tcpsock s;
		if (pg_socktab_parse_line(line, family, &s) == 0)
			*push(t) = s;
	}
	free(line);
	fclose(f);
	return 0;
}

int pg_socktab_read_proc(struct pg_socktab *t)
{
	int r;

	t->source = "proc";
	r = read_proc_file("/proc/net/tcp", 4, t);
	if (r < 0)
		return r;
	/* No tcp6 file: a kernel without IPv6. */
	read_proc_file("/proc/net/tcp6", 6, t);
	return 0;
}
