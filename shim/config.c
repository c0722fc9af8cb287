#include "shim/config.h"

#include "common/names.h"

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
		int s = pg_names_signal(v);
		const char *why = pg_names_signal_refused(s);
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
	} else if (!strcmp(k, "native_frames")) {
		set_bool(p, k, v, &c->native_frames);
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
		/* 2: file:line in a forked child's exit report too */
		set_int(p, k, v, 0, 2, &c->symbolize);
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

struct pg_parse_ctx {
	struct pg_config *c;
	struct pg_parse *p;
	int secure;
};

static void on_pair(const char *key, const char *value, void *arg)
{
	struct pg_parse_ctx *x = arg;

	set_one(x->c, x->p, key, value, x->secure);
}

static void on_bad(const char *message, void *arg)
{
	struct pg_parse_ctx *x = arg;

	warnf(x->p, "PORTGUARD_OPTIONS: %s", message);
}

int pg_config_parse(struct pg_config *c, const char *text, int secure,
		    void (*warn)(const char *line, void *arg), void *arg)
{
	struct pg_parse p = { warn, arg, 0 };
	struct pg_parse_ctx x = { c, &p, secure };
	const struct pg_names_opt_cb cb = { on_pair, on_bad, &x };

	pg_names_options(text, PATH_MAX, &cb);
	return p.warnings;
}
