#include "tools/signame.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* "+N" / "-N" after RTMIN / RTMAX; -1 when not that. */
static int rt_offset(const char *s, int sign)
{
	char *end;
	long v;

	if (*s == '\0')
		return 0;
	if (*s != (sign > 0 ? '+' : '-') || s[1] < '0' || s[1] > '9')
		return -1;
	v = strtol(s + 1, &end, 10);
	if (*end || v > SIGRTMAX - SIGRTMIN)
		return -1;
	return (int)v;
}

int pg_signame_parse(const char *s)
{
	char *end;
	long v;
	int off;

	if (!s || !*s)
		return -EINVAL;
	if (*s >= '0' && *s <= '9') {
		v = strtol(s, &end, 10);
		if (*end || v < 1 || v > SIGRTMAX)
			return -EINVAL;
		return (int)v;
	}
	if (strncasecmp(s, "SIG", 3) == 0)
		s += 3;
	if (strncasecmp(s, "RTMIN", 5) == 0) {
		off = rt_offset(s + 5, 1);
		return off < 0 ? -EINVAL : SIGRTMIN + off;
	}
	if (strncasecmp(s, "RTMAX", 5) == 0) {
		off = rt_offset(s + 5, -1);
		return off < 0 ? -EINVAL : SIGRTMAX - off;
	}
	for (int sig = 1; sig < SIGRTMIN; sig++) {
		const char *name = sigabbrev_np(sig);
		if (name && strcasecmp(name, s) == 0)
			return sig;
	}
	return -EINVAL;
}

const char *pg_signame_format(int sig, char *buf, size_t size)
{
	const char *name = sig > 0 && sig < SIGRTMIN ? sigabbrev_np(sig) : NULL;

	if (name)
		snprintf(buf, size, "%s", name);
	else if (sig == SIGRTMIN)
		snprintf(buf, size, "RTMIN");
	else if (sig > SIGRTMIN && sig <= SIGRTMAX)
		snprintf(buf, size, "RTMIN+%d", sig - SIGRTMIN);
	else
		snprintf(buf, size, "%d", sig);
	return buf;
}
