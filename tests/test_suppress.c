/* shim/suppress.c: parsing `leak:PATTERN` files with exact error messages,
 * LeakSanitizer's pattern language, matching frames, counting hits. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "shim/common.h"
#include "shim/suppress.h"

static int parse(const char *text, struct pg_suppress **s, char *err, size_t errlen)
{
	return pg_suppress_parse(text, strlen(text), "supp.txt", s, err, errlen);
}

static void expect_error(const char *text, const char *message)
{
	struct pg_suppress *s = NULL;
	char err[256];

	/* A pointer left from before must not survive the error. */
	s = (struct pg_suppress *)&message;
	assert_int_equal(parse(text, &s, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, message);
	assert_null(s);
}

static void test_suppress_parse(void **state)
{
	struct pg_suppress *s;
	char err[256] = "untouched";
	const char *text = "# third-party code\n"
			   "\n"
			   "leak:libcurl.so\n"
			   "   \t\n"
			   "  # indented comment\n"
			   "leak:^open_pool$\r\n"
			   "\tleak:  connect_*_retry  \n"
			   "leak:*";

	(void)state;
	assert_int_equal(parse(text, &s, err, sizeof(err)), 0);
	assert_string_equal(err, "");
	assert_int_equal(s->n, 4);
	assert_string_equal(s->rules[0].pattern, "libcurl.so");
	assert_int_equal(s->rules[0].line, 3);
	assert_string_equal(s->rules[1].pattern, "^open_pool$");
	assert_int_equal(s->rules[1].line, 6);
	assert_string_equal(s->rules[2].pattern, "connect_*_retry");
	assert_int_equal(s->rules[2].line, 7);
	assert_string_equal(s->rules[3].pattern, "*");
	assert_int_equal(s->rules[3].line, 8);
	for (size_t i = 0; i < s->n; i++)
		assert_int_equal(s->rules[i].hits, 0);
	pg_suppress_free(s);
	pg_suppress_free(NULL);
}

static void test_suppress_parse_empty(void **state)
{
	struct pg_suppress *s;

	(void)state;
	assert_int_equal(parse("", &s, NULL, 0), 0);
	assert_non_null(s);
	assert_int_equal(s->n, 0);
	pg_suppress_free(s);
	assert_int_equal(parse("# nothing\n\n  \n", &s, NULL, 0), 0);
	assert_int_equal(s->n, 0);
	pg_suppress_free(s);
	assert_int_equal(pg_suppress_parse(NULL, 0, NULL, &s, NULL, 0), 0);
	assert_int_equal(s->n, 0);
	pg_suppress_free(s);
}

static void test_suppress_parse_errors(void **state)
{
	(void)state;
	expect_error("leak:ok\nfoo\n", "supp.txt:2: expected \"leak:PATTERN\"");
	expect_error("race:foo\n", "supp.txt:1: unknown suppression type \"race\" (only \"leak\" "
				   "is known)");
	expect_error("Leak:foo", "supp.txt:1: unknown suppression type \"Leak\" (only \"leak\" "
				 "is known)");
	expect_error("leak :foo", "supp.txt:1: unknown suppression type \"leak \" (only \"leak\" "
				  "is known)");
	expect_error("# c\n\nleak:\n", "supp.txt:3: empty pattern");
	expect_error("leak:   \n", "supp.txt:1: empty pattern");
	expect_error("leak:^\n", "supp.txt:1: empty pattern");
	expect_error("leak:$\n", "supp.txt:1: empty pattern");
	expect_error("leak:^$\n", "supp.txt:1: empty pattern");
	expect_error("leak:foo^bar\n", "supp.txt:1: \"^\" may only start a pattern");
	expect_error("leak:^^foo\n", "supp.txt:1: \"^\" may only start a pattern");
	expect_error("leak:foo$bar\n", "supp.txt:1: \"$\" may only end a pattern");
	expect_error("leak:foo$$\n", "supp.txt:1: \"$\" may only end a pattern");
	expect_error(":foo\n",
		     "supp.txt:1: unknown suppression type \"\" (only \"leak\" is known)");
	/* A long type is cut in the message. */
	expect_error(
	    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa:x",
	    "supp.txt:1: unknown suppression type \"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\" "
	    "(only \"leak\" is known)");
}

static void test_suppress_parse_nul(void **state)
{
	static const char text[] = "leak:a\nleak:b\0c\nleak:d\n";
	struct pg_suppress *s;
	char err[64];

	(void)state;
	assert_int_equal(pg_suppress_parse(text, sizeof(text) - 1, "f", &s, err, sizeof(err)),
			 -EINVAL);
	assert_string_equal(err, "f:2: NUL byte in line");
	/* The length is what counts, not a terminating NUL. */
	assert_int_equal(pg_suppress_parse(text, 7, "f", &s, err, sizeof(err)), 0);
	assert_int_equal(s->n, 1);
	assert_string_equal(s->rules[0].pattern, "a");
	pg_suppress_free(s);
}

static void test_suppress_parse_error_buffer(void **state)
{
	struct pg_suppress *s;
	char err[12];

	(void)state;
	/* A short buffer gets a truncated, terminated message. */
	assert_int_equal(parse("bogus\n", &s, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "supp.txt:1:");
	assert_null(s);
	assert_int_equal(pg_suppress_parse("x", 1, NULL, &s, NULL, 0), -EINVAL);
	{
		char big[128];

		assert_int_equal(pg_suppress_parse("x", 1, NULL, &s, big, sizeof(big)), -EINVAL);
		assert_string_equal(big, "suppressions:1: expected \"leak:PATTERN\"");
	}
}

/* The next n - 1 allocations succeed and the nth fails: pg_alloc counts
 * calls across the process, so run it to a failure first. */
static void fail_nth_alloc(unsigned n)
{
	void *p;

	pg_alloc_set_fault(n);
	while ((p = pg_alloc(1)))
		pg_free(p);
}

static void test_suppress_parse_out_of_memory(void **state)
{
	const char *text =
	    "leak:a\nleak:b\nleak:c\nleak:d\nleak:e\nleak:f\nleak:g\nleak:h\nleak:i\n";
	size_t held = pg_alloc_bytes();
	int ok = 0, nomem = 0;

	(void)state;
	for (unsigned every = 1; every <= 16; every++) {
		struct pg_suppress *s;
		char err[64];
		int rc;

		fail_nth_alloc(every);
		rc = parse(text, &s, err, sizeof(err));
		pg_alloc_set_fault(0);
		if (rc == 0) {
			assert_int_equal(s->n, 9);
			ok++;
		} else {
			assert_int_equal(rc, -ENOMEM);
			assert_string_equal(err, "supp.txt: out of memory");
			assert_null(s);
			nomem++;
		}
		pg_suppress_free(s);
		assert_int_equal(pg_alloc_bytes(), held);
	}
	assert_true(nomem > 0);
	assert_true(ok > 0);
}

static void test_suppress_pattern(void **state)
{
	(void)state;
	/* No wildcard: a substring, as in LeakSanitizer. */
	assert_true(pg_suppress_pattern_match("pool", "open_pool_conn"));
	assert_true(pg_suppress_pattern_match("open_pool_conn", "open_pool_conn"));
	assert_false(pg_suppress_pattern_match("pools", "open_pool_conn"));
	/* Anchors. */
	assert_true(pg_suppress_pattern_match("^open", "open_pool_conn"));
	assert_false(pg_suppress_pattern_match("^pool", "open_pool_conn"));
	assert_true(pg_suppress_pattern_match("conn$", "open_pool_conn"));
	assert_false(pg_suppress_pattern_match("pool$", "open_pool_conn"));
	assert_true(pg_suppress_pattern_match("^open_pool_conn$", "open_pool_conn"));
	assert_false(pg_suppress_pattern_match("^open_pool$", "open_pool_conn"));
	/* Wildcards. */
	assert_true(pg_suppress_pattern_match("open*conn", "open_pool_conn"));
	assert_true(pg_suppress_pattern_match("^o*n$", "open_pool_conn"));
	assert_true(pg_suppress_pattern_match("^*$", "x"));
	assert_true(pg_suppress_pattern_match("*", "anything"));
	assert_true(pg_suppress_pattern_match("a**b", "ab"));
	assert_false(pg_suppress_pattern_match("^b*", "ab"));
	assert_true(pg_suppress_pattern_match("^open*", "open"));
	assert_false(pg_suppress_pattern_match("^open*x", "open"));
	/* Backtracking: LeakSanitizer's TemplateMatch misses these two. */
	assert_true(pg_suppress_pattern_match("a*b$", "abab"));
	assert_true(pg_suppress_pattern_match("^a*ab$", "aab"));
	/* Everything else is literal: no "?" or classes, case counts. */
	assert_false(pg_suppress_pattern_match("op?n", "open"));
	assert_true(pg_suppress_pattern_match("op?n", "op?n"));
	assert_true(pg_suppress_pattern_match("[x]", "a[x]b"));
	assert_false(pg_suppress_pattern_match("OPEN", "open"));
	assert_true(
	    pg_suppress_pattern_match("libssl.so.3", "/usr/lib/x86_64-linux-gnu/libssl.so.3"));
	/* Unknown strings match nothing, not even "*". */
	assert_false(pg_suppress_pattern_match("*", ""));
	assert_false(pg_suppress_pattern_match("*", NULL));
	assert_false(pg_suppress_pattern_match(NULL, "x"));
}

static void test_suppress_match(void **state)
{
	struct pg_suppress *s;
	const char *text = "leak:^connect_backend$\n"
			   "leak:^libpq.so\n"
			   "leak:pool_*\n"
			   "leak:vendor/legacy.c\n";
	const struct pg_suppress_frame app[] = {
		{ "open_socket", "/usr/bin/app", "/src/app/net.c" },
		{ "connect_backend", "/usr/bin/app", "/src/app/db.c" },
		{ "main", "/usr/bin/app", "/src/app/main.c" },
	};
	const struct pg_suppress_frame lib[] = {
		{ NULL, "/usr/lib/x86_64-linux-gnu/libpq.so.5", NULL },
		{ "run", "/usr/bin/app", NULL },
	};
	const struct pg_suppress_frame pool[] = {
		{ "grow", "/opt/app/bin/app", NULL },
		{ "pool_acquire", "/opt/app/bin/app", NULL },
	};
	const struct pg_suppress_frame legacy[] = {
		{ "x", "/opt/app/bin/app", "/src/vendor/legacy.c" },
	};
	const struct pg_suppress_frame other[] = {
		{ "connect_backend_v2", "/usr/bin/app", NULL },
		{ NULL, "?", NULL },
		{ NULL, NULL, NULL },
		{ "spool", "/usr/lib/libpqxx.so", NULL },
	};

	(void)state;
	assert_int_equal(parse(text, &s, NULL, 0), 0);
	assert_int_equal(pg_suppress_match(s, app, 3, 2), 0);
	/* A module by its basename, anchored. */
	assert_int_equal(pg_suppress_match(s, lib, 2, 1), 1);
	assert_int_equal(pg_suppress_match(s, pool, 2, 5), 2);
	/* The source file, when the caller gives it. */
	assert_int_equal(pg_suppress_match(s, legacy, 1, 1), 3);
	assert_int_equal(pg_suppress_match(s, other, 4, 7), -1);
	assert_int_equal(s->rules[0].hits, 2);
	assert_int_equal(s->rules[1].hits, 1);
	assert_int_equal(s->rules[2].hits, 5);
	assert_int_equal(s->rules[3].hits, 1);
	/* Weight 0 asks without counting. */
	assert_int_equal(pg_suppress_match(s, app, 3, 0), 0);
	assert_int_equal(s->rules[0].hits, 2);
	pg_suppress_reset_hits(s);
	for (size_t i = 0; i < s->n; i++)
		assert_int_equal(s->rules[i].hits, 0);
	assert_int_equal(pg_suppress_match(s, NULL, 0, 1), -1);
	assert_int_equal(pg_suppress_match(NULL, app, 3, 1), -1);
	pg_suppress_free(s);
}

/* Frames innermost first; per frame the module before the function; among
 * rules for one string, the first in the file. */
static void test_suppress_match_order(void **state)
{
	struct pg_suppress *s;
	const struct pg_suppress_frame f[] = {
		{ "inner_fn", "/usr/lib/libinner.so", NULL },
		{ "outer", "/usr/bin/app", NULL },
	};
	const struct pg_suppress_frame g[] = {
		{ "inner_fn", "/usr/lib/libz.so", NULL },
	};

	(void)state;
	assert_int_equal(parse("leak:outer\nleak:inner_fn\nleak:libinner\n", &s, NULL, 0), 0);
	/* Frame 0 first: its module matches rule 2 before its function
	 * matches rule 1; the outer frame's rule 0 never comes up. */
	assert_int_equal(pg_suppress_match(s, f, 2, 1), 2);
	assert_int_equal(pg_suppress_match(s, f + 1, 1, 1), 0);
	assert_int_equal(pg_suppress_match(s, g, 1, 1), 1);
	assert_int_equal(s->rules[0].hits, 1);
	assert_int_equal(s->rules[1].hits, 1);
	assert_int_equal(s->rules[2].hits, 1);
	pg_suppress_free(s);
}

/* ---- randomized: the matcher against a naive reference, the parser on
 * junk (the file comes from the user: it must never crash or leak) ---- */

static uint64_t rng = 0x9e3779b97f4a7c15ull;

static unsigned rnd(unsigned n)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (unsigned)(rng % n);
}

static int ref_here(const char *p, const char *s, int end)
{
	if (!*p)
		return !end || !*s;
	if (*p == '*')
		return ref_here(p + 1, s, end) || (*s && ref_here(p, s + 1, end));
	return *s && *p == *s && ref_here(p + 1, s + 1, end);
}

/* pattern: body only; anchors given apart. */
static int ref_match(const char *body, int start, int end, const char *s)
{
	if (!*s)
		return 0;
	for (const char *t = s;; t++) {
		if (ref_here(body, t, end))
			return 1;
		if (start || !*t)
			return 0;
	}
}

static void test_suppress_pattern_random(void **state)
{
	(void)state;
	for (int iter = 0; iter < 50000; iter++) {
		char body[8], pat[12], str[10];
		int start = rnd(3) == 0, end = rnd(3) == 0;
		unsigned bn = rnd(6), sn = rnd(9);

		for (unsigned i = 0; i < bn; i++)
			body[i] = "ab*"[rnd(3)];
		body[bn] = '\0';
		for (unsigned i = 0; i < sn; i++)
			str[i] = "ab"[rnd(2)];
		str[sn] = '\0';
		snprintf(pat, sizeof(pat), "%s%s%s", start ? "^" : "", body, end ? "$" : "");
		if (pg_suppress_pattern_match(pat, str) != ref_match(body, start, end, str))
			fail_msg("pattern \"%s\" on \"%s\": expected %d", pat, str,
				 ref_match(body, start, end, str));
	}
}

static void test_suppress_parse_random(void **state)
{
#define PIECE(lit)                   \
	{                            \
		lit, sizeof(lit) - 1 \
	}
	static const struct {
		const char *s;
		size_t n;
	} pieces[] = { PIECE("leak"),   PIECE(":"),       PIECE("^"),    PIECE("$"),
		       PIECE("*"),      PIECE("#"),       PIECE(" "),    PIECE("\t"),
		       PIECE("\r"),     PIECE("\n"),      PIECE("\n"),   PIECE("\n"),
		       PIECE("x"),      PIECE("libz.so"), PIECE("race"), PIECE("leak:"),
		       PIECE("leak:a"), PIECE("\0") };
#undef PIECE
	size_t held = pg_alloc_bytes();
	int good = 0, bad = 0;

	(void)state;
	for (int iter = 0; iter < 20000; iter++) {
		char text[256], err[128];
		size_t len = 0;
		unsigned lines = 1, n = rnd(24);
		struct pg_suppress *s = NULL;
		int rc;

		for (unsigned i = 0; i < n; i++) {
			unsigned k = rnd(sizeof(pieces) / sizeof(pieces[0]));

			if (len + pieces[k].n > sizeof(text))
				break;
			memcpy(text + len, pieces[k].s, pieces[k].n);
			len += pieces[k].n;
		}
		for (size_t i = 0; i < len; i++)
			lines += text[i] == '\n';
		rc = pg_suppress_parse(text, len, "supp.txt", &s, err, sizeof(err));
		if (rc == 0) {
			assert_non_null(s);
			for (size_t i = 0; i < s->n; i++) {
				assert_true(s->rules[i].line >= 1 && s->rules[i].line <= lines);
				assert_true(s->rules[i].pattern[0] != '\0');
			}
			good++;
		} else {
			unsigned at = 0;

			assert_int_equal(rc, -EINVAL);
			assert_null(s);
			assert_int_equal(sscanf(err, "supp.txt:%u: ", &at), 1);
			assert_true(at >= 1 && at <= lines);
			bad++;
		}
		pg_suppress_free(s);
	}
	assert_int_equal(pg_alloc_bytes(), held);
	assert_true(good > 100);
	assert_true(bad > 100);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_suppress_parse),
		cmocka_unit_test(test_suppress_parse_empty),
		cmocka_unit_test(test_suppress_parse_errors),
		cmocka_unit_test(test_suppress_parse_nul),
		cmocka_unit_test(test_suppress_parse_error_buffer),
		cmocka_unit_test(test_suppress_parse_out_of_memory),
		cmocka_unit_test(test_suppress_pattern),
		cmocka_unit_test(test_suppress_pattern_random),
		cmocka_unit_test(test_suppress_parse_random),
		cmocka_unit_test(test_suppress_match),
		cmocka_unit_test(test_suppress_match_order),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
