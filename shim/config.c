#include "shim/config.h"

#include <ctype.h>
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void pg_config_defaults(struct pg_config *c)
{
	memset(c, 0, sizeof(*c));
	c->dest = PG_DEST_STDERR;
	c->format = PG_FORMAT_TEXT;
	c->report_at_exit = 1;
	c->report_signal = SIGUSR1;
	c->stack_depth = 16;
	c->symbolize = 1;
	c->verbosity = 1;
}

static int parse_long(const char *v, long lo, long hi, long *out)
{
	char *end;
	long n;

	if (!*v || isspace((unsigned char)*v))
		return -EINVAL;
	errno = 0;
	n = strtol(v, &end, 10);
	if (errno || *end || n < lo || n > hi)
		return -EINVAL;
	*out = n;
	return 0;
}

int pg_config_signal(const char *name)
{
	long n;
	int base = 0, sign = 0;
	const char *rest;

	if (!parse_long(name, 0, SIGRTMAX, &n))
		return (int)n;
	if (!strncmp(name, "SIG", 3))
		name += 3;
	if (!strncmp(name, "RTMIN", 5)) {
		base = SIGRTMIN;
		sign = 1;
	} else if (!strncmp(name, "RTMAX", 5)) {
		base = SIGRTMAX;
		sign = -1;
	}
	if (base) {
		rest = name + 5;
		if (!*rest)
			return base;
		if ((sign > 0 && *rest != '+') || (sign < 0 && *rest != '-'))
			return -1;
		if (parse_long(rest + 1, 0, SIGRTMAX - SIGRTMIN, &n))
			return -1;
		return base + sign * (int)n;
	}
	for (int s = 1; s < SIGRTMIN; s++) {
		const char *abbrev = sigabbrev_np(s);
		if (abbrev && !strcmp(abbrev, name))
			return s;
	}
	return -1;
}

const char *pg_config_signal_refused(int sig)
{
	switch (sig) {
	case SIGKILL:
	case SIGSTOP: return "it cannot be caught";
	/* A faulting program would loop in our handler for ever instead of
	 * dying with the fault. */
	case SIGSEGV:
	case SIGBUS:
	case SIGFPE:
	case SIGILL:
	case SIGTRAP:
	case SIGSYS: return "the kernel sends it on a fault";
	default: break;
	}
	/* glibc keeps 32 and 33 for itself (thread cancellation, setxid). */
	if (sig > 0 && sig < SIGRTMIN && sig >= 32)
		return "glibc reserves it";
	return NULL;
}

struct pg_parse {
	void (*warn)(const char *line, void *arg);
	void *arg;
	int warnings;
};

static void warnf(struct pg_parse *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void warnf(struct pg_parse *p, const char *fmt, ...)
{
	char line[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	p->warnings++;
	if (p->warn)
		p->warn(line, p->arg);
}

static void set_bool(struct pg_parse *p, const char *k, const char *v, int *out)
{
	if (!strcmp(v, "0") || !strcmp(v, "1"))
		*out = v[0] == '1';
	else
		warnf(p, "PORTGUARD_OPTIONS: %s must be 0 or 1, got '%s'; using %d", k, v, *out);
}

static void set_int(struct pg_parse *p, const char *k, const char *v, long lo, long hi, int *out)
{
	long n;

	if (parse_long(v, lo, hi, &n))
		warnf(p,
		      "PORTGUARD_OPTIONS: %s must be a whole number from %ld to %ld, got '%s'; "
		      "using %d",
		      k, lo, hi, v, *out);
	else
		*out = (int)n;
}

static void set_path(struct pg_parse *p, const char *k, const char *v, int secure, char *out,
		     size_t size)
{
	if (secure) {
		warnf(p, "PORTGUARD_OPTIONS: %s ignored in a secure-execution (setuid) process", k);
		return;
	}
	if (!*v) {
		warnf(p, "PORTGUARD_OPTIONS: %s needs a path", k);
		return;
	}
	if (strlen(v) >= size) {
		warnf(p, "PORTGUARD_OPTIONS: %s is longer than %zu bytes; ignored", k, size - 1);
		return;
	}
	strcpy(out, v);
}

static void set_one(struct pg_config *c, struct pg_parse *p, const char *k, const char *v,
		    int secure)
{
	if (!strcmp(k, "log_path")) {
		if (!strcmp(v, "stderr")) {
			c->dest = PG_DEST_STDERR;
		} else if (!strcmp(v, "stdout")) {
			c->dest = PG_DEST_STDOUT;
		} else {
			int before = p->warnings;
			set_path(p, k, v, secure, c->log_path, sizeof(c->log_path));
			if (p->warnings == before)
				c->dest = PG_DEST_PATH;
		}
	} else if (!strcmp(k, "format")) {
		if (!strcmp(v, "text"))
			c->format = PG_FORMAT_TEXT;
		else if (!strcmp(v, "json"))
			c->format = PG_FORMAT_JSON;
		else
			warnf(p,
			      "PORTGUARD_OPTIONS: format must be text or json, got '%s'; using %s",
			      v, c->format == PG_FORMAT_JSON ? "json" : "text");
	} else if (!strcmp(k, "report_at_exit")) {
		set_bool(p, k, v, &c->report_at_exit);
	} else if (!strcmp(k, "report_signal")) {
		int s = pg_config_signal(v);
		const char *why = pg_config_signal_refused(s);
		if (s < 0)
			warnf(p,
			      "PORTGUARD_OPTIONS: report_signal must be a signal name (USR1, "
			      "RTMIN+3), a number or 0, got '%s'; using %d",
			      v, c->report_signal);
		else if (why)
			warnf(p, "PORTGUARD_OPTIONS: report_signal=%s refused: %s; using %d", v,
			      why, c->report_signal);
		else
			c->report_signal = s;
	} else if (!strcmp(k, "stack_depth")) {
		set_int(p, k, v, 0, 64, &c->stack_depth);
	} else if (!strcmp(k, "exitcode")) {
		set_int(p, k, v, 0, 255, &c->exitcode);
	} else if (!strcmp(k, "ignore_listening")) {
		set_bool(p, k, v, &c->ignore_listening);
	} else if (!strcmp(k, "min_age_ms")) {
		long n;
		if (parse_long(v, 0, 1000L * 3600 * 24 * 365, &n))
			warnf(p,
			      "PORTGUARD_OPTIONS: min_age_ms must be a whole number of "
			      "milliseconds, got '%s'; using %ld",
			      v, c->min_age_ms);
		else
			c->min_age_ms = n;
	} else if (!strcmp(k, "suppressions")) {
		set_path(p, k, v, secure, c->suppressions, sizeof(c->suppressions));
	} else if (!strcmp(k, "symbolize")) {
		set_bool(p, k, v, &c->symbolize);
	} else if (!strcmp(k, "policy")) {
		set_path(p, k, v, secure, c->policy, sizeof(c->policy));
	} else if (!strcmp(k, "verbosity")) {
		set_int(p, k, v, 0, 2, &c->verbosity);
	} else if (!strcmp(k, "strict")) {
		set_bool(p, k, v, &c->strict);
	} else if (!strcmp(k, "reuseaddr")) {
		set_bool(p, k, v, &c->reuseaddr);
	} else if (!strcmp(k, "reuseport")) {
		set_bool(p, k, v, &c->reuseport);
	} else if (!strcmp(k, "bind_no_port")) {
		set_bool(p, k, v, &c->bind_no_port);
	} else {
		warnf(p, "PORTGUARD_OPTIONS: unknown key '%s'", k);
	}
}

int pg_config_parse(struct pg_config *c, const char *text, int secure,
		    void (*warn)(const char *line, void *arg), void *arg)
{
	struct pg_parse p = { warn, arg, 0 };
	char key[64], val[PATH_MAX];

	if (!text)
		return 0;
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
			warnf(&p, "PORTGUARD_OPTIONS: '%s' is not key=value", key);
			continue;
		}
		s++;
		/* A value may be quoted to hold ':' or spaces, as in ASAN_OPTIONS. */
		if (*s == '"' || *s == '\'')
			quote = *s++;
		while (*s && (quote ? *s != quote : (*s != ':' && !isspace((unsigned char)*s)))) {
			if (vl < sizeof(val) - 1)
				val[vl] = *s;
			vl++;
			s++;
		}
		if (quote) {
			if (*s != quote) {
				warnf(&p, "PORTGUARD_OPTIONS: %s: missing closing %c", key, quote);
				break;
			}
			s++;
		}
		val[vl < sizeof(val) ? vl : sizeof(val) - 1] = 0;
		if (kl >= sizeof(key) || vl >= sizeof(val)) {
			warnf(&p, "PORTGUARD_OPTIONS: '%.40s...' is too long", key);
			continue;
		}
		set_one(c, &p, key, val, secure);
	}
	return p.warnings;
}
