/* Leak suppressions, after LeakSanitizer (compiler-rt sanitizer_common:
 * SuppressionContext::Parse, TemplateMatch; lsan_common:
 * GetSuppressionForAddr), with two differences, both where LSan is lax:
 * a bad line is an error with its line number instead of "failed to parse
 * suppressions", and "*" backtracks (LSan's TemplateMatch takes the first
 * occurrence of each piece, so "a*b$" fails on "abab"). */
#include "shim/suppress.h"
#include "shim/common.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

static int is_blank(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f';
}

/* Glob with "*" only. lead/trail: an implicit "*" before/after the body,
 * which is how an unanchored pattern matches as a substring. */
static int glob(const char *p, size_t pn, const char *s, int lead, int trail)
{
	size_t i = 0, j = 0, sn = strlen(s);
	size_t star_i = 0, mark = 0;
	int star = lead;

	for (;;) {
		if (i == pn && (trail || j == sn))
			return 1;
		if (j == sn)
			break;
		if (i < pn && p[i] == '*') {
			star = 1;
			star_i = ++i;
			mark = j;
		} else if (i < pn && p[i] == s[j]) {
			i++;
			j++;
		} else if (star) {
			/* Let the last "*" swallow one more character. */
			i = star_i;
			j = ++mark;
		} else {
			return 0;
		}
	}
	while (i < pn && p[i] == '*')
		i++;
	return i == pn;
}

int pg_suppress_pattern_match(const char *pattern, const char *str)
{
	int start = 0, end = 0;
	size_t n;

	if (!pattern || !str || !*str)
		return 0;
	if (*pattern == '^') {
		start = 1;
		pattern++;
	}
	n = strlen(pattern);
	if (n > 0 && pattern[n - 1] == '$') {
		end = 1;
		n--;
	}
	return glob(pattern, n, str, !start, !end);
}

static void set_error(char *err, size_t errlen, const char *file, unsigned line, const char *what)
{
	if (!err || errlen == 0)
		return;
	if (line)
		snprintf(err, errlen, "%s:%u: %s", file, line, what);
	else
		snprintf(err, errlen, "%s: %s", file, what);
}

void pg_suppress_free(struct pg_suppress *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < s->n; i++)
		pg_free(s->rules[i].pattern);
	pg_free(s->rules);
	pg_free(s);
}

/* NULL when the pattern is fine, else what is wrong with it. */
static const char *check_pattern(const char *p, size_t n)
{
	size_t lo = 0, hi = n;

	if (hi > lo && p[lo] == '^')
		lo++;
	if (hi > lo && p[hi - 1] == '$')
		hi--;
	/* "leak:" alone would suppress every leak: say "leak:*" for that. */
	if (hi == lo)
		return "empty pattern";
	for (size_t i = lo; i < hi; i++) {
		if (p[i] == '^')
			return "\"^\" may only start a pattern";
		if (p[i] == '$')
			return "\"$\" may only end a pattern";
	}
	return NULL;
}

int pg_suppress_parse(const char *text, size_t len, const char *file_name, struct pg_suppress **out,
		      char *err, size_t errlen)
{
	const char *file = file_name ? file_name : "suppressions";
	const char *p = text ? text : "", *end = text ? text + len : p;
	struct pg_suppress *s;
	size_t cap = 0;
	unsigned line = 0;

	if (err && errlen)
		err[0] = '\0';
	*out = NULL;
	s = pg_calloc(1, sizeof(*s));
	if (!s)
		goto nomem;
	while (p < end) {
		const char *eol = memchr(p, '\n', (size_t)(end - p));
		const char *b = p, *e = eol ? eol : end, *colon;
		const char *what;
		char *pattern;

		p = eol ? eol + 1 : end;
		line++;
		if (memchr(b, '\0', (size_t)(e - b))) {
			set_error(err, errlen, file, line, "NUL byte in line");
			goto invalid;
		}
		while (b < e && is_blank(*b))
			b++;
		while (e > b && is_blank(e[-1]))
			e--;
		if (b == e || *b == '#')
			continue;
		colon = memchr(b, ':', (size_t)(e - b));
		if (!colon) {
			set_error(err, errlen, file, line, "expected \"leak:PATTERN\"");
			goto invalid;
		}
		if (colon - b != 4 || memcmp(b, "leak", 4) != 0) {
			char msg[96];
			int n = (int)(colon - b) > 40 ? 40 : (int)(colon - b);

			snprintf(msg, sizeof(msg),
				 "unknown suppression type \"%.*s\" (only \"leak\" is known)", n,
				 b);
			set_error(err, errlen, file, line, msg);
			goto invalid;
		}
		b = colon + 1;
		while (b < e && is_blank(*b))
			b++;
		what = check_pattern(b, (size_t)(e - b));
		if (what) {
			set_error(err, errlen, file, line, what);
			goto invalid;
		}
		if (s->n == cap) {
			size_t ncap = cap ? cap * 2 : 8;
			struct pg_suppress_rule *r = pg_realloc(s->rules, ncap * sizeof(*r));

			if (!r)
				goto nomem;
			s->rules = r;
			cap = ncap;
		}
		pattern = pg_alloc((size_t)(e - b) + 1);
		if (!pattern)
			goto nomem;
		memcpy(pattern, b, (size_t)(e - b));
		pattern[e - b] = '\0';
		s->rules[s->n].pattern = pattern;
		s->rules[s->n].line = line;
		s->rules[s->n].hits = 0;
		s->n++;
	}
	*out = s;
	return 0;
nomem:
	set_error(err, errlen, file, 0, "out of memory");
	pg_suppress_free(s);
	return -ENOMEM;
invalid:
	pg_suppress_free(s);
	return -EINVAL;
}

static const char *base_name(const char *path)
{
	const char *slash = strrchr(path, '/');

	return slash ? slash + 1 : path;
}

static int known(const char *s)
{
	return s && *s && strcmp(s, "?") != 0;
}

int pg_suppress_match(struct pg_suppress *s, const struct pg_suppress_frame *frames, size_t n,
		      uint64_t weight)
{
	if (!s || !frames)
		return -1;
	for (size_t i = 0; i < n; i++) {
		const struct pg_suppress_frame *f = &frames[i];
		size_t r;

		if (known(f->module)) {
			const char *base = base_name(f->module);

			for (r = 0; r < s->n; r++)
				if (pg_suppress_pattern_match(s->rules[r].pattern, f->module) ||
				    (base != f->module &&
				     pg_suppress_pattern_match(s->rules[r].pattern, base)))
					goto hit;
		}
		for (r = 0; r < s->n; r++)
			if ((known(f->function) &&
			     pg_suppress_pattern_match(s->rules[r].pattern, f->function)) ||
			    (known(f->file) &&
			     pg_suppress_pattern_match(s->rules[r].pattern, f->file)))
				goto hit;
		continue;
	hit:
		s->rules[r].hits += weight;
		return (int)r;
	}
	return -1;
}

void pg_suppress_reset_hits(struct pg_suppress *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < s->n; i++)
		s->rules[i].hits = 0;
}
