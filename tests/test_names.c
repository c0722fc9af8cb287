/* common/names.c, which the library and the tool share: the options
 * tokenizer, signal names and the report signals refused, TCP states. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "common/names.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>

struct seen {
	char text[1024];
};

static void on_pair(const char *k, const char *v, void *arg)
{
	struct seen *s = arg;
	size_t n = strlen(s->text);

	snprintf(s->text + n, sizeof(s->text) - n, "[%s=%s]", k, v);
}

static void on_bad(const char *m, void *arg)
{
	struct seen *s = arg;
	size_t n = strlen(s->text);

	snprintf(s->text + n, sizeof(s->text) - n, "{%s}", m);
}

static const char *split(const char *text, size_t vmax)
{
	static struct seen s;
	const struct pg_names_opt_cb cb = { on_pair, on_bad, &s };

	s.text[0] = 0;
	pg_names_options(text, vmax, &cb);
	return s.text;
}

static void test_names_options(void **state)
{
	(void)state;
	assert_string_equal(split("a=1:b=2 c=3\td=", 64), "[a=1][b=2][c=3][d=]");
	assert_string_equal(split("  ::log_path='/tmp/a b:c' x=\"q:r\"", 64),
			    "[log_path=/tmp/a b:c][x=q:r]");
	assert_string_equal(split("junk a=1", 64), "{'junk' is not key=value}[a=1]");
	assert_string_equal(split("a='open b=2", 64), "{a: missing closing '}");
	assert_string_equal(split("a=123456789 b=1", 8), "{'a...' is too long}[b=1]");
	assert_string_equal(split("", 64), "");
	assert_string_equal(split(NULL, 64), "");
}

static void test_names_signal(void **state)
{
	char b[32];

	(void)state;
	assert_int_equal(pg_names_signal("USR1"), SIGUSR1);
	assert_int_equal(pg_names_signal("SIGUSR2"), SIGUSR2);
	assert_int_equal(pg_names_signal("usr1"), SIGUSR1);
	assert_int_equal(pg_names_signal("HUP"), SIGHUP);
	assert_int_equal(pg_names_signal("12"), 12);
	assert_int_equal(pg_names_signal("0"), 0);
	assert_int_equal(pg_names_signal("RTMIN"), SIGRTMIN);
	assert_int_equal(pg_names_signal("RTMIN+3"), SIGRTMIN + 3);
	assert_int_equal(pg_names_signal("sigrtmax-1"), SIGRTMAX - 1);
	assert_int_equal(pg_names_signal("RTMAX"), SIGRTMAX);
	assert_int_equal(pg_names_signal("RTMIN-1"), -1);
	assert_int_equal(pg_names_signal("RTMAX+1"), -1);
	assert_int_equal(pg_names_signal("RTMIN+99"), -1);
	assert_int_equal(pg_names_signal("999"), -1);
	assert_int_equal(pg_names_signal("12x"), -1);
	assert_int_equal(pg_names_signal("BOGUS"), -1);
	assert_int_equal(pg_names_signal(""), -1);
	assert_string_equal(pg_names_signal_format(SIGUSR1, b, sizeof(b)), "USR1");
	assert_string_equal(pg_names_signal_format(SIGRTMIN, b, sizeof(b)), "RTMIN");
	assert_string_equal(pg_names_signal_format(SIGRTMIN + 3, b, sizeof(b)), "RTMIN+3");
	assert_int_equal(pg_names_signal(pg_names_signal_format(SIGRTMIN + 5, b, sizeof(b))),
			 SIGRTMIN + 5);
}

static void test_names_signal_refused(void **state)
{
	const int refused[] = { SIGKILL, SIGSTOP, SIGSEGV, SIGBUS, SIGFPE,
				SIGILL,  SIGTRAP, SIGSYS,  32,     33 };
	const int allowed[] = { SIGUSR1, SIGUSR2, SIGHUP, SIGRTMIN, SIGRTMIN + 3, SIGRTMAX };

	(void)state;
	for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++)
		assert_non_null(pg_names_signal_refused(refused[i]));
	for (size_t i = 0; i < sizeof(allowed) / sizeof(allowed[0]); i++)
		assert_null(pg_names_signal_refused(allowed[i]));
	assert_string_equal(pg_names_signal_refused(SIGSEGV), "the kernel sends it on a fault");
}

static void test_names_tcp_state(void **state)
{
	(void)state;
	assert_string_equal(pg_names_tcp_state(PG_TCP_ESTABLISHED), "ESTABLISHED");
	assert_string_equal(pg_names_tcp_state(PG_TCP_TIME_WAIT), "TIME_WAIT");
	assert_string_equal(pg_names_tcp_state(PG_TCP_LISTEN), "LISTEN");
	assert_string_equal(pg_names_tcp_state(12), "NEW_SYN_RECV");
	assert_null(pg_names_tcp_state(0));
	assert_null(pg_names_tcp_state(13));
	assert_null(pg_names_tcp_state(-1));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_names_options),
		cmocka_unit_test(test_names_signal),
		cmocka_unit_test(test_names_signal_refused),
		cmocka_unit_test(test_names_tcp_state),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
