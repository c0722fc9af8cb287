/* PORTGUARD_OPTIONS parsing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "shim/config.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>

struct warnings {
	int n;
	char last[512];
	char all[4096];
};

static void collect(const char *line, void *arg)
{
	struct warnings *w = arg;

	w->n++;
	snprintf(w->last, sizeof(w->last), "%s", line);
	strncat(w->all, line, sizeof(w->all) - strlen(w->all) - 2);
	strcat(w->all, "\n");
}

static int parse(struct pg_config *c, const char *text, struct warnings *w)
{
	memset(w, 0, sizeof(*w));
	pg_config_defaults(c);
	return pg_config_parse(c, text, 0, collect, w);
}

static void test_config_defaults(void **state)
{
	struct pg_config c;
	struct warnings w;

	(void)state;
	assert_int_equal(parse(&c, NULL, &w), 0);
	assert_int_equal(c.dest, PG_DEST_STDERR);
	assert_int_equal(c.format, PG_FORMAT_TEXT);
	assert_int_equal(c.report_at_exit, 1);
	assert_int_equal(c.report_signal, SIGUSR1);
	assert_int_equal(c.stack_depth, 16);
	assert_int_equal(c.exitcode, 0);
	assert_int_equal(c.ignore_listening, 0);
	assert_int_equal(c.min_age_ms, 0);
	assert_string_equal(c.suppressions, "");
	assert_int_equal(c.symbolize, 1);
	assert_string_equal(c.policy, "");
	assert_int_equal(c.verbosity, 1);
	assert_int_equal(c.strict, 0);
}

static void test_config_every_key(void **state)
{
	struct pg_config c;
	struct warnings w;

	(void)state;
	assert_int_equal(
	    parse(&c,
		  "log_path=/tmp/pg format=json:report_at_exit=0\treport_signal=USR2 "
		  "stack_depth=64 exitcode=23 ignore_listening=1 min_age_ms=1500 "
		  "suppressions=/s.supp symbolize=0 policy=/p.policy verbosity=2 strict=1 "
		  "reuseaddr=1 reuseport=1 bind_no_port=1",
		  &w),
	    0);
	assert_int_equal(c.dest, PG_DEST_PATH);
	assert_string_equal(c.log_path, "/tmp/pg");
	assert_int_equal(c.format, PG_FORMAT_JSON);
	assert_int_equal(c.report_at_exit, 0);
	assert_int_equal(c.report_signal, SIGUSR2);
	assert_int_equal(c.stack_depth, 64);
	assert_int_equal(c.exitcode, 23);
	assert_int_equal(c.ignore_listening, 1);
	assert_int_equal(c.min_age_ms, 1500);
	assert_string_equal(c.suppressions, "/s.supp");
	assert_int_equal(c.symbolize, 0);
	assert_string_equal(c.policy, "/p.policy");
	assert_int_equal(c.verbosity, 2);
	assert_int_equal(c.strict, 1);
	assert_int_equal(c.reuseaddr + c.reuseport + c.bind_no_port, 3);
}

static void test_config_destinations(void **state)
{
	struct pg_config c;
	struct warnings w;

	(void)state;
	parse(&c, "log_path=stdout", &w);
	assert_int_equal(c.dest, PG_DEST_STDOUT);
	parse(&c, "log_path=/a log_path=stderr", &w);
	assert_int_equal(c.dest, PG_DEST_STDERR);
	/* quoted values may hold ':' and spaces */
	parse(&c, "log_path='/tmp/a b:c/r' format=json", &w);
	assert_int_equal(w.n, 0);
	assert_string_equal(c.log_path, "/tmp/a b:c/r");
	assert_int_equal(c.format, PG_FORMAT_JSON);
}

static void test_config_bad_values_warn_and_keep_default(void **state)
{
	struct pg_config c;
	struct warnings w;

	(void)state;
	assert_int_equal(parse(&c, "format=xml", &w), 1);
	assert_string_equal(
	    w.last, "PORTGUARD_OPTIONS: format must be text or json, got 'xml'; using text");
	assert_int_equal(c.format, PG_FORMAT_TEXT);

	assert_int_equal(parse(&c, "stack_depth=65", &w), 1);
	assert_string_equal(w.last, "PORTGUARD_OPTIONS: stack_depth must be a whole number from 0 "
				    "to 64, got '65'; using 16");
	assert_int_equal(c.stack_depth, 16);

	assert_int_equal(parse(&c, "stack_depth=-1 exitcode=abc exitcode=256", &w), 3);
	assert_int_equal(c.exitcode, 0);

	assert_int_equal(parse(&c, "report_at_exit=yes", &w), 1);
	assert_string_equal(w.last,
			    "PORTGUARD_OPTIONS: report_at_exit must be 0 or 1, got 'yes'; using 1");

	assert_int_equal(parse(&c, "report_signal=KILL", &w), 1);
	assert_int_equal(c.report_signal, SIGUSR1);
	assert_int_equal(parse(&c, "report_signal=NOPE", &w), 1);
	/* A fault signal would make a faulting program loop in our handler;
	 * 32 and 33 are glibc's. Each refused with one line. */
	{
		const char *refused[] = { "SEGV", "SIGBUS", "FPE", "ILL", "TRAP",
					  "SYS",  "11",     "32",  "33",  "STOP" };
		for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
			char opt[64];
			snprintf(opt, sizeof(opt), "report_signal=%s", refused[i]);
			assert_int_equal(parse(&c, opt, &w), 1);
			assert_int_equal(c.report_signal, SIGUSR1);
			assert_non_null(strstr(w.last, " refused: "));
		}
		assert_string_equal(w.last, "PORTGUARD_OPTIONS: report_signal=STOP refused: it "
					    "cannot be caught; using 10");
		assert_int_equal(parse(&c, "report_signal=RTMIN", &w), 0);
		assert_int_equal(c.report_signal, SIGRTMIN);
	}

	assert_int_equal(parse(&c, "min_age_ms=1.5", &w), 1);
	assert_int_equal(c.min_age_ms, 0);
}

static void test_config_unknown_and_malformed(void **state)
{
	struct pg_config c;
	struct warnings w;

	(void)state;
	assert_int_equal(parse(&c, "bogus=1 format=json", &w), 1);
	assert_string_equal(w.last, "PORTGUARD_OPTIONS: unknown key 'bogus'");
	assert_int_equal(c.format, PG_FORMAT_JSON);
	assert_int_equal(parse(&c, "format", &w), 1);
	assert_string_equal(w.last, "PORTGUARD_OPTIONS: 'format' is not key=value");
	assert_int_equal(parse(&c, "log_path='/tmp/x", &w), 1);
	assert_string_equal(w.last, "PORTGUARD_OPTIONS: log_path: missing closing '");
	assert_int_equal(c.dest, PG_DEST_STDERR);
	/* separators only */
	assert_int_equal(parse(&c, " :: \t ", &w), 0);
	/* one line per problem */
	assert_int_equal(parse(&c, "a=1:b=2 format=x", &w), 3);
	assert_string_equal(
	    w.all, "PORTGUARD_OPTIONS: unknown key 'a'\nPORTGUARD_OPTIONS: unknown key 'b'\n"
		   "PORTGUARD_OPTIONS: format must be text or json, got 'x'; using text\n");
}

static void test_config_secure_ignores_paths(void **state)
{
	struct pg_config c;
	struct warnings w;

	(void)state;
	memset(&w, 0, sizeof(w));
	pg_config_defaults(&c);
	assert_int_equal(pg_config_parse(&c,
					 "log_path=/tmp/x policy=/p suppressions=/s format=json", 1,
					 collect, &w),
			 3);
	assert_int_equal(c.dest, PG_DEST_STDERR);
	assert_string_equal(c.policy, "");
	assert_string_equal(c.suppressions, "");
	assert_int_equal(c.format, PG_FORMAT_JSON);
	assert_non_null(strstr(w.all, "log_path ignored in a secure-execution (setuid) process"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_config_defaults),
		cmocka_unit_test(test_config_every_key),
		cmocka_unit_test(test_config_destinations),
		cmocka_unit_test(test_config_bad_values_warn_and_keep_default),
		cmocka_unit_test(test_config_unknown_and_malformed),
		cmocka_unit_test(test_config_secure_ignores_paths),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
