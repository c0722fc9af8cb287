#include "common/names.h"

#include <ctype.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

void pg_names_options(const char *text, size_t vmax, const struct pg_names_opt_cb *cb)
{
	char key[64], msg[160];
	char *val;

	if (!text || vmax < 2)
		return;
	val = __builtin_alloca(vmax);
	for (const char *s = text; *s;) {
		size_t kl = 0, vl = 0;
		char quote = 0;

		while (*s == ':' || isspace((unsigned char)*s))
			s++;
		if (!*s)
			break;
		while (*s && *s != '=' && *s != ':' && !isspace((unsigned char)*s)) {
			if (kl < sizeof(key) - 1)
				key[kl] = *s;
			kl++;
			s++;
		}
		key[kl < sizeof(key) ? kl : sizeof(key) - 1] = 0;
		if (*s != '=') {
			snprintf(msg, sizeof(msg), "'%s' is not key=value", key);
			if (cb->bad)
				cb->bad(msg, cb->arg);
			continue;
		}
		s++;
		if (*s == '"' || *s == '\'')
			quote = *s++;
		while (*s && (quote ? *s != quote : (*s != ':' && !isspace((unsigned char)*s)))) {
			if (vl < vmax - 1)
				val[vl] = *s;
			vl++;
			s++;
		}
		if (quote) {
			if (*s != quote) {
				snprintf(msg, sizeof(msg), "%s: missing closing %c", key, quote);
				if (cb->bad)
					cb->bad(msg, cb->arg);
				break;
			}
			s++;
		}
		val[vl < vmax ? vl : vmax - 1] = 0;
		if (kl >= sizeof(key) || vl >= vmax) {
			snprintf(msg, sizeof(msg), "'%.40s...' is too long", key);
			if (cb->bad)
				cb->bad(msg, cb->arg);
			continue;
		}
		if (cb->pair)
			cb->pair(key, val, cb->arg);
	}
}

/* A whole decimal number in [0, max], or -1. */
static long whole(const char *s, long max)
{
	char *end;
	long v;

	if (*s < '0' || *s > '9')
		return -1;
	v = strtol(s, &end, 10);
	return *end || v > max ? -1 : v;
}

int pg_names_signal(const char *name)
{
	long n;

	if (!name || !*name)
		return -1;
	if ((n = whole(name, SIGRTMAX)) >= 0)
		return (int)n;
	if (!strncasecmp(name, "SIG", 3))
		name += 3;
	if (!strncasecmp(name, "RTMIN", 5) || !strncasecmp(name, "RTMAX", 5)) {
		int max = !strncasecmp(name, "RTMAX", 5);
		const char *rest = name + 5;
		if (!*rest)
			return max ? SIGRTMAX : SIGRTMIN;
		if (*rest != (max ? '-' : '+') || (n = whole(rest + 1, SIGRTMAX - SIGRTMIN)) < 0)
			return -1;
		return max ? SIGRTMAX - (int)n : SIGRTMIN + (int)n;
	}
	for (int s = 1; s < SIGRTMIN; s++) {
		const char *abbrev = sigabbrev_np(s);
		if (abbrev && !strcasecmp(abbrev, name))
			return s;
	}
	return -1;
}

const char *pg_names_signal_refused(int sig)
{
	switch (sig) {
	case SIGKILL:
	case SIGSTOP: return "it cannot be caught";
	/* A faulting program would loop in the handler for ever instead of
	 * dying of its fault. */
	case SIGSEGV:
	case SIGBUS:
	case SIGFPE:
	case SIGILL:
	case SIGTRAP:
	case SIGSYS: return "the kernel sends it on a fault";
	default: break;
	}
	/* glibc keeps 32 and 33 for itself (cancellation, setxid). */
	if (sig >= 32 && sig < SIGRTMIN)
		return "glibc reserves it";
	return NULL;
}

const char *pg_names_signal_format(int sig, char *buf, size_t size)
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

const char *pg_names_tcp_state(int state)
{
	static const char *const names[] = {
		NULL,        "ESTABLISHED", "SYN_SENT",     "SYN_RECV",   "FIN_WAIT1",
		"FIN_WAIT2", "TIME_WAIT",   "CLOSE",        "CLOSE_WAIT", "LAST_ACK",
		"LISTEN",    "CLOSING",     "NEW_SYN_RECV",
	};

	if (state <= 0 || state >= (int)(sizeof(names) / sizeof(names[0])))
		return NULL;
	return names[state];
}
