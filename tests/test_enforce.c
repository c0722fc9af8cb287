/* The reuse policy applied to real programs: SO_REUSEADDR lets a legacy
 * server restart, pools hold under concurrent connects in every mode, churn
 * is counted and foretold, bad policies are refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "tests/pgtest.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

PGT_GROUP_DIR(dir)

static const char *write_policy(const char *name, const char *text)
{
	static char path[PATH_MAX];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "w");
	fputs(text, f);
	fclose(f);
	return path;
}

struct pool_result {
	int peak, ok, failed, eaddrnotavail;
	json_t *rep;
};

static void run_pool(const char *policy, const char *threads, const char *per, const char *hold,
		     const char *nonblock, struct pool_result *res)
{
	char opts[PATH_MAX * 2];
	const char *env[] = { opts, NULL };
	char *argv[] = { (char *)pgt_path("build/tests/prog_pool"),
			 (char *)threads,
			 (char *)per,
			 (char *)hold,
			 (char *)nonblock,
			 NULL };
	struct pgt_run r;

	snprintf(opts, sizeof(opts), "PORTGUARD_OPTIONS=policy=%s log_path=%s/r format=json",
		 policy, dir);
	pgt_run(&r, argv, env, 1);
	assert_int_equal(r.status, 0);
	assert_int_equal(sscanf(r.out, "peak=%d ok=%d failed=%d eaddrnotavail=%d", &res->peak,
				&res->ok, &res->failed, &res->eaddrnotavail),
			 4);
	res->rep = pgt_report_of(dir, r.pid, "exit", 0);
	assert_non_null(res->rep);
	print_message("%s: peak %d, ok %d, failed %d\n", policy, res->peak, res->ok, res->failed);
	pgt_run_free(&r);
}

/* Counts the event lines of one kind in the report file of the last run. */
static int events(const char *kind)
{
	char cmd[PATH_MAX + 128];
	int n = 0;
	FILE *p;

	snprintf(cmd, sizeof(cmd), "cat %s/r.* | grep -c '\"event\": \"%s\"'", dir, kind);
	p = popen(cmd, "r");
	if (p && fscanf(p, "%d", &n) != 1)
		n = 0;
	if (p)
		pclose(p);
	return n;
}

static void clear_reports(void)
{
	char cmd[PATH_MAX + 32];

	snprintf(cmd, sizeof(cmd), "rm -f %s/r.*", dir);
	assert_int_equal(system(cmd), 0);
}

static void test_enforce_pool_fail(void **state)
{
	struct pool_result res;

	(void)state;
	clear_reports();
	run_pool(write_policy("fail", "pool 127.0.0.1:* max=3 mode=fail\n"), "8", "25", "2000",
		 NULL, &res);
	assert_true(res.peak <= 3);
	assert_true(res.failed > 0);
	assert_int_equal(res.failed, res.eaddrnotavail);
	assert_int_equal(res.ok + res.failed, 200);
	assert_int_equal(pgt_int(res.rep, "policy.pool_denials"), res.failed);
	assert_int_equal(events("pool_denied"), 1); /* once per destination and call site */
	json_decref(res.rep);
}

static void test_enforce_pool_block(void **state)
{
	struct pool_result res;

	(void)state;
	clear_reports();
	run_pool(write_policy("block", "pool 127.0.0.1:* max=3 mode=block wait_ms=10000\n"), "8",
		 "25", "2000", NULL, &res);
	assert_true(res.peak <= 3);
	assert_int_equal(res.failed, 0);
	assert_int_equal(res.ok, 200);
	assert_true(pgt_int(res.rep, "policy.pool_waits") > 0);
	assert_int_equal(pgt_int(res.rep, "policy.pool_denials"), 0);
	assert_int_equal(events("pool_wait"), 1);
	json_decref(res.rep);

	/* a wait that runs out fails as mode=fail does */
	clear_reports();
	run_pool(write_policy("block1", "pool * max=1 mode=block wait_ms=1\n"), "4", "10", "20000",
		 NULL, &res);
	assert_true(res.peak <= 1);
	assert_true(res.eaddrnotavail > 0);
	assert_int_equal(pgt_int(res.rep, "policy.pool_denials"), res.eaddrnotavail);
	json_decref(res.rep);

	/* a non-blocking socket never waits */
	clear_reports();
	run_pool(write_policy("block2", "pool * max=2 mode=block wait_ms=10000\n"), "6", "10",
		 "5000", "nonblock", &res);
	assert_true(res.peak <= 2);
	assert_true(res.eaddrnotavail > 0);
	assert_int_equal(pgt_int(res.rep, "policy.pool_waits"), 0);
	json_decref(res.rep);
}

static void test_enforce_pool_warn(void **state)
{
	struct pool_result res;

	(void)state;
	clear_reports();
	run_pool(write_policy("warn", "pool [::1]:* max=1 mode=fail\npool * max=3 mode=warn\n"),
		 "8", "25", "2000", NULL, &res);
	assert_true(res.peak > 3); /* warn only */
	assert_int_equal(res.failed, 0);
	assert_int_equal(events("pool_limit"), 1);
	json_decref(res.rep);
}

static int free_port(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM, 0), port;

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	bind(fd, (struct sockaddr *)&a, sizeof(a));
	getsockname(fd, (struct sockaddr *)&a, &len);
	port = ntohs(a.sin_port);
	close(fd);
	return port;
}

/* Runs legacy_server on port (under the policy or not), makes one request;
 * returns the server's exit status and whether it served. */
static int legacy_run(int port, int policy, int *served)
{
	char p[16], opts[PATH_MAX];
	char *argv[] = { (char *)pgt_path("build/examples/legacy_server"), p, NULL };
	int pfd[2], st;
	pid_t pid;

	snprintf(p, sizeof(p), "%d", port);
	snprintf(opts, sizeof(opts), "reuseaddr=1 log_path=%s/legacy format=json", dir);
	assert_int_equal(pipe(pfd), 0);
	pid = fork();
	if (pid == 0) {
		dup2(pfd[1], 1);
		int nul = open("/dev/null", O_WRONLY);
		dup2(nul, 2);
		if (policy) {
			setenv("LD_PRELOAD", pgt_path("build/libportguard.so"), 1);
			setenv("PORTGUARD_OPTIONS", opts, 1);
		}
		execv(argv[0], argv);
		_exit(127);
	}
	close(pfd[1]);
	char line[128] = "";
	ssize_t n = read(pfd[0], line, sizeof(line) - 1);
	line[n > 0 ? n : 0] = 0;
	*served = 0;
	if (strstr(line, "listening")) {
		struct sockaddr_in a = { .sin_family = AF_INET,
					 .sin_port = htons((unsigned short)port) };
		char buf[128];
		int fd = socket(AF_INET, SOCK_STREAM, 0);
		a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		if (connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
		    write(fd, "GET /\r\n\r\n", 9) == 9 && read(fd, buf, sizeof(buf)) > 0)
			*served = 1;
		/* Read to the end: the server closes first, so the TIME_WAIT is
		 * on its side, on its listening port. */
		while (read(fd, buf, sizeof(buf)) > 0)
			;
		close(fd);
	}
	close(pfd[0]);
	waitpid(pid, &st, 0);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

/* The legacy server cannot restart while its last connection sits in
 * TIME_WAIT, and restarts at once when both runs had SO_REUSEADDR. Linux
 * lets the new bind pass the old TIME_WAIT socket only if that socket had
 * the option too: a bare old run still blocks a new one under the policy. */
static void test_enforce_reuseaddr_restart(void **state)
{
	int served, port;

	(void)state;
	port = free_port();
	assert_int_equal(legacy_run(port, 0, &served), 0);
	assert_true(served);
	assert_int_equal(legacy_run(port, 0, &served), 1); /* bind: Address already in use */
	assert_false(served);

	port = free_port();
	assert_int_equal(legacy_run(port, 1, &served), 0);
	assert_true(served);
	assert_int_equal(legacy_run(port, 1, &served), 0); /* restarts at once */
	assert_true(served);

	port = free_port();
	assert_int_equal(legacy_run(port, 0, &served), 0);
	assert_int_equal(legacy_run(port, 1, &served), 1);
	assert_false(served);
}

static void test_enforce_bind_no_port(void **state)
{
	char *argv[] = { (char *)pgt_path("build/tests/prog_lifecycle"), "bind_no_port", NULL };
	char opts[PATH_MAX];
	const char *env[] = { opts, NULL };
	struct pgt_run r;
	json_t *rep;

	(void)state;
	pgt_run(&r, argv, NULL, 1);
	assert_true(strncmp(r.out, "after bind 0,", 13) != 0);
	assert_non_null(strstr(r.out, ", after connect a port\n"));
	pgt_run_free(&r);
	snprintf(opts, sizeof(opts), "PORTGUARD_OPTIONS=bind_no_port=1 log_path=%s/r format=json",
		 dir);
	pgt_run(&r, argv, env, 1);
	/* the documented caveat: the port is chosen at connect */
	assert_string_equal(r.out, "after bind 0, after connect a port\n");
	rep = pgt_report_of(dir, r.pid, "exit", 0);
	/* the client, and the listener too (it bound to port 0 as well, and
	 * listen() still gave it a port) */
	assert_int_equal(pgt_int(rep, "policy.bind_no_port_applied"), 2);
	json_decref(rep);
	pgt_run_free(&r);
}

static void test_enforce_churn_counted_and_foretold(void **state)
{
	char opts[PATH_MAX * 2];
	const char *env[] = { opts, NULL };
	char *argv[] = { (char *)pgt_path("build/examples/churn_client"), "1500", "1", NULL };
	struct pgt_run r;
	json_t *rep, *d;

	(void)state;
	clear_reports();
	snprintf(opts, sizeof(opts), "PORTGUARD_OPTIONS=policy=%s log_path=%s/r format=json",
		 write_policy("churn", "churn warn_per_sec=50\n"), dir);
	pgt_run(&r, argv, env, 1);
	assert_int_equal(r.status, 0);
	rep = pgt_report_of(dir, r.pid, "exit", 0);
	d = json_array_get(json_object_get(rep, "destinations"), 0);
	assert_non_null(d);
	assert_non_null(strstr(json_string_value(json_object_get(d, "remote")), "127.0.0.1:"));
	assert_int_equal(pgt_int(d, "connects"), 1500);
	assert_int_equal(pgt_int(d, "active_closes"), 1500);
	assert_true(pgt_int(d, "peak_per_sec") > 50);
	assert_non_null(json_string_value(json_object_get(d, "forecast")));
	assert_true(events("churn") >= 1);
	json_decref(rep);
	pgt_run_free(&r);

	/* without a churn directive nothing is counted */
	clear_reports();
	snprintf(opts, sizeof(opts), "PORTGUARD_OPTIONS=log_path=%s/r format=json", dir);
	pgt_run(&r, argv, env, 1);
	rep = pgt_report_of(dir, r.pid, "exit", 0);
	assert_int_equal(json_array_size(json_object_get(rep, "destinations")), 0);
	json_decref(rep);
	pgt_run_free(&r);
}

static void test_enforce_invalid_policy(void **state)
{
	char opts[PATH_MAX * 2];
	const char *env[] = { opts, NULL };
	char *argv[] = { (char *)pgt_path("build/tests/prog_pool"), "2", "5", "100", NULL };
	const char *bad =
	    write_policy("bad", "reuseaddr on\npool 127.0.0.1:* max=zero mode=fail\n");
	char want[PATH_MAX + 32];
	struct pgt_run r;
	json_t *rep;
	int peak = 0;

	(void)state;
	clear_reports();
	snprintf(want, sizeof(want), "portguard: %s:2: ", bad);
	snprintf(opts, sizeof(opts), "PORTGUARD_OPTIONS=policy=%s log_path=%s/r format=json", bad,
		 dir);
	pgt_run(&r, argv, env, 1);
	/* one line naming FILE:LINE; the program runs; nothing applied */
	assert_int_equal(r.status, 0);
	assert_non_null(strstr(r.err, want));
	sscanf(r.out, "peak=%d", &peak);
	rep = pgt_report_of(dir, r.pid, "exit", 0);
	assert_non_null(strstr(
	    json_string_value(json_object_get(json_object_get(rep, "policy"), "error")), ":2: "));
	assert_int_equal(pgt_int(rep, "policy.reuseaddr_applied"), 0);
	assert_int_equal(events("policy_error"), 1);
	json_decref(rep);
	pgt_run_free(&r);

	/* strict=1: status 2 before main */
	snprintf(opts, sizeof(opts), "PORTGUARD_OPTIONS=policy=%s strict=1", bad);
	pgt_run(&r, argv, env, 1);
	assert_int_equal(r.status, 2);
	assert_string_equal(r.out, "");
	assert_non_null(strstr(r.err, want));
	pgt_run_free(&r);

	/* unreadable */
	snprintf(opts, sizeof(opts), "PORTGUARD_OPTIONS=policy=%s/none", dir);
	pgt_run(&r, argv, env, 1);
	assert_int_equal(r.status, 0);
	assert_non_null(
	    strstr(r.err, "cannot read: No such file or directory; policy not applied"));
	pgt_run_free(&r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_enforce_pool_fail),
		cmocka_unit_test(test_enforce_pool_block),
		cmocka_unit_test(test_enforce_pool_warn),
		cmocka_unit_test(test_enforce_reuseaddr_restart),
		cmocka_unit_test(test_enforce_bind_no_port),
		cmocka_unit_test(test_enforce_churn_counted_and_foretold),
		cmocka_unit_test(test_enforce_invalid_policy),
	};

	return cmocka_run_group_tests(tests, pgt_dir_setup, pgt_dir_teardown);
}
