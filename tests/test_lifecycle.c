/* Every way a socket handle is copied or dies, in real programs under the
 * library (tests/prog_lifecycle.c scenarios), and the same return values,
 * descriptor numbers and errno with and without it (tests/prog_errno.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "tests/pgtest.h"

PGT_GROUP_DIR(dir)

/* Runs one scenario with JSON reports in dir; returns its exit report. */
static json_t *scenario(const char *name, struct pgt_run *r)
{
	char opts[PATH_MAX + 64];
	const char *env[] = { opts, NULL };
	char *argv[] = { (char *)pgt_path("build/tests/prog_lifecycle"), (char *)name, NULL };
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
		{ "dup", 1, 0, 0, 1, 1, 0, 0 },
		{ "dup2", 2, 2, 0, 0, 0, 0, 0 },
		{ "dup3-leak", 2, 1, 0, 1, 1, 0, 0 },
		{ "fcntl", 1, 0, 0, 1, 1, 0, 0 },
		{ "close_range", 5, 5, 0, 0, 0, 0, 0 },
		{ "close_range_cloexec", 5, 0, 0, 5, 5, 0, 0 },
		{ "closefrom", 5, 4, 0, 1, 1, 0, 0 },
		{ "fclose", 1, 1, 0, 0, 0, 0, 0 },
		{ "raw_close", 1, 0, 1, 0, 0, 0, 0 },
		{ "raw_close_reuse", 1, 0, 1, 0, 0, 0, 0 },
		{ "raw_close_socket_reuse", 1, 0, 1, 1, 0, 1, 0 },
		{ "scm_rights", 2, 0, 0, 3, 3, 0, 0 },
		{ "received_closed", 2, 3, 0, 0, 0, 0, 0 },
		{ "untracked_tcp", 1, 0, 0, 2, 1, 1, 0 },
		{ "close_range_twice", 3, 3, 0, 0, 0, 0, 3 },
		{ "closefrom_twice", 3, 3, 0, 0, 0, 0, 0 },
		{ "double_close", 1, 1, 0, 0, 0, 0, 1 },
		{ "vfork", 1, 0, 0, 1, 1, 0, 0 },
		{ "posix_spawn", 1, 0, 0, 1, 1, 0, 0 },
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
	sock = json_array_get(
	    json_object_get(json_array_get(json_object_get(rep, "sites"), 0), "sockets"), 0);
	assert_int_equal(pgt_int(sock, "fd"), dupfd);
	json_decref(rep);
	pgt_run_free(&r);
}

/* Each descriptor of a dup'ed socket with its own stack, in JSON and text;
 * a double close of a dup'ed descriptor was "created" at its dup
 * (valgrind: "Originally opened at dup"). */
static void test_lifecycle_descriptors_have_stacks(void **state)
{
	static const char *const via[] = { "socket", "dup2", "fcntl" };
	static const int fds[] = { 3, 40, 50 };
	struct pgt_run r;
	json_t *rep = scenario("dups", &r), *site, *sock, *dc;
	const char *made, *created, *dupd;

	(void)state;
	site = json_array_get(json_object_get(rep, "sites"), 0);
	sock = json_array_get(json_object_get(site, "sockets"), 0);
	assert_int_equal(pgt_int(sock, "handles"), 3);
	for (int i = 0; i < 3; i++) {
		json_t *d = json_array_get(json_object_get(sock, "descriptors"), (size_t)i);
		assert_int_equal(pgt_int(d, "fd"), fds[i]);
		assert_string_equal(json_string_value(json_object_get(d, "via")), via[i]);
		assert_true((json_array_size(json_object_get(d, "frames")) > 0) == (i > 0));
	}
	made = json_string_value(
	    json_object_get(json_array_get(json_object_get(site, "frames"), 0), "addr"));
	dc = json_array_get(json_object_get(rep, "double_closes"), 0);
	created = json_string_value(
	    json_object_get(json_array_get(json_object_get(dc, "created"), 0), "addr"));
	dupd = json_string_value(json_object_get(
	    json_array_get(
		json_object_get(json_array_get(json_object_get(sock, "descriptors"), 1), "frames"),
		0),
	    "addr"));
	assert_non_null(created);
	assert_string_not_equal(created, made); /* the dup's line, not the socket's */
	assert_string_not_equal(created, dupd); /* dup(), not the dup2() */
	json_decref(rep);
	pgt_run_free(&r);
	{
		char *argv[] = { (char *)pgt_path("build/tests/prog_lifecycle"), "dups", NULL };
		pgt_run(&r, argv, NULL, 1);
		assert_non_null(strstr(r.err, "    fd 40 (dup2), made at:\n        #0 0x"));
		assert_non_null(strstr(r.err, "    fd 50 (fcntl), made at:\n        #0 0x"));
		pgt_run_free(&r);
	}
}

/* The socket in site s's sockets whose key is true, or NULL. */
static json_t *sock_where(json_t *rep, const char *key)
{
	json_t *site, *sock;
	size_t i, j;

	json_array_foreach(json_object_get(rep, "sites"), i, site)
	    json_array_foreach(json_object_get(site, "sockets"), j,
			       sock) if (json_is_true(json_object_get(sock, key))) return sock;
	return NULL;
}

/* A socket received over SCM_RIGHTS is born at the recvmsg call (valgrind:
 * "created at recvmsg"), a leak there when left open; an untracked one
 * still has its type and TCP state. */
static void test_lifecycle_received_and_untracked(void **state)
{
	struct pgt_run r;
	json_t *rep = scenario("scm_rights", &r), *sock, *site, *d;
	size_t i;

	(void)state;
	assert_int_equal(pgt_int(rep, "totals.received"), 1);
	sock = sock_where(rep, "received");
	assert_non_null(sock);
	assert_true(json_is_true(json_object_get(sock, "leaked")));
	assert_string_equal(json_string_value(json_object_get(sock, "type")), "dgram");
	d = json_array_get(json_object_get(sock, "descriptors"), 0);
	assert_string_equal(json_string_value(json_object_get(d, "via")), "recvmsg");
	json_array_foreach(json_object_get(rep, "sites"), i, site)
	{
		json_t *s0 = json_array_get(json_object_get(site, "sockets"), 0);
		if (json_is_true(json_object_get(s0, "received")))
			assert_string_equal(
			    json_string_value(json_object_get(
				json_array_get(json_object_get(site, "frames"), 0), "function")),
			    "recv_fd");
	}
	json_decref(rep);
	pgt_run_free(&r);
	{
		char *argv[] = { (char *)pgt_path("build/tests/prog_lifecycle"), "scm_rights",
				 NULL };
		pgt_run(&r, argv, NULL, 1);
		assert_non_null(strstr(r.err, " in recv_fd "));
		pgt_run_free(&r);
	}
	rep = scenario("untracked_tcp", &r);
	sock = sock_where(rep, "untracked");
	assert_non_null(sock);
	assert_string_equal(json_string_value(json_object_get(sock, "type")), "stream");
	assert_string_equal(json_string_value(json_object_get(sock, "state")), "CLOSE");
	json_decref(rep);
	pgt_run_free(&r);
}

static void test_lifecycle_double_close_three_stacks(void **state)
{
	struct pgt_run r;
	json_t *rep = scenario("double_close", &r), *dc;
	const char *names[] = { "created", "closed", "closed_again" };

	(void)state;
	dc = json_array_get(json_object_get(rep, "double_closes"), 0);
	assert_non_null(dc);
	for (int i = 0; i < 3; i++) {
		json_t *frames = json_object_get(dc, names[i]);
		assert_true(json_array_size(frames) >= 1);
		assert_string_equal(
		    json_string_value(json_object_get(json_array_get(frames, 0), "module")),
		    pgt_path("build/tests/prog_lifecycle"));
	}
	/* three different places in the program */
	assert_string_not_equal(
	    json_string_value(
		json_object_get(json_array_get(json_object_get(dc, "closed"), 0), "addr")),
	    json_string_value(
		json_object_get(json_array_get(json_object_get(dc, "closed_again"), 0), "addr")));
	json_decref(rep);
	pgt_run_free(&r);
	/* and in text */
	{
		char *argv[] = { (char *)pgt_path("build/tests/prog_lifecycle"), "double_close",
				 NULL };
		pgt_run(&r, argv, NULL, 1);
		assert_non_null(
		    strstr(r.err, "Double close of fd 3 (1 time(s)); closed again at:\n    #0 0x"));
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
	assert_int_equal(pgt_int(rep, "totals.created"), 1); /* its own, closed */
	assert_int_equal(pgt_int(rep, "totals.closed"), 1);
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
	const char *env[] = { opts, NULL };
	char *argv[] = { "timeout", "120", (char *)pgt_path("build/tests/prog_lifecycle"),
			 "fork_storm", NULL };
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

/* A daemon that closed fd 2 and got a socket there: neither the report nor
 * a warning (here: an unwritable log_path, found at report time) may go down
 * that socket. Its peer counts what arrives. */
static void test_lifecycle_report_not_into_replaced_stderr(void **state)
{
	char *argv[] = { (char *)pgt_path("build/tests/prog_lifecycle"), "stderr_socket", NULL };
	const char *env[] = { "PORTGUARD_OPTIONS=log_path=/nonexistent/dir/r", NULL };
	struct pgt_run r;

	(void)state;
	pgt_run(&r, argv, env, 1);
	assert_int_equal(r.status, 0);
	/* the peer's line comes when the leaked socket is finally closed at exit */
	for (int i = 0; i < 100 && !strstr(r.out, "the peer read"); i++) {
		pgt_run_free(&r);
		pgt_run(&r, argv, env, 1);
	}
	assert_non_null(strstr(r.out, "socket on fd 2\n"));
	assert_non_null(strstr(r.out, "the peer read 0 byte(s)\n"));
	pgt_run_free(&r);
}

/* A library constructor that makes a socket before ours has run: tracked,
 * with its stack, in either preload order. */
static void test_lifecycle_socket_in_early_constructor(void **state)
{
	const char *orders[2][2] = { { "build/tests/libctor.so", "build/libportguard.so" },
				     { "build/libportguard.so", "build/tests/libctor.so" } };

	(void)state;
	for (int i = 0; i < 2; i++) {
		char pre[PATH_MAX * 2 + 16], opts[PATH_MAX + 64];
		const char *env[] = { pre, opts, NULL };
		char *argv[] = { "true", NULL };
		struct pgt_run r;
		json_t *rep, *frames;

		snprintf(pre, sizeof(pre), "LD_PRELOAD=%s %s", pgt_path(orders[i][0]),
			 pgt_path(orders[i][1]));
		snprintf(opts, sizeof(opts), "PORTGUARD_OPTIONS=log_path=%s/ctor%d format=json",
			 dir, i);
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
		frames =
		    json_object_get(json_array_get(json_object_get(rep, "sites"), 0), "frames");
		assert_non_null(
		    strstr(json_string_value(json_object_get(json_array_get(frames, 0), "module")),
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
	const char *env[] = { opts, NULL };
	char *argv[] = { (char *)pgt_path("build/tests/prog_errno"), NULL };
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

/* 8 threads x 20,000 sockets, one leak each, while report signals land:
 * exactly 8 leaked at exit and every socket accounted for. */
static void test_lifecycle_stress_with_signals(void **state)
{
	char opts[PATH_MAX + 64];
	const char *env[] = { opts, NULL };
	char *argv[] = { (char *)pgt_path("build/tests/prog_stress"), "8", "20000", NULL };
	struct pgt_proc p;
	pid_t pid;
	int st, signals = 0;
	json_t *rep;
	double t0 = pgt_now(), ready;

	(void)state;
	snprintf(opts, sizeof(opts), "PORTGUARD_OPTIONS=log_path=%s/r format=json symbolize=0",
		 dir);
	pgt_spawn(&p, argv, env, 1);
	pid = p.pid;
	/* Signals only once main runs: before the library's constructor, the
	 * default action would end the program. */
	ready = pgt_wait_output(&p, "ready\n", 30);
	print_message("stress: ready after %.2f s\n", ready);
	assert_true(ready >= 0);
	while (waitpid(pid, &st, WNOHANG) == 0 && pgt_now() - t0 < 120) {
		if (kill(pid, SIGUSR1) == 0)
			signals++;
		pgt_proc_pump(&p, 20);
	}
	close(p.in);
	close(p.out);
	free(pgt_proc_err(&p));
	print_message("stress: %d report signals sent during %.2f s\n", signals, pgt_now() - t0);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	{
		char path[PATH_MAX];
		char *text;
		int reports = 0;

		snprintf(path, sizeof(path), "%s/r.%d", dir, pid);
		text = pgt_read_file(path);
		assert_non_null(text);
		for (int i = 0;; i++) {
			json_t *j = pgt_json_line(text, i, 1);
			if (!j)
				break;
			reports++;
			json_decref(j);
		}
		free(text);
		print_message("stress: %d reports written\n", reports);
		/* at least one signal report besides the exit report */
		assert_true(reports >= 2);
	}
	rep = pgt_report_of(dir, pid, "exit", 0);
	assert_non_null(rep);
	assert_int_equal(pgt_int(rep, "totals.leaked"), 8);
	assert_int_equal(pgt_int(rep, "totals.created"), 160000);
	assert_int_equal(pgt_int(rep, "totals.closed"), 159992);
	assert_int_equal(pgt_int(rep, "totals.closed_unseen"), 0);
	assert_int_equal(pgt_int(rep, "totals.lost"), 0);
	assert_true(pgt_adds_up(rep));
	json_decref(rep);
}

/* Every Nth allocation of the library fails: the program's output and
 * status do not change, and the report counts what was lost. */
static void test_lifecycle_allocation_failures(void **state)
{
	char opts[PATH_MAX + 64];
	const char *env[] = { opts, "PORTGUARD_FAULT_ALLOC=3", NULL };
	char *stress[] = { (char *)pgt_path("build/tests/prog_stress"), "4", "3000", NULL };
	char *client[] = { (char *)pgt_path("build/examples/leaky_client"), NULL };
	char *py[] = { "python3", (char *)pgt_path("tests/leak3.py"), NULL };
	char **progs[] = { stress, client, py };

	(void)state;
	for (int i = 0; i < 3; i++) {
		struct pgt_run bare, with;
		json_t *rep;

		snprintf(opts, sizeof(opts), "PORTGUARD_OPTIONS=log_path=%s/oom%d format=json", dir,
			 i);
		pgt_run(&bare, progs[i], NULL, 0);
		pgt_run(&with, progs[i], env, 1);
		assert_int_equal(bare.status, with.status);
		assert_string_equal(bare.out, with.out);
		{
			char path[PATH_MAX];
			snprintf(path, sizeof(path), "%s/oom%d.%d", dir, i, with.pid);
			char *text = pgt_read_file(path);
			if (!text) /* python3 may be a shim script: its own pid differs */
				continue;
			rep = pgt_json_line(text, 0, 1);
			free(text);
		}
		assert_non_null(rep);
		print_message("%s: lost %ld, leaked %ld, untracked %ld\n", progs[i][0],
			      pgt_int(rep, "totals.lost"), pgt_int(rep, "totals.leaked"),
			      pgt_int(rep, "totals.untracked"));
		assert_true(pgt_int(rep, "totals.lost") > 0);
		assert_true(pgt_adds_up(rep));
		json_decref(rep);
		pgt_run_free(&bare);
		pgt_run_free(&with);
	}
}

/* The same in CPython: os.dup is an fcntl64 call there, os.dup2 closes its
 * target, socket.fromfd dups, makefile keeps the socket until both close;
 * a forked child reports for itself. */
static void test_lifecycle_python(void **state)
{
	char python[PATH_MAX] = "";
	char opts[PATH_MAX + 64];
	const char *env[] = { opts, NULL };
	FILE *p = popen("python3 -c 'import sys; print(sys.executable)' 2>/dev/null", "r");
	struct pgt_run r;
	json_t *rep, *child;
	int cpid = 0;

	(void)state;
	if (p && fgets(python, sizeof(python), p))
		python[strcspn(python, "\n")] = 0;
	if (p)
		pclose(p);
	if (!python[0])
		skip();
	char *argv[] = { python, (char *)pgt_path("tests/lifecycle.py"), NULL };
	snprintf(opts, sizeof(opts), "PORTGUARD_OPTIONS=log_path=%s/r format=json", dir);
	pgt_run(&r, argv, env, 1);
	assert_int_equal(r.status, 0);
	sscanf(r.out, "%d", &cpid);
	rep = pgt_report_of(dir, r.pid, "exit", 0);
	assert_non_null(rep);
	assert_int_equal(pgt_int(rep, "totals.created"), 6); /* fromfd is a dup */
	assert_int_equal(pgt_int(rep, "totals.leaked"), 2);
	assert_int_equal(pgt_int(rep, "totals.closed"), 4);
	assert_int_equal(pgt_int(rep, "totals.closed_unseen"), 0);
	assert_true(pgt_adds_up(rep));
	child = pgt_report_of(dir, cpid, "exit", 0);
	assert_non_null(child);
	assert_int_equal(pgt_int(child, "totals.inherited"), 2);
	assert_int_equal(pgt_int(child, "totals.created"), 1);
	assert_int_equal(pgt_int(child, "totals.leaked"), 1);
	assert_true(pgt_adds_up(child));
	json_decref(child);
	json_decref(rep);
	pgt_run_free(&r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_lifecycle_scenarios),
		cmocka_unit_test(test_lifecycle_dup_reports_surviving_handle),
		cmocka_unit_test(test_lifecycle_double_close_three_stacks),
		cmocka_unit_test(test_lifecycle_received_and_untracked),
		cmocka_unit_test(test_lifecycle_descriptors_have_stacks),
		cmocka_unit_test(test_lifecycle_fork_child_has_own_report),
		cmocka_unit_test(test_lifecycle_exec_inherits),
		cmocka_unit_test(test_lifecycle_fork_while_signalled),
		cmocka_unit_test(test_lifecycle_report_not_into_replaced_stderr),
		cmocka_unit_test(test_lifecycle_socket_in_early_constructor),
		cmocka_unit_test(test_lifecycle_same_results_with_and_without),
		cmocka_unit_test(test_lifecycle_stress_with_signals),
		cmocka_unit_test(test_lifecycle_allocation_failures),
		cmocka_unit_test(test_lifecycle_python),
	};

	return cmocka_run_group_tests(tests, pgt_dir_setup, pgt_dir_teardown);
}
