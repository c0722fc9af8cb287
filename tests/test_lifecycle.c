/* Every way a socket handle is copied or dies, in real programs under the
 * library (tests/prog_lifecycle.c scenarios), and the same return values,
 * descriptor numbers and errno with and without it (tests/prog_errno.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "tests/pgtest.h"

static char *dir;

static int setup(void **state)
{
	(void)state;
	dir = pgt_tmpdir();
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	pgt_rmdir(dir);
	free(dir);
	return 0;
}

/* Runs one scenario with JSON reports in dir; returns its exit report. */
static json_t *scenario(const char *name, struct pgt_run *r)
{
	char opts[PATH_MAX + 64];
	const char *env[] = {opts, NULL};
	char *argv[] = {(char *)pgt_path("build/tests/prog_lifecycle"), (char *)name, NULL};
	json_t *rep;

	snprintf(opts, sizeof(opts), "PORTGUARD_OPTIONS=log_path=%s/r format=json", dir);
	pgt_run(r, argv, env, 1);
	assert_int_equal(r->status, 0);
	rep = pgt_report_of(dir, r->pid, "exit", 0);
	assert_non_null(rep);
	assert_true(pgt_adds_up(rep));
	return rep;
}

struct expect {
	const char *name;
	long created, closed, closed_unseen, open, leaked, untracked, double_closes;
};

static void test_lifecycle_scenarios(void **state)
{
	static const struct expect table[] = {
		/* name                    created closed unseen open leaked untracked dc */
		{"dup", 1, 0, 0, 1, 1, 0, 0},
		{"dup2", 2, 2, 0, 0, 0, 0, 0},
		{"dup3-leak", 2, 1, 0, 1, 1, 0, 0},
		{"fcntl", 1, 0, 0, 1, 1, 0, 0},
		{"close_range", 5, 5, 0, 0, 0, 0, 0},
		{"close_range_cloexec", 5, 0, 0, 5, 5, 0, 0},
		{"closefrom", 5, 4, 0, 1, 1, 0, 0},
		{"fclose", 1, 1, 0, 0, 0, 0, 0},
		{"raw_close", 1, 0, 1, 0, 0, 0, 0},
		{"raw_close_reuse", 1, 0, 1, 0, 0, 0, 0},
		{"raw_close_socket_reuse", 1, 0, 1, 1, 0, 1, 0},
		{"scm_rights", 2, 0, 0, 3, 2, 1, 0},
		{"double_close", 1, 1, 0, 0, 0, 0, 1},
		{"vfork", 1, 0, 0, 1, 1, 0, 0},
		{"posix_spawn", 1, 0, 0, 1, 1, 0, 0},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
		const struct expect *e = &table[i];
		struct pgt_run r;
		json_t *rep = scenario(e->name, &r);

		print_message("%-24s %s\n", e->name, "checked");
		assert_int_equal(pgt_int(rep, "totals.created"), e->created);
		assert_int_equal(pgt_int(rep, "totals.closed"), e->closed);
		assert_int_equal(pgt_int(rep, "totals.closed_unseen"), e->closed_unseen);
		assert_int_equal(pgt_int(rep, "totals.open"), e->open);
		assert_int_equal(pgt_int(rep, "totals.leaked"), e->leaked);
		assert_int_equal(pgt_int(rep, "totals.untracked"), e->untracked);
		assert_int_equal(pgt_int(rep, "totals.double_closes"), e->double_closes);
		json_decref(rep);
		pgt_run_free(&r);
	}
}

static void test_lifecycle_dup_reports_surviving_handle(void **state)
{
	struct pgt_run r;
	json_t *rep = scenario("fcntl", &r), *sock;
	int dupfd = -1;

	(void)state;
	sscanf(r.out, "dupfd=%d", &dupfd);
	assert_true(dupfd >= 50);
	sock = json_array_get(json_object_get(json_array_get(json_object_get(rep, "sites"), 0),
					      "sockets"),
			      0);
	assert_int_equal(pgt_int(sock, "fd"), dupfd);
	json_decref(rep);
	pgt_run_free(&r);
}

static void test_lifecycle_double_close_three_stacks(void **state)
{
	struct pgt_run r;
	json_t *rep = scenario("double_close", &r), *dc;
	const char *names[] = {"created", "closed", "closed_again"};

	(void)state;
	dc = json_array_get(json_object_get(rep, "double_closes"), 0);
	assert_non_null(dc);
	for (int i = 0; i < 3; i++) {
		json_t *frames = json_object_get(dc, names[i]);
		assert_true(json_array_size(frames) >= 1);
		assert_string_equal(json_string_value(json_object_get(json_array_get(frames, 0), "module")),
				    pgt_path("build/tests/prog_lifecycle"));
	}
	/* three different places in the program */
	assert_string_not_equal(
		json_string_value(json_object_get(json_array_get(json_object_get(dc, "closed"), 0), "addr")),
		json_string_value(json_object_get(json_array_get(json_object_get(dc, "closed_again"), 0), "addr")));
	json_decref(rep);
	pgt_run_free(&r);
	/* and in text */
	{
		char *argv[] = {(char *)pgt_path("build/tests/prog_lifecycle"), "double_close", NULL};
		pgt_run(&r, argv, NULL, 1);
		assert_non_null(strstr(r.err, "Double close of fd 3 (1 time(s)); closed again at:\n    #0 0x"));
		assert_non_null(strstr(r.err, "  first closed at:\n    #0 0x"));
		assert_non_null(strstr(r.err, "  created at:\n    #0 0x"));
		pgt_run_free(&r);
	}
}

static void test_lifecycle_fork_child_has_own_report(void **state)
{
	struct pgt_run r;
	json_t *rep = scenario("fork", &r), *child, *inh = NULL;
	int cpid = 0;

	(void)state;
	assert_int_equal(pgt_int(rep, "totals.leaked"), 0);
	assert_int_equal(pgt_int(rep, "totals.created"), 1);
	assert_int_equal(pgt_int(rep, "totals.closed"), 1);
	sscanf(r.out, "child=%d", &cpid);
	child = pgt_report_of(dir, cpid, "exit", 0);
	assert_non_null(child);
	assert_int_equal(pgt_int(child, "pid"), cpid);
	assert_int_equal(pgt_int(child, "totals.inherited"), 1);
	assert_int_equal(pgt_int(child, "totals.created"), 1);
	assert_int_equal(pgt_int(child, "totals.leaked"), 1);
	assert_int_equal(pgt_int(child, "totals.open"), 2);
	assert_true(pgt_adds_up(child));
	/* the inherited one keeps its creation stack */
	for (size_t i = 0; i < json_array_size(json_object_get(child, "sites")); i++) {
		json_t *s = json_array_get(json_object_get(child, "sites"), i);
		json_t *sock = json_array_get(json_object_get(s, "sockets"), 0);
		if (json_is_true(json_object_get(sock, "inherited")))
			inh = s;
	}
	assert_non_null(inh);
	assert_true(json_array_size(json_object_get(inh, "frames")) >= 1);
	json_decref(child);
	json_decref(rep);
	pgt_run_free(&r);
}

static void test_lifecycle_exec_inherits(void **state)
{
	struct pgt_run r;
	json_t *rep = scenario("exec", &r), *site;

	(void)state;
	/* exec keeps the pid: the one report is the new image's */
	assert_string_equal(r.out, "still open=1\n");
	assert_int_equal(pgt_int(rep, "totals.inherited"), 1);
	assert_int_equal(pgt_int(rep, "totals.created"), 0);
	assert_int_equal(pgt_int(rep, "totals.leaked"), 0);
	site = json_array_get(json_object_get(rep, "sites"), 0);
	assert_int_equal(json_array_size(json_object_get(site, "frames")), 0);
	json_decref(rep);
	pgt_run_free(&r);
}

/* fork in a loop while another thread churns sockets and report signals
 * land: no deadlock (a hang would end in timeout's status 124). */
static void test_lifecycle_fork_while_signalled(void **state)
{
	char opts[PATH_MAX + 64];
	const char *env[] = {opts, NULL};
	char *argv[] = {"timeout", "120", (char *)pgt_path("build/tests/prog_lifecycle"), "fork_storm",
			NULL};
	struct pgt_run r;
	double t0 = pgt_now();

	(void)state;
	snprintf(opts, sizeof(opts), "PORTGUARD_OPTIONS=log_path=%s/storm format=json", dir);
	pgt_run(&r, argv, env, 1);
	print_message("fork storm took %.2f s\n", pgt_now() - t0);
	assert_int_equal(r.status, 0);
	assert_string_equal(r.out, "forked 200\n");
	pgt_run_free(&r);
}

/* A daemon that closed fd 2 and got a socket there: the report must not go
 * down that socket (an unconnected one would even raise SIGPIPE). */
static void test_lifecycle_report_not_into_replaced_stderr(void **state)
{
	char *argv[] = {(char *)pgt_path("build/tests/prog_lifecycle"), "stderr_socket", NULL};
	struct pgt_run r;

	(void)state;
	pgt_run(&r, argv, NULL, 1);
	assert_int_equal(r.status, 0);
	assert_string_equal(r.out, "socket on fd 2\n");
	assert_string_equal(r.err, "");
	pgt_run_free(&r);
}

/* A library constructor that makes a socket before ours has run: tracked,
 * with its stack, in either preload order. */
static void test_lifecycle_socket_in_early_constructor(void **state)
{
	const char *orders[2][2] = {{"build/tests/libctor.so", "build/libportguard.so"},
				    {"build/libportguard.so", "build/tests/libctor.so"}};

	(void)state;
	for (int i = 0; i < 2; i++) {
		char pre[PATH_MAX * 2 + 16], opts[PATH_MAX + 64];
		const char *env[] = {pre, opts, NULL};
		char *argv[] = {"true", NULL};
		struct pgt_run r;
		json_t *rep, *frames;

		snprintf(pre, sizeof(pre), "LD_PRELOAD=%s %s", pgt_path(orders[i][0]), pgt_path(orders[i][1]));
		snprintf(opts, sizeof(opts), "PORTGUARD_OPTIONS=log_path=%s/ctor%d format=json", dir, i);
		pgt_run(&r, argv, env, 0);
		assert_int_equal(r.status, 0);
		{
			char path[PATH_MAX];
			snprintf(path, sizeof(path), "%s/ctor%d.%d", dir, i, r.pid);
			char *text = pgt_read_file(path);
			assert_non_null(text);
			rep = pgt_json_line(text, 0, 1);
			free(text);
		}
		assert_int_equal(pgt_int(rep, "totals.created"), 1);
		assert_int_equal(pgt_int(rep, "totals.leaked"), 1);
		frames = json_object_get(json_array_get(json_object_get(rep, "sites"), 0), "frames");
		assert_non_null(strstr(json_string_value(json_object_get(json_array_get(frames, 0), "module")),
				       "libctor.so"));
		json_decref(rep);
		pgt_run_free(&r);
	}
}

/* Return values, descriptor numbers and errno, good and bad inputs, EMFILE
 * at a lowered limit: the same with and without the library. */
static void test_lifecycle_same_results_with_and_without(void **state)
{
	char opts[PATH_MAX + 64];
	const char *env[] = {opts, NULL};
	char *argv[] = {(char *)pgt_path("build/tests/prog_errno"), NULL};
	struct pgt_run bare, with;

	(void)state;
	snprintf(opts, sizeof(opts), "PORTGUARD_OPTIONS=log_path=%s/errno", dir);
	pgt_run(&bare, argv, NULL, 0);
	pgt_run(&with, argv, env, 1);
	assert_int_equal(bare.status, 0);
	assert_int_equal(with.status, 0);
	assert_true(strstr(bare.out, "EMFILE") != NULL);
	assert_string_equal(bare.out, with.out);
	pgt_run_free(&bare);
	pgt_run_free(&with);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_lifecycle_scenarios),
		cmocka_unit_test(test_lifecycle_dup_reports_surviving_handle),
		cmocka_unit_test(test_lifecycle_double_close_three_stacks),
		cmocka_unit_test(test_lifecycle_fork_child_has_own_report),
		cmocka_unit_test(test_lifecycle_exec_inherits),
		cmocka_unit_test(test_lifecycle_fork_while_signalled),
		cmocka_unit_test(test_lifecycle_report_not_into_replaced_stderr),
		cmocka_unit_test(test_lifecycle_socket_in_early_constructor),
		cmocka_unit_test(test_lifecycle_same_results_with_and_without),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
