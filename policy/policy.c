/* Policy decisions: which pool rule a connect falls under, whether it may
 * proceed, what to set before a bind. Pure functions of their arguments. */
#include "policy/policy.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

/* Destinations are hashed as bytes by the shim: no padding may hide in them. */
_Static_assert(sizeof(struct pg_policy_dest) == 20, "struct pg_policy_dest has padding");

void pg_policy_init(struct pg_policy *p)
{
	memset(p, 0, sizeof(*p));
}

bool pg_policy_is_empty(const struct pg_policy *p)
{
	int f;

	for (f = 0; f < PG_POLICY_NFLAGS; f++)
		if (p->flag[f])
			return false;
	return !p->npool && !p->churn_warn_per_sec;
}

int pg_policy_dest_from_sockaddr(struct pg_policy_dest *d, const struct sockaddr *sa, socklen_t len)
{
	static const uint8_t mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
	sa_family_t family;

	memset(d, 0, sizeof(*d));
	if (!sa || len < (socklen_t)sizeof(family))
		return -EINVAL;
	/* The caller's buffer need not be aligned for the sockaddr type. */
	memcpy(&family, sa, sizeof(family));
	if (family == AF_INET) {
		struct sockaddr_in in;

		if (len < (socklen_t)sizeof(in))
			return -EINVAL;
		memcpy(&in, sa, sizeof(in));
		d->family = AF_INET;
		d->port = ntohs(in.sin_port);
		memcpy(d->addr, &in.sin_addr, 4);
		return 0;
	}
	if (family == AF_INET6) {
		struct sockaddr_in6 in6;

		/* connect(2) takes an IPv6 address without sin6_scope_id (the
		 * RFC 2133 size, 24 bytes), so only that much is required. */
		if (len < (socklen_t)offsetof(struct sockaddr_in6, sin6_scope_id))
			return -EINVAL;
		memset(&in6, 0, sizeof(in6));
		memcpy(&in6, sa, offsetof(struct sockaddr_in6, sin6_scope_id));
		d->port = ntohs(in6.sin6_port);
		/* An IPv4-mapped address is an IPv4 peer reached through an IPv6
		 * socket (RFC 4291 2.5.5.2): it matches IPv4 rules. */
		if (!memcmp(&in6.sin6_addr, mapped, sizeof(mapped))) {
			d->family = AF_INET;
			memcpy(d->addr, (const uint8_t *)&in6.sin6_addr + 12, 4);
		} else {
			d->family = AF_INET6;
			memcpy(d->addr, &in6.sin6_addr, 16);
		}
		return 0;
	}
	return -EAFNOSUPPORT;
}

bool pg_policy_dest_covers(const struct pg_policy_dest *pattern, const struct pg_policy_dest *d)
{
	if (!pattern->any_port && (d->any_port || pattern->port != d->port))
		return false;
	if (pattern->family == AF_UNSPEC)
		return true;
	if (pattern->family != d->family)
		return false;
	return !memcmp(pattern->addr, d->addr, pattern->family == AF_INET ? 4 : 16);
}

int pg_policy_format_dest(const struct pg_policy_dest *d, char *buf, size_t len)
{
	char a[INET6_ADDRSTRLEN], port[8];
	int n;

	if (!len)
		return -ENOSPC;
	if (d->any_port)
		memcpy(port, "*", 2);
	else
		snprintf(port, sizeof(port), "%u", (unsigned)d->port);
	if (d->family == AF_INET) {
		inet_ntop(AF_INET, d->addr, a, sizeof(a));
		n = snprintf(buf, len, "%s:%s", a, port);
	} else if (d->family == AF_INET6) {
		inet_ntop(AF_INET6, d->addr, a, sizeof(a));
		n = snprintf(buf, len, "[%s]:%s", a, port);
	} else if (d->any_port) {
		n = snprintf(buf, len, "*");
	} else {
		n = snprintf(buf, len, "*:%s", port);
	}
	return n >= 0 && (size_t)n < len ? 0 : -ENOSPC;
}

const char *pg_policy_mode_name(uint32_t mode)
{
	switch (mode) {
	case PG_POOL_MODE_WARN: return "warn";
	case PG_POOL_MODE_FAIL: return "fail";
	case PG_POOL_MODE_BLOCK: return "block";
	}
	return "?";
}

int pg_policy_match_pool(const struct pg_policy *p, const struct sockaddr *dest, socklen_t len)
{
	struct pg_policy_dest d;
	uint32_t i;

	if (!p || !p->npool || pg_policy_dest_from_sockaddr(&d, dest, len))
		return -1;
	for (i = 0; i < p->npool && i < PG_POLICY_POOL_MAX; i++)
		if (pg_policy_dest_covers(&p->pool[i].dest, &d))
			return (int)i;
	return -1;
}

enum pg_pool_verdict pg_policy_decide_pool(const struct pg_policy_pool *rule, uint32_t in_use,
					   bool nonblocking, int64_t waited_ns)
{
	if (!rule || in_use < rule->max)
		return PG_POOL_ALLOW;
	switch (rule->mode) {
	case PG_POOL_MODE_WARN: return PG_POOL_WARN;
	case PG_POOL_MODE_BLOCK:
		/* A non-blocking connect must return at once; waiting inside it
		 * would stall an event loop that never expected it. */
		if (nonblocking)
			return PG_POOL_FAIL;
		if (waited_ns / 1000000 >= (int64_t)rule->wait_ms)
			return PG_POOL_FAIL;
		return PG_POOL_BLOCK;
	default: return PG_POOL_FAIL;
	}
}

unsigned pg_policy_decide_bind(const struct pg_policy *p, int type, int protocol,
			       const struct sockaddr *addr, socklen_t len)
{
	struct pg_policy_dest d;
	unsigned set = 0;

	if (!p)
		return 0;
	type &= ~(SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (type != SOCK_STREAM || (protocol != 0 && protocol != IPPROTO_TCP))
		return 0;
	if (pg_policy_dest_from_sockaddr(&d, addr, len))
		return 0;
	if (p->flag[PG_POLICY_REUSEADDR])
		set |= PG_BIND_SET_REUSEADDR;
	if (p->flag[PG_POLICY_REUSEPORT])
		set |= PG_BIND_SET_REUSEPORT;
	/* With a fixed port there is nothing to defer to connect(). */
	if (p->flag[PG_POLICY_BIND_NO_PORT] && d.port == 0)
		set |= PG_BIND_SET_NO_PORT;
	return set;
}
