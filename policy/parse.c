/* The policy file parser. Strict on purpose: a policy changes what the
 * program sees, so a typo must stop the whole file rather than half-apply it.
 * The first error wins and names its line. */
#include "policy/policy.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* A word of the line: not NUL-terminated. */
struct pg_tok {
	const char *s;
	size_t len;
};

struct pg_parse {
	struct pg_policy *p;
	const char *file;
	size_t line;
	char *err;
	size_t errlen;
	const char *cur, *end; /* the rest of the line, comment stripped */
	size_t flag_line[PG_POLICY_NFLAGS];
	size_t churn_line;
};

/* Room for one quoted word: at most PG_QUOTE_SHOWN bytes shown, each up to
 * four characters escaped, then "...". */
#define PG_QUOTE_SHOWN 40
#define PG_QUOTE_LEN (PG_QUOTE_SHOWN * 4 + 4)

static const char *const pg_flag_names[PG_POLICY_NFLAGS] = {
	[PG_POLICY_REUSEADDR] = "reuseaddr",
	[PG_POLICY_REUSEPORT] = "reuseport",
	[PG_POLICY_BIND_NO_PORT] = "bind_no_port",
};

static bool pg_tok_is(struct pg_tok t, const char *word)
{
	size_t n = strlen(word);

	return t.len == n && memcmp(t.s, word, n) == 0;
}

static bool pg_is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f';
}

/* The next word of the line; len 0 at its end. */
static struct pg_tok pg_next(struct pg_parse *ps)
{
	struct pg_tok t;

	while (ps->cur < ps->end && pg_is_space(*ps->cur))
		ps->cur++;
	t.s = ps->cur;
	while (ps->cur < ps->end && !pg_is_space(*ps->cur))
		ps->cur++;
	t.len = (size_t)(ps->cur - t.s);
	return t;
}

/* A word as it may be printed: the file may hold any bytes, the message
 * goes to a terminal or into JSON. */
static const char *pg_quote(char *buf, struct pg_tok t)
{
	static const char hex[] = "0123456789abcdef";
	size_t i, o = 0, n = t.len < PG_QUOTE_SHOWN ? t.len : PG_QUOTE_SHOWN;

	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)t.s[i];

		if (c >= 0x20 && c < 0x7f && c != '\\') {
			buf[o++] = (char)c;
		} else {
			buf[o++] = '\\';
			buf[o++] = 'x';
			buf[o++] = hex[c >> 4];
			buf[o++] = hex[c & 15];
		}
	}
	if (t.len > n) {
		memcpy(buf + o, "...", 3);
		o += 3;
	}
	buf[o] = '\0';
	return buf;
}

__attribute__((format(printf, 2, 3))) static int pg_fail(struct pg_parse *ps, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (!ps->err || !ps->errlen)
		return -EINVAL;
	n = snprintf(ps->err, ps->errlen, "%s:%zu: ", ps->file, ps->line);
	if (n >= 0 && (size_t)n < ps->errlen) {
		va_start(ap, fmt);
		vsnprintf(ps->err + n, ps->errlen - (size_t)n, fmt, ap);
		va_end(ap);
	}
	return -EINVAL;
}

/* A whole decimal number in [lo, hi]: digits only, no sign, no spaces. */
static int pg_parse_uint(struct pg_tok t, uint32_t lo, uint32_t hi, uint32_t *out)
{
	uint64_t v = 0;
	size_t i;

	if (!t.len)
		return -EINVAL;
	for (i = 0; i < t.len; i++) {
		if (t.s[i] < '0' || t.s[i] > '9')
			return -EINVAL;
		v = v * 10 + (uint64_t)(t.s[i] - '0');
		if (v > hi)
			return -ERANGE;
	}
	if (v < lo)
		return -ERANGE;
	*out = (uint32_t)v;
	return 0;
}

/* KEY=VALUE into key and value; -EINVAL without '='. */
static int pg_split_kv(struct pg_tok t, struct pg_tok *key, struct pg_tok *val)
{
	const char *eq = memchr(t.s, '=', t.len);

	if (!eq)
		return -EINVAL;
	key->s = t.s;
	key->len = (size_t)(eq - t.s);
	val->s = eq + 1;
	val->len = t.len - key->len - 1;
	return 0;
}

static int pg_parse_flag(struct pg_parse *ps, enum pg_policy_flag f)
{
	const char *name = pg_flag_names[f];
	char q[PG_QUOTE_LEN];
	struct pg_tok v = pg_next(ps), extra;
	uint8_t on;

	if (!v.len)
		return pg_fail(ps, "%s: missing value (expected 'on' or 'off')", name);
	if (pg_tok_is(v, "on"))
		on = 1;
	else if (pg_tok_is(v, "off"))
		on = 0;
	else
		return pg_fail(ps, "%s: expected 'on' or 'off', got '%s'", name, pg_quote(q, v));
	extra = pg_next(ps);
	if (extra.len)
		return pg_fail(ps, "%s: unexpected '%s' after the value", name, pg_quote(q, extra));
	if (ps->flag_line[f])
		return pg_fail(ps, "%s: already set on line %zu", name, ps->flag_line[f]);
	ps->flag_line[f] = ps->line;
	ps->p->flag[f] = on;
	return 0;
}

/* The port of a destination: 1..65535 or '*'. */
static int pg_parse_port(struct pg_tok t, struct pg_policy_dest *d)
{
	uint32_t port;

	if (pg_tok_is(t, "*")) {
		d->any_port = 1;
		return 0;
	}
	if (pg_parse_uint(t, 1, 65535, &port))
		return -EINVAL;
	d->port = (uint16_t)port;
	return 0;
}

/* DEST of a pool rule; see docs/policy.md for what is accepted and why. */
static int pg_parse_dest(struct pg_parse *ps, struct pg_tok t, struct pg_policy_dest *d)
{
	char q[PG_QUOTE_LEN], a[INET6_ADDRSTRLEN + 1];
	struct sockaddr_in6 sin6;
	struct pg_tok addr, port;
	const char *colon;

	memset(d, 0, sizeof(*d));
	if (pg_tok_is(t, "*")) {
		d->family = AF_UNSPEC;
		d->any_port = 1;
		return 0;
	}
	if (t.s[0] == '[') {
		const char *close = memchr(t.s, ']', t.len);

		if (!close)
			return pg_fail(ps, "pool: bad destination '%s': missing ']'",
				       pg_quote(q, t));
		addr.s = t.s + 1;
		addr.len = (size_t)(close - addr.s);
		port.s = close + 1;
		port.len = t.len - (size_t)(port.s - t.s);
		if (pg_tok_is(addr, "*"))
			return pg_fail(ps,
				       "pool: bad destination '%s': '[*]' is not a "
				       "pattern; write '*:PORT' for any address",
				       pg_quote(q, t));
		if (!port.len || port.s[0] != ':')
			return pg_fail(ps,
				       "pool: bad destination '%s': expected ':PORT' "
				       "after ']' (':*' for any port)",
				       pg_quote(q, t));
		port.s++;
		port.len--;
		if (memchr(addr.s, '%', addr.len))
			return pg_fail(ps,
				       "pool: bad destination '%s': zone ids ('%%') "
				       "are not supported",
				       pg_quote(q, t));
		if (addr.len >= sizeof(a))
			goto bad_v6;
		memcpy(a, addr.s, addr.len);
		a[addr.len] = '\0';
		memset(&sin6, 0, sizeof(sin6));
		sin6.sin6_family = AF_INET6;
		if (inet_pton(AF_INET6, a, &sin6.sin6_addr) != 1)
			goto bad_v6;
		/* Through the sockaddr path, so that a rule and a destination
		 * spell one IPv4-mapped peer alike. */
		pg_policy_dest_from_sockaddr(d, (const struct sockaddr *)&sin6, sizeof(sin6));
	} else {
		colon = memchr(t.s, ':', t.len);
		if (!colon)
			return pg_fail(ps,
				       "pool: bad destination '%s': missing ':PORT' "
				       "(':*' for any port)",
				       pg_quote(q, t));
		if (memchr(colon + 1, ':', t.len - (size_t)(colon + 1 - t.s)))
			return pg_fail(ps,
				       "pool: bad destination '%s': an IPv6 address "
				       "goes in brackets, as in '[::1]:443'",
				       pg_quote(q, t));
		addr.s = t.s;
		addr.len = (size_t)(colon - t.s);
		port.s = colon + 1;
		port.len = t.len - addr.len - 1;
		if (!addr.len)
			return pg_fail(ps,
				       "pool: bad destination '%s': missing address "
				       "('*' for any address)",
				       pg_quote(q, t));
		if (pg_tok_is(addr, "*")) {
			d->family = AF_UNSPEC;
		} else {
			if (addr.len >= sizeof(a))
				goto bad_v4;
			memcpy(a, addr.s, addr.len);
			a[addr.len] = '\0';
			if (inet_pton(AF_INET, a, d->addr) != 1)
				goto bad_v4;
			d->family = AF_INET;
		}
	}
	if (pg_parse_port(port, d))
		return pg_fail(ps,
			       "pool: bad destination '%s': port must be 1 to 65535 "
			       "or '*'",
			       pg_quote(q, t));
	return 0;
bad_v4:
	return pg_fail(ps,
		       "pool: bad destination '%s': not an IPv4 address (host "
		       "names are not resolved)",
		       pg_quote(q, t));
bad_v6:
	return pg_fail(ps, "pool: bad destination '%s': not an IPv6 address", pg_quote(q, t));
}

static int pg_parse_pool(struct pg_parse *ps)
{
	struct pg_policy *p = ps->p;
	struct pg_policy_pool r;
	struct pg_tok t, k, v;
	bool have_max = false, have_mode = false, have_wait = false;
	char q[PG_QUOTE_LEN];
	uint32_t i;
	int rc;

	memset(&r, 0, sizeof(r));
	t = pg_next(ps);
	if (!t.len)
		return pg_fail(ps, "pool: missing destination (expected 'pool DEST "
				   "max=N mode=warn|fail|block [wait_ms=T]')");
	if (memchr(t.s, '=', t.len))
		return pg_fail(ps, "pool: missing destination before '%s'", pg_quote(q, t));
	rc = pg_parse_dest(ps, t, &r.dest);
	if (rc)
		return rc;
	for (t = pg_next(ps); t.len; t = pg_next(ps)) {
		if (pg_split_kv(t, &k, &v))
			return pg_fail(ps, "pool: expected KEY=VALUE, got '%s'", pg_quote(q, t));
		if (pg_tok_is(k, "max")) {
			if (have_max)
				return pg_fail(ps, "pool: duplicate key 'max'");
			have_max = true;
			if (pg_parse_uint(v, 1, PG_POLICY_MAX_MAX, &r.max))
				return pg_fail(ps,
					       "pool: max must be a whole number from 1 "
					       "to %d, got '%s'",
					       PG_POLICY_MAX_MAX, pg_quote(q, v));
		} else if (pg_tok_is(k, "mode")) {
			if (have_mode)
				return pg_fail(ps, "pool: duplicate key 'mode'");
			have_mode = true;
			if (pg_tok_is(v, "warn"))
				r.mode = PG_POOL_MODE_WARN;
			else if (pg_tok_is(v, "fail"))
				r.mode = PG_POOL_MODE_FAIL;
			else if (pg_tok_is(v, "block"))
				r.mode = PG_POOL_MODE_BLOCK;
			else
				return pg_fail(ps,
					       "pool: mode must be warn, fail or block, "
					       "got '%s'",
					       pg_quote(q, v));
		} else if (pg_tok_is(k, "wait_ms")) {
			if (have_wait)
				return pg_fail(ps, "pool: duplicate key 'wait_ms'");
			have_wait = true;
			if (pg_parse_uint(v, 1, PG_POLICY_WAIT_MS_MAX, &r.wait_ms))
				return pg_fail(ps,
					       "pool: wait_ms must be a whole number from "
					       "1 to %d, got '%s'",
					       PG_POLICY_WAIT_MS_MAX, pg_quote(q, v));
		} else {
			return pg_fail(ps,
				       "pool: unknown key '%s' (expected max, mode or "
				       "wait_ms)",
				       pg_quote(q, k));
		}
	}
	if (!have_max)
		return pg_fail(ps, "pool: missing max=N");
	if (!have_mode)
		return pg_fail(ps, "pool: missing mode=warn|fail|block");
	/* A wait that never happens is a misunderstanding worth stopping on. */
	if (have_wait && r.mode != PG_POOL_MODE_BLOCK)
		return pg_fail(ps, "pool: wait_ms applies only to mode=block");
	if (r.mode == PG_POOL_MODE_BLOCK && !have_wait)
		r.wait_ms = PG_POLICY_WAIT_MS_DEFAULT;
	if (p->npool >= PG_POLICY_POOL_MAX)
		return pg_fail(ps, "pool: too many pool rules (at most %d)", PG_POLICY_POOL_MAX);
	/* The first match wins, so a rule behind a broader one is dead text
	 * that its author surely meant to apply. */
	for (i = 0; i < p->npool; i++) {
		if (pg_policy_dest_covers(&p->pool[i].dest, &r.dest)) {
			char a[PG_POLICY_DEST_STRLEN], b[PG_POLICY_DEST_STRLEN];

			pg_policy_format_dest(&r.dest, a, sizeof(a));
			pg_policy_format_dest(&p->pool[i].dest, b, sizeof(b));
			return pg_fail(ps,
				       "pool: the rule for %s never applies: the rule "
				       "for %s on line %u matches first",
				       a, b, p->pool[i].line);
		}
	}
	r.line = ps->line > UINT32_MAX ? UINT32_MAX : (uint32_t)ps->line;
	p->pool[p->npool++] = r;
	return 0;
}

static int pg_parse_churn(struct pg_parse *ps)
{
	struct pg_tok t, k, v;
	bool have_rate = false;
	char q[PG_QUOTE_LEN];
	uint32_t rate = 0;

	for (t = pg_next(ps); t.len; t = pg_next(ps)) {
		if (pg_split_kv(t, &k, &v))
			return pg_fail(ps, "churn: expected KEY=VALUE, got '%s'", pg_quote(q, t));
		if (!pg_tok_is(k, "warn_per_sec"))
			return pg_fail(ps, "churn: unknown key '%s' (expected warn_per_sec)",
				       pg_quote(q, k));
		if (have_rate)
			return pg_fail(ps, "churn: duplicate key 'warn_per_sec'");
		have_rate = true;
		if (pg_parse_uint(v, 1, PG_POLICY_RATE_MAX, &rate))
			return pg_fail(ps,
				       "churn: warn_per_sec must be a whole number from 1 "
				       "to %d, got '%s'",
				       PG_POLICY_RATE_MAX, pg_quote(q, v));
	}
	if (!have_rate)
		return pg_fail(ps, "churn: missing warn_per_sec=R");
	if (ps->churn_line)
		return pg_fail(ps, "churn: already set on line %zu", ps->churn_line);
	ps->churn_line = ps->line;
	ps->p->churn_warn_per_sec = rate;
	return 0;
}

static int pg_parse_line(struct pg_parse *ps, const char *s, size_t len)
{
	char q[PG_QUOTE_LEN];
	const char *hash;
	struct pg_tok d;
	int f;

	if (len > PG_POLICY_LINE_MAX)
		return pg_fail(ps, "line is longer than %d bytes", PG_POLICY_LINE_MAX);
	/* A NUL would end the line early for anyone reading it as a string. */
	if (memchr(s, '\0', len))
		return pg_fail(ps, "line contains a NUL byte");
	hash = memchr(s, '#', len);
	ps->cur = s;
	ps->end = hash ? hash : s + len;
	d = pg_next(ps);
	if (!d.len)
		return 0;
	for (f = 0; f < PG_POLICY_NFLAGS; f++)
		if (pg_tok_is(d, pg_flag_names[f]))
			return pg_parse_flag(ps, (enum pg_policy_flag)f);
	if (pg_tok_is(d, "pool"))
		return pg_parse_pool(ps);
	if (pg_tok_is(d, "churn"))
		return pg_parse_churn(ps);
	for (f = 0; f < PG_POLICY_NFLAGS; f++) {
		size_t n = strlen(pg_flag_names[f]);

		if (d.len > n && d.s[n] == '=' && !memcmp(d.s, pg_flag_names[f], n))
			return pg_fail(ps,
				       "unknown directive '%s' (write '%s on' or "
				       "'%s off', without '=')",
				       pg_quote(q, d), pg_flag_names[f], pg_flag_names[f]);
	}
	return pg_fail(ps,
		       "unknown directive '%s' (expected reuseaddr, reuseport, "
		       "bind_no_port, pool or churn)",
		       pg_quote(q, d));
}

int pg_policy_parse(struct pg_policy *p, const char *text, size_t len, const char *filename,
		    char *err, size_t errlen)
{
	struct pg_parse ps;
	size_t pos = 0;

	pg_policy_init(p);
	memset(&ps, 0, sizeof(ps));
	ps.p = p;
	ps.file = filename ? filename : "policy";
	ps.err = err;
	ps.errlen = errlen;
	if (err && errlen)
		err[0] = '\0';
	if (!text)
		len = 0;
	/* Editors on some systems start UTF-8 files with a byte order mark. */
	if (len >= 3 && !memcmp(text, "\xef\xbb\xbf", 3))
		pos = 3;
	while (pos < len) {
		const char *s = text + pos;
		const char *nl = memchr(s, '\n', len - pos);
		size_t n = nl ? (size_t)(nl - s) : len - pos;
		int rc;

		ps.line++;
		rc = pg_parse_line(&ps, s, n);
		if (rc) {
			pg_policy_init(p);
			return rc;
		}
		pos += n + (nl ? 1 : 0);
	}
	return 0;
}

int pg_policy_set_flag(struct pg_policy *p, const char *name, int on)
{
	int f;

	for (f = 0; f < PG_POLICY_NFLAGS; f++)
		if (name && !strcmp(name, pg_flag_names[f]))
			break;
	if (f == PG_POLICY_NFLAGS)
		return -ENOENT;
	if (on != 0 && on != 1)
		return -EINVAL;
	if (on)
		p->flag[f] = 1;
	return 0;
}
