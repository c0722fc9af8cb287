/* Unit tests of policy/: the parser (every directive and every message, to
 * the letter), matching, pool and bind decisions, churn with an injected
 * clock. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/un.h>

#include "policy/policy.h"

#define FILE_NAME "/etc/pg.policy"
#define NS 1000000000LL
#define MS 1000000LL

static struct pg_policy pol;
static char err[512];

static int parse(const char *text)
{
	memset(err, 'Z', sizeof(err));
	return pg_policy_parse(&pol, text, strlen(text), FILE_NAME, err, sizeof(err));
}

static void parse_ok(const char *text)
{
	int rc = parse(text);

	if (rc)
		print_error("unexpected error: %s\n", err);
	assert_int_equal(rc, 0);
	assert_string_equal(err, "");
}

/* The text must fail with exactly FILE_NAME ":" want, and leave nothing. */
static void parse_bad(const char *text, const char *want)
{
	char full[600];

	snprintf(full, sizeof(full), "%s:%s", FILE_NAME, want);
	assert_int_equal(parse(text), -EINVAL);
	assert_string_equal(err, full);
	assert_true(pg_policy_is_empty(&pol));
}

static struct sockaddr_in sin4(const char *ip, unsigned port)
{
	struct sockaddr_in a;

	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_port = htons((uint16_t)port);
	assert_int_equal(inet_pton(AF_INET, ip, &a.sin_addr), 1);
	return a;
}

static struct sockaddr_in6 sin6(const char *ip, unsigned port)
{
	struct sockaddr_in6 a;

	memset(&a, 0, sizeof(a));
	a.sin6_family = AF_INET6;
	a.sin6_port = htons((uint16_t)port);
	assert_int_equal(inet_pton(AF_INET6, ip, &a.sin6_addr), 1);
	return a;
}

static int match4(const char *ip, unsigned port)
{
	struct sockaddr_in a = sin4(ip, port);

	return pg_policy_match_pool(&pol, (struct sockaddr *)&a, sizeof(a));
}

static int match6(const char *ip, unsigned port)
{
	struct sockaddr_in6 a = sin6(ip, port);

	return pg_policy_match_pool(&pol, (struct sockaddr *)&a, sizeof(a));
}

static const char *dest_str(uint32_t i)
{
	static char buf[PG_POLICY_DEST_STRLEN];

	assert_true(i < pol.npool);
	assert_int_equal(pg_policy_format_dest(&pol.pool[i].dest, buf, sizeof(buf)), 0);
	return buf;
}

static void test_policy_init_empty(void **state)
{
	(void)state;
	memset(&pol, 0xff, sizeof(pol));
	pg_policy_init(&pol);
	assert_true(pg_policy_is_empty(&pol));
	assert_int_equal(pol.npool, 0);
	assert_int_equal(pol.churn_warn_per_sec, 0);
	assert_int_equal(pol.flag[PG_POLICY_REUSEADDR], 0);
	parse_ok("");
	assert_true(pg_policy_is_empty(&pol));
	parse_ok("\n\n   \t\n# only a comment\n");
	assert_true(pg_policy_is_empty(&pol));
	assert_int_equal(pg_policy_parse(&pol, NULL, 0, FILE_NAME, err, sizeof(err)), 0);
	assert_true(pg_policy_is_empty(&pol));
}

static void test_policy_flags(void **state)
{
	(void)state;
	parse_ok("reuseaddr on\nreuseport off\nbind_no_port on\n");
	assert_int_equal(pol.flag[PG_POLICY_REUSEADDR], 1);
	assert_int_equal(pol.flag[PG_POLICY_REUSEPORT], 0);
	assert_int_equal(pol.flag[PG_POLICY_BIND_NO_PORT], 1);
	assert_false(pg_policy_is_empty(&pol));

	parse_ok("reuseport on");
	assert_int_equal(pol.flag[PG_POLICY_REUSEADDR], 0);
	assert_int_equal(pol.flag[PG_POLICY_REUSEPORT], 1);
	assert_int_equal(pol.flag[PG_POLICY_BIND_NO_PORT], 0);

	/* "off" alone asks for nothing. */
	parse_ok("reuseaddr off\nreuseport off\nbind_no_port off\n");
	assert_true(pg_policy_is_empty(&pol));
}

static void test_policy_flag_errors(void **state)
{
	(void)state;
	parse_bad("reuseaddr\n", "1: reuseaddr: missing value (expected 'on' or 'off')");
	parse_bad("reuseaddr  # on\n", "1: reuseaddr: missing value (expected 'on' or 'off')");
	parse_bad("\nreuseport yes\n", "2: reuseport: expected 'on' or 'off', got 'yes'");
	parse_bad("bind_no_port ON\n", "1: bind_no_port: expected 'on' or 'off', got 'ON'");
	parse_bad("reuseaddr on off\n", "1: reuseaddr: unexpected 'off' after the value");
	parse_bad("reuseaddr on\n# x\nreuseaddr on\n", "3: reuseaddr: already set on line 1");
	parse_bad("bind_no_port off\nbind_no_port on\n", "2: bind_no_port: already set on line 1");
	parse_bad("reuseaddr=on\n", "1: unknown directive 'reuseaddr=on' (write "
				    "'reuseaddr on' or 'reuseaddr off', without '=')");
	parse_bad("Reuseaddr on\n", "1: unknown directive 'Reuseaddr' (expected "
				    "reuseaddr, reuseport, bind_no_port, pool or churn)");
	parse_bad("reuse_addr on\n", "1: unknown directive 'reuse_addr' (expected "
				     "reuseaddr, reuseport, bind_no_port, pool or churn)");
}

static void test_policy_whitespace_and_comments(void **state)
{
	static const char text[] =
	    "\xef\xbb\xbf# a policy written on another system\r\n"
	    "\t reuseaddr\t\ton \r\n"
	    "\r\n"
	    "pool\t127.0.0.1:5432   max=20\tmode=block  wait_ms=2000# glued comment\r\n"
	    "   # indented comment\n"
	    "\v\fchurn warn_per_sec=200"; /* no final newline */

	(void)state;
	parse_ok(text);
	assert_int_equal(pol.flag[PG_POLICY_REUSEADDR], 1);
	assert_int_equal(pol.npool, 1);
	assert_string_equal(dest_str(0), "127.0.0.1:5432");
	assert_int_equal(pol.pool[0].max, 20);
	assert_int_equal(pol.pool[0].mode, PG_POOL_MODE_BLOCK);
	assert_int_equal(pol.pool[0].wait_ms, 2000);
	assert_int_equal(pol.pool[0].line, 4);
	assert_int_equal(pol.churn_warn_per_sec, 200);

	/* Line numbers count '\n' only, CRLF or not. */
	parse_bad("# one\r\n\r\nbogus\r\n", "3: unknown directive 'bogus' (expected "
					    "reuseaddr, reuseport, bind_no_port, pool or churn)");
	/* A BOM anywhere but at the very start is not skipped. */
	parse_bad("\n\xef\xbb\xbfreuseaddr on\n",
		  "2: unknown directive "
		  "'\\xef\\xbb\\xbfreuseaddr' (expected reuseaddr, reuseport, "
		  "bind_no_port, pool or churn)");
}

static void test_policy_spec_example(void **state)
{
	static const char text[] = "reuseaddr on                 # SO_REUSEADDR before bind()\n"
				   "reuseport off                # SO_REUSEPORT likewise\n"
				   "bind_no_port on              # IP_BIND_ADDRESS_NO_PORT\n"
				   "pool 127.0.0.1:5432 max=20 mode=block wait_ms=2000\n"
				   "pool *:443 max=64 mode=warn\n"
				   "churn warn_per_sec=200\n";

	(void)state;
	parse_ok(text);
	assert_int_equal(pol.flag[PG_POLICY_REUSEADDR], 1);
	assert_int_equal(pol.flag[PG_POLICY_REUSEPORT], 0);
	assert_int_equal(pol.flag[PG_POLICY_BIND_NO_PORT], 1);
	assert_int_equal(pol.npool, 2);
	assert_string_equal(dest_str(0), "127.0.0.1:5432");
	assert_string_equal(dest_str(1), "*:443");
	assert_int_equal(pol.pool[1].max, 64);
	assert_int_equal(pol.pool[1].mode, PG_POOL_MODE_WARN);
	assert_int_equal(pol.pool[1].wait_ms, 0);
	assert_int_equal(pol.pool[1].line, 5);
	assert_int_equal(pol.churn_warn_per_sec, 200);
}

static void test_policy_pool_dest_forms(void **state)
{
	static const struct {
		const char *in, *out;
		int family;
	} cases[] = {
		{ "*", "*", AF_UNSPEC },
		{ "*:*", "*", AF_UNSPEC },
		{ "*:443", "*:443", AF_UNSPEC },
		{ "127.0.0.1:*", "127.0.0.1:*", AF_INET },
		{ "10.1.2.3:65535", "10.1.2.3:65535", AF_INET },
		{ "0.0.0.0:1", "0.0.0.0:1", AF_INET },
		{ "[::1]:443", "[::1]:443", AF_INET6 },
		{ "[2001:DB8::0:1]:*", "[2001:db8::1]:*", AF_INET6 },
		{ "[::ffff:10.0.0.1]:80", "10.0.0.1:80", AF_INET },
		{ "[::]:80", "[::]:80", AF_INET6 },
		{ "127.0.0.1:0080", "127.0.0.1:80", AF_INET },
	};
	char text[128];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		snprintf(text, sizeof(text), "pool %s max=1 mode=fail\n", cases[i].in);
		parse_ok(text);
		assert_int_equal(pol.npool, 1);
		assert_string_equal(dest_str(0), cases[i].out);
		assert_int_equal(pol.pool[0].dest.family, cases[i].family);
	}
	parse_ok("pool 192.168.1.1:8080 max=1 mode=fail");
	assert_int_equal(pol.pool[0].dest.port, 8080);
	assert_int_equal(pol.pool[0].dest.any_port, 0);
	assert_memory_equal(pol.pool[0].dest.addr, "\xc0\xa8\x01\x01", 4);
}

static void test_policy_pool_dest_errors(void **state)
{
	(void)state;
	parse_bad("pool 127.0.0.1 max=1 mode=fail",
		  "1: pool: bad destination "
		  "'127.0.0.1': missing ':PORT' (':*' for any port)");
	parse_bad("pool localhost:80 max=1 mode=fail",
		  "1: pool: bad destination "
		  "'localhost:80': not an IPv4 address (host names are not resolved)");
	parse_bad("pool 256.0.0.1:80 max=1 mode=fail",
		  "1: pool: bad destination "
		  "'256.0.0.1:80': not an IPv4 address (host names are not resolved)");
	parse_bad("pool 10.0.0.01:80 max=1 mode=fail",
		  "1: pool: bad destination "
		  "'10.0.0.01:80': not an IPv4 address (host names are not resolved)");
	parse_bad("pool 127.0.0.1:0 max=1 mode=fail",
		  "1: pool: bad destination "
		  "'127.0.0.1:0': port must be 1 to 65535 or '*'");
	parse_bad("pool 127.0.0.1:65536 max=1 mode=fail",
		  "1: pool: bad destination "
		  "'127.0.0.1:65536': port must be 1 to 65535 or '*'");
	parse_bad("pool 127.0.0.1:http max=1 mode=fail",
		  "1: pool: bad destination "
		  "'127.0.0.1:http': port must be 1 to 65535 or '*'");
	parse_bad("pool 127.0.0.1: max=1 mode=fail",
		  "1: pool: bad destination "
		  "'127.0.0.1:': port must be 1 to 65535 or '*'");
	parse_bad("pool :80 max=1 mode=fail", "1: pool: bad destination ':80': "
					      "missing address ('*' for any address)");
	parse_bad("pool ::1:80 max=1 mode=fail",
		  "1: pool: bad destination '::1:80': "
		  "an IPv6 address goes in brackets, as in '[::1]:443'");
	parse_bad("pool [::1:80 max=1 mode=fail", "1: pool: bad destination '[::1:80': "
						  "missing ']'");
	parse_bad("pool [::1] max=1 mode=fail", "1: pool: bad destination '[::1]': "
						"expected ':PORT' after ']' (':*' for any port)");
	parse_bad("pool [::1]80 max=1 mode=fail", "1: pool: bad destination '[::1]80': "
						  "expected ':PORT' after ']' (':*' for any port)");
	parse_bad("pool [*]:443 max=1 mode=fail",
		  "1: pool: bad destination '[*]:443': "
		  "'[*]' is not a pattern; write '*:PORT' for any address");
	parse_bad("pool [fe80::1%eth0]:80 max=1 mode=fail",
		  "1: pool: bad destination "
		  "'[fe80::1%eth0]:80': zone ids ('%') are not supported");
	parse_bad("pool [127.0.0.1]:80 max=1 mode=fail", "1: pool: bad destination "
							 "'[127.0.0.1]:80': not an IPv6 address");
	parse_bad("pool [::g]:80 max=1 mode=fail", "1: pool: bad destination "
						   "'[::g]:80': not an IPv6 address");
	parse_bad("pool []:80 max=1 mode=fail", "1: pool: bad destination "
						"'[]:80': not an IPv6 address");
	/* Longer than any address: refused before inet_pton sees it. */
	parse_bad("pool [0000:0000:0000:0000:0000:0000:0000:0000:0000:0000]:80 max=1 "
		  "mode=fail",
		  "1: pool: bad destination '[0000:0000:0000:0000:0000:"
		  "0000:0000:0000...': not an IPv6 address");
	parse_bad("pool 11111111112222222222333333333344444444445555555.1:80 max=1 mode=fail",
		  "1: pool: bad destination '1111111111222222222233333333334444444444..."
		  "': not an IPv4 address (host names are not resolved)");
	parse_bad("pool [::1]:0 max=1 mode=fail", "1: pool: bad destination "
						  "'[::1]:0': port must be 1 to 65535 or '*'");
	parse_bad("pool *:-1 max=1 mode=fail", "1: pool: bad destination "
					       "'*:-1': port must be 1 to 65535 or '*'");
	parse_bad("pool ** max=1 mode=fail", "1: pool: bad destination "
					     "'**': missing ':PORT' (':*' for any port)");
	parse_bad("pool", "1: pool: missing destination (expected 'pool DEST max=N "
			  "mode=warn|fail|block [wait_ms=T]')");
	parse_bad("pool max=1 mode=fail", "1: pool: missing destination before 'max=1'");
}

static void test_policy_pool_keys(void **state)
{
	(void)state;
	parse_ok("pool *:80 mode=warn max=1000000");
	assert_int_equal(pol.pool[0].max, 1000000);
	assert_int_equal(pol.pool[0].mode, PG_POOL_MODE_WARN);
	parse_ok("pool *:80 max=1 mode=fail");
	assert_int_equal(pol.pool[0].max, 1);
	assert_int_equal(pol.pool[0].mode, PG_POOL_MODE_FAIL);
	assert_int_equal(pol.pool[0].wait_ms, 0);
	parse_ok("pool *:80 wait_ms=3600000 max=5 mode=block");
	assert_int_equal(pol.pool[0].mode, PG_POOL_MODE_BLOCK);
	assert_int_equal(pol.pool[0].wait_ms, 3600000);
	/* block without wait_ms waits the default. */
	parse_ok("pool *:80 max=5 mode=block");
	assert_int_equal(pol.pool[0].wait_ms, PG_POLICY_WAIT_MS_DEFAULT);
	assert_int_equal(pol.pool[0].wait_ms, 1000);
}

static void test_policy_pool_key_errors(void **state)
{
	(void)state;
	parse_bad("pool *:80 max=x mode=warn", "1: pool: max must be a whole number "
					       "from 1 to 1000000, got 'x'");
	parse_bad("pool *:80 max=0 mode=warn", "1: pool: max must be a whole number "
					       "from 1 to 1000000, got '0'");
	parse_bad("pool *:80 max=1000001 mode=warn", "1: pool: max must be a whole "
						     "number from 1 to 1000000, got '1000001'");
	parse_bad("pool *:80 max=99999999999999999999999 mode=warn",
		  "1: pool: max "
		  "must be a whole number from 1 to 1000000, got '99999999999999999999999'");
	parse_bad("pool *:80 max=-1 mode=warn", "1: pool: max must be a whole number "
						"from 1 to 1000000, got '-1'");
	parse_bad("pool *:80 max=+1 mode=warn", "1: pool: max must be a whole number "
						"from 1 to 1000000, got '+1'");
	parse_bad("pool *:80 max=1.5 mode=warn", "1: pool: max must be a whole number "
						 "from 1 to 1000000, got '1.5'");
	parse_bad("pool *:80 max= mode=warn", "1: pool: max must be a whole number "
					      "from 1 to 1000000, got ''");
	parse_bad("pool *:80 max=1 mode=drop", "1: pool: mode must be warn, fail or "
					       "block, got 'drop'");
	parse_bad("pool *:80 max=1 mode=", "1: pool: mode must be warn, fail or "
					   "block, got ''");
	parse_bad("pool *:80 max=1 mode=block wait_ms=0",
		  "1: pool: wait_ms must be a "
		  "whole number from 1 to 3600000, got '0'");
	parse_bad("pool *:80 max=1 mode=block wait_ms=3600001",
		  "1: pool: wait_ms must "
		  "be a whole number from 1 to 3600000, got '3600001'");
	parse_bad("pool *:80 max=1 mode=block wait_ms=2s",
		  "1: pool: wait_ms must be a "
		  "whole number from 1 to 3600000, got '2s'");
	parse_bad("pool *:80 max=1 max=2 mode=warn", "1: pool: duplicate key 'max'");
	parse_bad("pool *:80 max=1 mode=warn mode=fail", "1: pool: duplicate key 'mode'");
	parse_bad("pool *:80 max=1 mode=block wait_ms=1 wait_ms=2",
		  "1: pool: duplicate key 'wait_ms'");
	parse_bad("pool *:80 max=1 mode=warn timeout=3",
		  "1: pool: unknown key "
		  "'timeout' (expected max, mode or wait_ms)");
	parse_bad("pool *:80 max=1 mode=warn =3", "1: pool: unknown key '' "
						  "(expected max, mode or wait_ms)");
	parse_bad("pool *:80 max = 1 mode=warn", "1: pool: expected KEY=VALUE, got 'max'");
	parse_bad("pool *:80 max=1 mode=warn extra", "1: pool: expected KEY=VALUE, "
						     "got 'extra'");
	parse_bad("pool *:80 mode=warn", "1: pool: missing max=N");
	parse_bad("pool *:80 max=3", "1: pool: missing mode=warn|fail|block");
	parse_bad("pool *:80 max=3 mode=warn wait_ms=100",
		  "1: pool: wait_ms applies only to mode=block");
	parse_bad("pool *:80 wait_ms=100 max=3 mode=fail",
		  "1: pool: wait_ms applies only to mode=block");
}

static void test_policy_pool_limit(void **state)
{
	char text[PG_POLICY_POOL_MAX * 48 + 64];
	size_t o = 0;
	int i;

	(void)state;
	for (i = 0; i < PG_POLICY_POOL_MAX; i++)
		o += (size_t)snprintf(text + o, sizeof(text) - o,
				      "pool 10.0.0.1:%d max=1 mode=fail\n", i + 1);
	parse_ok(text);
	assert_int_equal(pol.npool, 64);
	assert_string_equal(dest_str(63), "10.0.0.1:64");
	assert_int_equal(pol.pool[63].line, 64);
	snprintf(text + o, sizeof(text) - o, "# one too many\npool 10.0.0.1:65 max=1 mode=fail\n");
	parse_bad(text, "66: pool: too many pool rules (at most 64)");
}

static void test_policy_pool_shadowed(void **state)
{
	(void)state;
	parse_bad("pool *:443 max=1 mode=warn\npool 127.0.0.1:443 max=1 mode=fail\n",
		  "2: pool: the rule for 127.0.0.1:443 never applies: the rule for "
		  "*:443 on line 1 matches first");
	parse_bad("pool * max=1 mode=warn\n\npool [::1]:* max=1 mode=fail\n",
		  "3: pool: the rule for [::1]:* never applies: the rule for * on "
		  "line 1 matches first");
	parse_bad("pool 10.0.0.1:* max=1 mode=warn\npool 10.0.0.1:80 max=1 mode=fail\n",
		  "2: pool: the rule for 10.0.0.1:80 never applies: the rule for "
		  "10.0.0.1:* on line 1 matches first");
	parse_bad("pool 10.0.0.1:80 max=1 mode=warn\npool [::ffff:10.0.0.1]:80 max=2 "
		  "mode=fail\n",
		  "2: pool: the rule for 10.0.0.1:80 never applies: the "
		  "rule for 10.0.0.1:80 on line 1 matches first");
	/* Narrow before broad is how it should be written. */
	parse_ok("pool 127.0.0.1:443 max=1 mode=fail\npool *:443 max=1 mode=warn\n"
		 "pool [::1]:* max=2 mode=warn\npool 127.0.0.1:* max=3 mode=warn\n"
		 "pool * max=9 mode=warn\n");
	assert_int_equal(pol.npool, 5);
}

static void test_policy_churn_directive(void **state)
{
	(void)state;
	parse_ok("churn warn_per_sec=1");
	assert_int_equal(pol.churn_warn_per_sec, 1);
	parse_ok("churn   warn_per_sec=1000000  # top");
	assert_int_equal(pol.churn_warn_per_sec, 1000000);
	assert_false(pg_policy_is_empty(&pol));

	parse_bad("churn", "1: churn: missing warn_per_sec=R");
	parse_bad("churn warn_per_sec=0", "1: churn: warn_per_sec must be a whole "
					  "number from 1 to 1000000, got '0'");
	parse_bad("churn warn_per_sec=1000001", "1: churn: warn_per_sec must be a "
						"whole number from 1 to 1000000, got '1000001'");
	parse_bad("churn warn_per_sec=2.5", "1: churn: warn_per_sec must be a "
					    "whole number from 1 to 1000000, got '2.5'");
	parse_bad("churn rate=5", "1: churn: unknown key 'rate' (expected warn_per_sec)");
	parse_bad("churn 200", "1: churn: expected KEY=VALUE, got '200'");
	parse_bad("churn warn_per_sec=1 warn_per_sec=2", "1: churn: duplicate key 'warn_per_sec'");
	parse_bad("churn warn_per_sec=5\nchurn warn_per_sec=5\n",
		  "2: churn: already set on line 1");
}

static void test_policy_line_limits(void **state)
{
	char text[PG_POLICY_LINE_MAX + 64];

	(void)state;
	/* Exactly PG_POLICY_LINE_MAX bytes is fine, comment or not. */
	memset(text, ' ', sizeof(text));
	memcpy(text, "reuseaddr on #", 14);
	text[PG_POLICY_LINE_MAX] = '\n';
	text[PG_POLICY_LINE_MAX + 1] = '\0';
	parse_ok(text);
	assert_int_equal(pol.flag[PG_POLICY_REUSEADDR], 1);

	memset(text, '#', sizeof(text));
	text[0] = '\n';
	text[PG_POLICY_LINE_MAX + 2] = '\n';
	text[PG_POLICY_LINE_MAX + 3] = '\0';
	parse_bad(text, "2: line is longer than 1024 bytes");

	/* The last line, without '\n', too. */
	memset(text, 'x', sizeof(text));
	text[PG_POLICY_LINE_MAX + 1] = '\0';
	parse_bad(text, "1: line is longer than 1024 bytes");

	assert_int_equal(pg_policy_parse(&pol, "reuseaddr on\nreuse\0addr on\n", 27, FILE_NAME, err,
					 sizeof(err)),
			 -EINVAL);
	assert_string_equal(err, FILE_NAME ":2: line contains a NUL byte");
}

static void test_policy_error_resets(void **state)
{
	(void)state;
	/* Good lines before the bad one are not applied either. */
	parse_bad("reuseaddr on\npool *:80 max=1 mode=warn\nchurn warn_per_sec=3\n"
		  "bogus\n",
		  "4: unknown directive 'bogus' (expected reuseaddr, "
		  "reuseport, bind_no_port, pool or churn)");
	assert_int_equal(pol.flag[PG_POLICY_REUSEADDR], 0);
	assert_int_equal(pol.npool, 0);
	assert_int_equal(pol.churn_warn_per_sec, 0);
	/* A policy parsed earlier does not survive into the next parse. */
	parse_ok("reuseaddr on");
	parse_ok("reuseport on");
	assert_int_equal(pol.flag[PG_POLICY_REUSEADDR], 0);
}

static void test_policy_error_buffer(void **state)
{
	char small[16];

	(void)state;
	/* Truncated, still terminated. */
	memset(small, 'Z', sizeof(small));
	assert_int_equal(pg_policy_parse(&pol, "bogus", 5, "/etc/pg.policy", small, sizeof(small)),
			 -EINVAL);
	assert_string_equal(small, "/etc/pg.policy:");
	memset(small, 'Z', sizeof(small));
	assert_int_equal(
	    pg_policy_parse(&pol, "bogus", 5, "/a/very/long/file/name", small, sizeof(small)),
	    -EINVAL);
	assert_string_equal(small, "/a/very/long/fi");
	memset(small, 'Z', sizeof(small));
	assert_int_equal(pg_policy_parse(&pol, "bogus", 5, "f", small, 1), -EINVAL);
	assert_int_equal(small[0], '\0');
	assert_int_equal(small[1], 'Z');
	/* No buffer at all, and no file name. */
	assert_int_equal(pg_policy_parse(&pol, "bogus", 5, "f", NULL, 0), -EINVAL);
	assert_int_equal(pg_policy_parse(&pol, "bogus", 5, NULL, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "policy:1: unknown directive 'bogus' (expected "
				 "reuseaddr, reuseport, bind_no_port, pool or churn)");
	/* Length is honoured: text past len is not read. */
	assert_int_equal(pg_policy_parse(&pol, "reuseaddr onXXX", 12, "f", err, sizeof(err)), 0);
	assert_int_equal(pol.flag[PG_POLICY_REUSEADDR], 1);
}

static void test_policy_error_quoting(void **state)
{
	char text[200];

	(void)state;
	parse_bad("reuseaddr o\x01n\\", "1: reuseaddr: expected 'on' or 'off', got "
					"'o\\x01n\\x5c'");
	parse_bad("reuseaddr \xc3\xa9", "1: reuseaddr: expected 'on' or 'off', got "
					"'\\xc3\\xa9'");
	/* Long words are cut at 40 bytes. */
	snprintf(text, sizeof(text), "pool *:80 max=%s mode=warn",
		 "12345678901234567890123456789012345678901234567890");
	parse_bad(text, "1: pool: max must be a whole number from 1 to 1000000, got "
			"'1234567890123456789012345678901234567890...'");
}

static void test_policy_set_flag(void **state)
{
	(void)state;
	pg_policy_init(&pol);
	assert_int_equal(pg_policy_set_flag(&pol, "reuseaddr", 1), 0);
	assert_int_equal(pol.flag[PG_POLICY_REUSEADDR], 1);
	assert_int_equal(pol.flag[PG_POLICY_REUSEPORT], 0);
	assert_int_equal(pg_policy_set_flag(&pol, "reuseport", 1), 0);
	assert_int_equal(pg_policy_set_flag(&pol, "bind_no_port", 1), 0);
	assert_int_equal(pol.flag[PG_POLICY_REUSEPORT], 1);
	assert_int_equal(pol.flag[PG_POLICY_BIND_NO_PORT], 1);
	/* 0 is the option's default: it does not take out the file's "on". */
	parse_ok("reuseaddr on\n");
	assert_int_equal(pg_policy_set_flag(&pol, "reuseaddr", 0), 0);
	assert_int_equal(pol.flag[PG_POLICY_REUSEADDR], 1);
	assert_int_equal(pg_policy_set_flag(&pol, "reuseport", 0), 0);
	assert_int_equal(pol.flag[PG_POLICY_REUSEPORT], 0);
	/* Not shorthands. */
	assert_int_equal(pg_policy_set_flag(&pol, "pool", 1), -ENOENT);
	assert_int_equal(pg_policy_set_flag(&pol, "REUSEADDR", 1), -ENOENT);
	assert_int_equal(pg_policy_set_flag(&pol, "", 1), -ENOENT);
	assert_int_equal(pg_policy_set_flag(&pol, NULL, 1), -ENOENT);
	assert_int_equal(pg_policy_set_flag(&pol, "reuseport", 2), -EINVAL);
	assert_int_equal(pg_policy_set_flag(&pol, "reuseport", -1), -EINVAL);
	assert_int_equal(pol.flag[PG_POLICY_REUSEPORT], 0);
}

static void test_policy_match_v4(void **state)
{
	(void)state;
	parse_ok("pool 127.0.0.1:5432 max=20 mode=block wait_ms=2000\n"
		 "pool 127.0.0.1:* max=5 mode=fail\n"
		 "pool *:443 max=64 mode=warn\n");
	assert_int_equal(match4("127.0.0.1", 5432), 0);
	assert_int_equal(match4("127.0.0.1", 5433), 1);
	assert_int_equal(match4("127.0.0.1", 443), 1); /* first match wins */
	assert_int_equal(match4("10.0.0.7", 443), 2);
	assert_int_equal(match4("10.0.0.7", 80), -1);
	assert_int_equal(match4("127.0.0.2", 5432), -1);
	/* Mapped destinations are IPv4 ones. */
	assert_int_equal(match6("::ffff:127.0.0.1", 5432), 0);
	assert_int_equal(match6("::ffff:127.0.0.1", 9), 1);
	assert_int_equal(match6("::ffff:10.9.9.9", 443), 2);
	assert_int_equal(match6("::ffff:10.9.9.9", 444), -1);
	/* IPv4-compatible (::a.b.c.d) and NAT64 are not mapped. */
	assert_int_equal(match6("::127.0.0.1", 5432), -1);
	assert_int_equal(match6("64:ff9b::127.0.0.1", 5432), -1);
	/* *:443 matches IPv6 too. */
	assert_int_equal(match6("2001:db8::1", 443), 2);
}

static void test_policy_match_v6(void **state)
{
	(void)state;
	parse_ok("pool [::1]:8080 max=1 mode=fail\n"
		 "pool [2001:db8::5]:* max=1 mode=fail\n"
		 "pool [::ffff:192.0.2.1]:80 max=1 mode=fail\n"
		 "pool * max=1000 mode=warn\n");
	assert_int_equal(match6("::1", 8080), 0);
	assert_int_equal(match6("::1", 8081), 3);
	assert_int_equal(match6("2001:db8::5", 1), 1);
	assert_int_equal(match6("2001:db8::5", 65535), 1);
	assert_int_equal(match6("2001:db8::6", 1), 3);
	/* A rule written mapped matches both spellings of the peer. */
	assert_int_equal(match4("192.0.2.1", 80), 2);
	assert_int_equal(match6("::ffff:192.0.2.1", 80), 2);
	/* An IPv6 rule never matches an IPv4 peer. */
	assert_int_equal(match4("0.0.0.1", 8080), 3);
	/* Scope ids are ignored. */
	{
		struct sockaddr_in6 a = sin6("::1", 8080);

		a.sin6_scope_id = 7;
		assert_int_equal(pg_policy_match_pool(&pol, (struct sockaddr *)&a, sizeof(a)), 0);
	}
}

static void test_policy_match_odd_input(void **state)
{
	struct sockaddr_in a4;
	struct sockaddr_in6 a6;
	struct sockaddr_un un;
	unsigned char raw[64];

	(void)state;
	parse_ok("pool * max=1 mode=warn\n");
	a4 = sin4("127.0.0.1", 80);
	a6 = sin6("::1", 80);
	assert_int_equal(pg_policy_match_pool(&pol, (struct sockaddr *)&a4, sizeof(a4)), 0);
	assert_int_equal(pg_policy_match_pool(&pol, (struct sockaddr *)&a4, sizeof(a4) - 1), -1);
	/* connect(2) takes IPv6 addresses without the scope id (24 bytes). */
	assert_int_equal(pg_policy_match_pool(&pol, (struct sockaddr *)&a6, 24), 0);
	assert_int_equal(pg_policy_match_pool(&pol, (struct sockaddr *)&a6, 23), -1);
	assert_int_equal(pg_policy_match_pool(&pol, NULL, sizeof(a4)), -1);
	assert_int_equal(pg_policy_match_pool(&pol, (struct sockaddr *)&a4, 0), -1);
	memset(&un, 0, sizeof(un));
	un.sun_family = AF_UNIX;
	assert_int_equal(pg_policy_match_pool(&pol, (struct sockaddr *)&un, sizeof(un)), -1);
	a4.sin_family = AF_UNSPEC;
	assert_int_equal(pg_policy_match_pool(&pol, (struct sockaddr *)&a4, sizeof(a4)), -1);
	/* An unaligned buffer is read byte-wise. */
	a6 = sin6("::1", 80);
	memcpy(raw + 1, &a6, sizeof(a6));
	assert_int_equal(pg_policy_match_pool(&pol, (struct sockaddr *)(raw + 1), sizeof(a6)), 0);
	/* An empty policy matches nothing. */
	pg_policy_init(&pol);
	assert_int_equal(match4("127.0.0.1", 80), -1);
	assert_int_equal(pg_policy_match_pool(NULL, (struct sockaddr *)&a6, sizeof(a6)), -1);
}

static void test_policy_dest_from_sockaddr(void **state)
{
	struct pg_policy_dest d, e;
	struct sockaddr_in a4 = sin4("198.51.100.7", 443);
	struct sockaddr_in6 a6 = sin6("::ffff:198.51.100.7", 443);
	char buf[PG_POLICY_DEST_STRLEN];

	(void)state;
	assert_int_equal(pg_policy_dest_from_sockaddr(&d, (struct sockaddr *)&a4, sizeof(a4)), 0);
	/* Both spellings give the same bytes: usable as one hash key. */
	memset(&e, 0xaa, sizeof(e));
	assert_int_equal(pg_policy_dest_from_sockaddr(&e, (struct sockaddr *)&a6, sizeof(a6)), 0);
	assert_memory_equal(&d, &e, sizeof(d));
	assert_int_equal(d.family, AF_INET);
	assert_int_equal(d.port, 443);
	assert_int_equal(pg_policy_format_dest(&d, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "198.51.100.7:443");
	a6 = sin6("2001:db8:0:0:1:0:0:1", 8443);
	assert_int_equal(pg_policy_dest_from_sockaddr(&d, (struct sockaddr *)&a6, sizeof(a6)), 0);
	assert_int_equal(pg_policy_format_dest(&d, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "[2001:db8::1:0:0:1]:8443");
	assert_int_equal(pg_policy_format_dest(&d, buf, 5), -ENOSPC);
	assert_int_equal(pg_policy_format_dest(&d, buf, 0), -ENOSPC);
	assert_int_equal(pg_policy_dest_from_sockaddr(&d, NULL, 0), -EINVAL);
	a4.sin_family = AF_UNIX;
	assert_int_equal(pg_policy_dest_from_sockaddr(&d, (struct sockaddr *)&a4, sizeof(a4)),
			 -EAFNOSUPPORT);
	/* The longest destination fits the documented buffer. */
	a6 = sin6("ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255", 65535);
	assert_int_equal(pg_policy_dest_from_sockaddr(&d, (struct sockaddr *)&a6, sizeof(a6)), 0);
	assert_int_equal(pg_policy_format_dest(&d, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535");
	assert_string_equal(pg_policy_mode_name(PG_POOL_MODE_WARN), "warn");
	assert_string_equal(pg_policy_mode_name(PG_POOL_MODE_FAIL), "fail");
	assert_string_equal(pg_policy_mode_name(PG_POOL_MODE_BLOCK), "block");
	assert_string_equal(pg_policy_mode_name(0), "?");
}

static void test_policy_pool_decide_warn(void **state)
{
	const struct pg_policy_pool *r;

	(void)state;
	parse_ok("pool *:443 max=2 mode=warn");
	r = &pol.pool[0];
	assert_int_equal(pg_policy_decide_pool(r, 0, false, 0), PG_POOL_ALLOW);
	assert_int_equal(pg_policy_decide_pool(r, 1, false, 0), PG_POOL_ALLOW);
	assert_int_equal(pg_policy_decide_pool(r, 2, false, 0), PG_POOL_WARN);
	assert_int_equal(pg_policy_decide_pool(r, 3, true, 0), PG_POOL_WARN);
	assert_int_equal(pg_policy_decide_pool(r, UINT32_MAX, false, 0), PG_POOL_WARN);
	assert_int_equal(pg_policy_decide_pool(NULL, UINT32_MAX, false, 0), PG_POOL_ALLOW);
}

static void test_policy_pool_decide_fail(void **state)
{
	const struct pg_policy_pool *r;

	(void)state;
	parse_ok("pool 127.0.0.1:5432 max=1 mode=fail");
	r = &pol.pool[0];
	assert_int_equal(pg_policy_decide_pool(r, 0, false, 0), PG_POOL_ALLOW);
	assert_int_equal(pg_policy_decide_pool(r, 0, true, 0), PG_POOL_ALLOW);
	assert_int_equal(pg_policy_decide_pool(r, 1, false, 0), PG_POOL_FAIL);
	assert_int_equal(pg_policy_decide_pool(r, 1, true, 0), PG_POOL_FAIL);
	assert_int_equal(pg_policy_decide_pool(r, 7, false, 5 * NS), PG_POOL_FAIL);
}

static void test_policy_pool_decide_block(void **state)
{
	const struct pg_policy_pool *r;

	(void)state;
	parse_ok("pool 127.0.0.1:5432 max=20 mode=block wait_ms=2000");
	r = &pol.pool[0];
	assert_int_equal(pg_policy_decide_pool(r, 19, false, 0), PG_POOL_ALLOW);
	assert_int_equal(pg_policy_decide_pool(r, 20, false, 0), PG_POOL_BLOCK);
	assert_int_equal(pg_policy_decide_pool(r, 20, false, 1999 * MS + MS - 1), PG_POOL_BLOCK);
	assert_int_equal(pg_policy_decide_pool(r, 20, false, 2000 * MS), PG_POOL_FAIL);
	assert_int_equal(pg_policy_decide_pool(r, 25, false, INT64_MAX), PG_POOL_FAIL);
	/* A slot came back during the wait. */
	assert_int_equal(pg_policy_decide_pool(r, 19, false, 1500 * MS), PG_POOL_ALLOW);
	/* A non-blocking socket never waits. */
	assert_int_equal(pg_policy_decide_pool(r, 20, true, 0), PG_POOL_FAIL);
	assert_int_equal(pg_policy_decide_pool(r, 19, true, 0), PG_POOL_ALLOW);
	/* A clock gone backwards is no wait at all. */
	assert_int_equal(pg_policy_decide_pool(r, 20, false, -5 * NS), PG_POOL_BLOCK);
}

static void test_policy_decide_bind(void **state)
{
	struct sockaddr_in any0 = sin4("0.0.0.0", 0), fixed = sin4("10.0.0.1", 8080);
	struct sockaddr_in6 any6 = sin6("::", 0);
	struct sockaddr_un un;
	const struct sockaddr *a0 = (struct sockaddr *)&any0;

	(void)state;
	memset(&un, 0, sizeof(un));
	un.sun_family = AF_UNIX;
	pg_policy_init(&pol);
	assert_int_equal(pg_policy_decide_bind(&pol, SOCK_STREAM, 0, a0, sizeof(any0)), 0);
	parse_ok("reuseaddr on\nbind_no_port on\n");
	assert_int_equal(pg_policy_decide_bind(&pol, SOCK_STREAM, 0, a0, sizeof(any0)),
			 PG_BIND_SET_REUSEADDR | PG_BIND_SET_NO_PORT);
	assert_int_equal(pg_policy_decide_bind(&pol, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
					       IPPROTO_TCP, a0, sizeof(any0)),
			 PG_BIND_SET_REUSEADDR | PG_BIND_SET_NO_PORT);
	/* A fixed port: nothing to defer. */
	assert_int_equal(
	    pg_policy_decide_bind(&pol, SOCK_STREAM, 0, (struct sockaddr *)&fixed, sizeof(fixed)),
	    PG_BIND_SET_REUSEADDR);
	assert_int_equal(
	    pg_policy_decide_bind(&pol, SOCK_STREAM, 0, (struct sockaddr *)&any6, sizeof(any6)),
	    PG_BIND_SET_REUSEADDR | PG_BIND_SET_NO_PORT);
	/* Not TCP. */
	assert_int_equal(pg_policy_decide_bind(&pol, SOCK_DGRAM, 0, a0, sizeof(any0)), 0);
	assert_int_equal(pg_policy_decide_bind(&pol, SOCK_STREAM, IPPROTO_SCTP, a0, sizeof(any0)),
			 0);
	assert_int_equal(
	    pg_policy_decide_bind(&pol, SOCK_STREAM, 0, (struct sockaddr *)&un, sizeof(un)), 0);
	assert_int_equal(pg_policy_decide_bind(&pol, SOCK_STREAM, 0, a0, 3), 0);
	assert_int_equal(pg_policy_decide_bind(NULL, SOCK_STREAM, 0, a0, sizeof(any0)), 0);
	parse_ok("reuseport on");
	assert_int_equal(pg_policy_set_flag(&pol, "reuseaddr", 1), 0);
	assert_int_equal(pg_policy_decide_bind(&pol, SOCK_STREAM, 0, a0, sizeof(any0)),
			 PG_BIND_SET_REUSEADDR | PG_BIND_SET_REUSEPORT);
}

static void test_policy_churn_steady_rate(void **state)
{
	struct pg_churn c;
	int64_t t, t0 = 1000 * NS + 123;
	double r;

	(void)state;
	memset(&c, 0, sizeof(c));
	assert_true(pg_churn_rate(&c, t0) == 0);
	/* 200 connect/close pairs a second, one every 5 ms, for 30 s. */
	for (t = t0; t < t0 + 30 * NS; t += 5 * MS) {
		pg_churn_connect(&c, t);
		pg_churn_active_close(&c, t + MS);
	}
	assert_int_equal(c.connects, 6000);
	assert_int_equal(c.active_closes, 6000);
	r = pg_churn_rate(&c, t0 + 30 * NS);
	assert_true(r > 199.0 && r < 201.0);
	/* Mid-second too: the oldest second of the window counts in part. */
	r = pg_churn_rate(&c, t0 + 29 * NS + 500 * MS);
	assert_true(r > 199.0 && r < 201.0);
	assert_int_equal(pg_churn_peak_per_sec(&c), 200);
	/* Quiet afterwards: the rate falls to half after 5 s, nothing after 10. */
	r = pg_churn_rate(&c, t0 + 35 * NS);
	assert_true(r > 99.0 && r < 101.0);
	r = pg_churn_rate(&c, t0 + 40 * NS + MS);
	assert_true(r == 0);
	assert_int_equal(pg_churn_peak_per_sec(&c), 200);
	/* Queries do not change the state. */
	r = pg_churn_rate(&c, t0 + 30 * NS);
	assert_true(r > 199.0 && r < 201.0);
}

static void test_policy_churn_first_seconds(void **state)
{
	struct pg_churn c;
	int i;

	(void)state;
	memset(&c, 0, sizeof(c));
	/* One close is one per second, not one per nanosecond. */
	pg_churn_connect(&c, 50 * NS);
	pg_churn_active_close(&c, 50 * NS + 10 * MS);
	assert_true(pg_churn_rate(&c, 50 * NS + 10 * MS) == 1.0);
	assert_true(pg_churn_rate(&c, 50 * NS + 900 * MS) == 1.0);
	/* Four seconds in: over the four seconds seen, not ten. */
	for (i = 0; i < 7; i++)
		pg_churn_active_close(&c, 52 * NS + i * MS);
	assert_true(pg_churn_rate(&c, 54 * NS) == 2.0);
	/* Ten seconds in, the window is full. */
	assert_true(pg_churn_rate(&c, 60 * NS) == 0.8);
	assert_int_equal(pg_churn_peak_per_sec(&c), 7);
	/* All at one instant at the very start. */
	memset(&c, 0, sizeof(c));
	for (i = 0; i < 30; i++)
		pg_churn_active_close(&c, 0);
	assert_true(pg_churn_rate(&c, 0) == 30.0);
	assert_true(pg_churn_rate(&c, 5 * NS) == 6.0);
	assert_true(pg_churn_rate(&c, 10 * NS) == 3.0);
	assert_true(pg_churn_rate(&c, 10 * NS + 1) == 0.0);
	assert_int_equal(pg_churn_peak_per_sec(&c), 30);
	/* Connects alone are no churn. */
	memset(&c, 0, sizeof(c));
	pg_churn_connect(&c, 3 * NS);
	assert_true(pg_churn_rate(&c, 3 * NS) == 0);
	assert_int_equal(pg_churn_peak_per_sec(&c), 0);
}

static void test_policy_churn_peak(void **state)
{
	struct pg_churn c;
	int i;

	(void)state;
	memset(&c, 0, sizeof(c));
	/* 150 closes around a second boundary: the peak is per clock second. */
	for (i = 0; i < 100; i++)
		pg_churn_active_close(&c, 7 * NS + 900 * MS + i * MS / 2);
	for (i = 0; i < 50; i++)
		pg_churn_active_close(&c, 8 * NS + i * MS);
	assert_int_equal(pg_churn_peak_per_sec(&c), 100);
	/* A higher second later on raises it; a quieter one does not lower it. */
	for (i = 0; i < 120; i++)
		pg_churn_active_close(&c, 30 * NS + i * MS);
	assert_int_equal(pg_churn_peak_per_sec(&c), 120);
	for (i = 0; i < 3; i++)
		pg_churn_active_close(&c, 45 * NS + i * MS);
	assert_int_equal(pg_churn_peak_per_sec(&c), 120);
	assert_int_equal(c.active_closes, 273);
}

static void test_policy_churn_clock_oddities(void **state)
{
	struct pg_churn c;
	double r;

	(void)state;
	memset(&c, 0, sizeof(c));
	pg_churn_active_close(&c, 20 * NS);
	pg_churn_active_close(&c, 20 * NS + 500 * MS);
	/* An event stamped before the newest counts at the newest time, in
	 * the current second, not in a second already passed. */
	pg_churn_active_close(&c, 12 * NS);
	assert_int_equal(c.active_closes, 3);
	assert_int_equal(c.last_ns, 20 * NS + 500 * MS);
	assert_int_equal(pg_churn_peak_per_sec(&c), 3);
	/* A query from the past is answered as of the newest event. */
	r = pg_churn_rate(&c, 0);
	assert_true(r == 3.0);
	/* Slightly late, across a second boundary: still the newest second. */
	pg_churn_active_close(&c, 21 * NS + 100 * MS);
	pg_churn_active_close(&c, 20 * NS + 950 * MS);
	assert_int_equal(c.last_ns, 21 * NS + 100 * MS);
	assert_int_equal(c.bucket[21 % PG_CHURN_SLOTS], 2);
	assert_int_equal(c.bucket[20 % PG_CHURN_SLOTS], 3);
	/* A gap longer than the ring clears it whole. */
	pg_churn_active_close(&c, 20 * NS + 3600 * NS);
	r = pg_churn_rate(&c, 20 * NS + 3600 * NS);
	assert_true(r > 0.099 && r < 0.101);
	/* A gap just under the ring keeps nothing stale in the window either. */
	memset(&c, 0, sizeof(c));
	pg_churn_active_close(&c, 100 * NS);
	pg_churn_active_close(&c, 100 * NS + (PG_CHURN_SLOTS - 1) * NS);
	r = pg_churn_rate(&c, 100 * NS + (PG_CHURN_SLOTS - 1) * NS);
	assert_true(r == 0.1);
	pg_churn_active_close(&c, 100 * NS + (2 * PG_CHURN_SLOTS - 1) * NS);
	r = pg_churn_rate(&c, 100 * NS + (2 * PG_CHURN_SLOTS - 1) * NS);
	assert_true(r == 0.1);
	/* Negative and huge times are clamped, not overflowed. */
	memset(&c, 0, sizeof(c));
	pg_churn_active_close(&c, -5);
	assert_int_equal(c.start_ns, 0);
	pg_churn_active_close(&c, INT64_MAX);
	pg_churn_active_close(&c, INT64_MAX);
	assert_int_equal(pg_churn_peak_per_sec(&c), 2);
	r = pg_churn_rate(&c, INT64_MAX);
	assert_true(r == 0.2);
	r = pg_churn_rate(&c, INT64_MIN);
	assert_true(r == 0.2);
}

static void test_policy_churn_forecast(void **state)
{
	(void)state;
	/* 60 % of 28232 is 16939.2 ports, i.e. 282.32/s; 80 % is 376.43/s. */
	assert_int_equal(pg_churn_forecast(0, 60, 28232), PG_FORECAST_OK);
	assert_int_equal(pg_churn_forecast(282, 60, 28232), PG_FORECAST_OK);
	assert_int_equal(pg_churn_forecast(283, 60, 28232), PG_FORECAST_WARNING);
	assert_int_equal(pg_churn_forecast(376, 60, 28232), PG_FORECAST_WARNING);
	assert_int_equal(pg_churn_forecast(377, 60, 28232), PG_FORECAST_EXHAUSTION);
	assert_int_equal(pg_churn_forecast(1e9, 60, 28232), PG_FORECAST_EXHAUSTION);
	/* Exactly at the thresholds: 60 * 6 = 360 of 600 is 60 %. */
	assert_int_equal(pg_churn_forecast(5.99, 60, 600), PG_FORECAST_OK);
	assert_int_equal(pg_churn_forecast(6, 60, 600), PG_FORECAST_WARNING);
	assert_int_equal(pg_churn_forecast(8, 60, 600), PG_FORECAST_EXHAUSTION);
	/* Unknown range: the Linux default. */
	assert_int_equal(pg_churn_forecast(283, 60, 0), PG_FORECAST_WARNING);
	assert_int_equal(pg_churn_forecast(282, 60, 0), PG_FORECAST_OK);
	/* A shorter TIME_WAIT pins fewer. */
	assert_int_equal(pg_churn_forecast(377, 30, 28232), PG_FORECAST_OK);
	assert_int_equal(pg_churn_forecast(-5, 60, 28232), PG_FORECAST_OK);
	assert_int_equal(pg_churn_forecast(0.0 / 0.0, 60, 28232), PG_FORECAST_OK);
	assert_string_equal(pg_churn_forecast_name(PG_FORECAST_OK), "ok");
	assert_string_equal(pg_churn_forecast_name(PG_FORECAST_WARNING), "warning");
	assert_string_equal(pg_churn_forecast_name(PG_FORECAST_EXHAUSTION), "exhaustion");
	assert_string_equal(pg_churn_forecast_name((enum pg_churn_forecast)9), "?");
}

static void test_policy_churn_should_warn(void **state)
{
	struct pg_churn c;
	int64_t t;

	(void)state;
	pg_policy_init(&pol);
	assert_false(pg_churn_should_warn(&pol, 1e9));
	assert_false(pg_churn_should_warn(NULL, 1e9));
	parse_ok("churn warn_per_sec=200");
	assert_false(pg_churn_should_warn(&pol, 199.9));
	assert_false(pg_churn_should_warn(&pol, 200));
	assert_true(pg_churn_should_warn(&pol, 200.1));
	/* End to end: 300 closes a second for 10 s. */
	memset(&c, 0, sizeof(c));
	for (t = 0; t < 10 * NS; t += NS / 300)
		pg_churn_active_close(&c, t);
	assert_true(pg_churn_should_warn(&pol, pg_churn_rate(&c, 10 * NS)));
	assert_int_equal(pg_churn_forecast(pg_churn_rate(&c, 10 * NS), PG_CHURN_TIME_WAIT_S, 28232),
			 PG_FORECAST_WARNING);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_policy_init_empty),
		cmocka_unit_test(test_policy_flags),
		cmocka_unit_test(test_policy_flag_errors),
		cmocka_unit_test(test_policy_whitespace_and_comments),
		cmocka_unit_test(test_policy_spec_example),
		cmocka_unit_test(test_policy_pool_dest_forms),
		cmocka_unit_test(test_policy_pool_dest_errors),
		cmocka_unit_test(test_policy_pool_keys),
		cmocka_unit_test(test_policy_pool_key_errors),
		cmocka_unit_test(test_policy_pool_limit),
		cmocka_unit_test(test_policy_pool_shadowed),
		cmocka_unit_test(test_policy_churn_directive),
		cmocka_unit_test(test_policy_line_limits),
		cmocka_unit_test(test_policy_error_resets),
		cmocka_unit_test(test_policy_error_buffer),
		cmocka_unit_test(test_policy_error_quoting),
		cmocka_unit_test(test_policy_set_flag),
		cmocka_unit_test(test_policy_match_v4),
		cmocka_unit_test(test_policy_match_v6),
		cmocka_unit_test(test_policy_match_odd_input),
		cmocka_unit_test(test_policy_dest_from_sockaddr),
		cmocka_unit_test(test_policy_pool_decide_warn),
		cmocka_unit_test(test_policy_pool_decide_fail),
		cmocka_unit_test(test_policy_pool_decide_block),
		cmocka_unit_test(test_policy_decide_bind),
		cmocka_unit_test(test_policy_churn_steady_rate),
		cmocka_unit_test(test_policy_churn_first_seconds),
		cmocka_unit_test(test_policy_churn_peak),
		cmocka_unit_test(test_policy_churn_clock_oddities),
		cmocka_unit_test(test_policy_churn_forecast),
		cmocka_unit_test(test_policy_churn_should_warn),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
