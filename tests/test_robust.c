/* Never harm the host (SPEC section 7): legal things programs do, run under
 * the library (tests/prog_robust.c, tests/prog_signals.c) and compared with
 * runs without it. Every wait is bounded and printed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "tests/pgtest.h"

PGT_GROUP_DIR(dir)

static char *robust(void)
{
	return (char *)pgt_path("build/tests/prog_robust");
}

static const char *write_file(const char *name, const char *text)
{
	static char path[PATH_MAX];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
	return path;
}

/* Runs argv (with or without the library) to its end, bounded; fails the
 * test if it had to be killed. */
static void run_bounded(struct pgt_proc *p, char *const argv[], const char *const env[],
			int preload, double bound_s)
{
	double t0 = pgt_now();
	int hung;

	pgt_spawn(p, argv, env, preload);
	pgt_proc_finish(p, bound_s, &hung);
	print_message("%s %s: status %d after %.2f s%s\n", argv[1] ? argv[1] : argv[0],
		      preload ? "under the library" : "bare", p->status, pgt_now() - t0,
		      hung ? " (killed: it hung)" : "");
	assert_false(hung);
}

static json_t *exit_report(int pid)
{
	json_t *rep = pgt_report_of(dir, pid, "exit", 0);

	assert_non_null(rep);
	assert_true(pgt_adds_up(rep));
	return rep;
}

/* 1. pthread_cancel of a connect waiting for a pool slot (mode=block): no
 * lock left held; later closes and connects work. */
static void test_robust_pool_wait_cancelled(void **state)
{
	char opts[PATH_MAX * 2];
	const char *env[] = { opts, NULL };
	char *argv[] = { robust(), "pool_cancel", NULL };
	struct pgt_proc p;
	json_t *rep;

	(void)state;
	snprintf(opts, sizeof(opts), "PORTGUARD_OPTIONS=log_path=%s/r format=json policy=%s", dir,
		 write_file("block.policy", "pool 127.0.0.1:* max=1 mode=block wait_ms=60000\n"));
	run_bounded(&p, argv, env, 1, 30);
	free(pgt_proc_err(&p));
	assert_int_equal(p.status, 0);
	assert_string_equal(p.buf, "connect: ok\nwaiter cancelled\nclosed the first connection\n"
				   "connect: ok\n");
	rep = exit_report(p.pid);
	assert_int_equal(pgt_int(rep, "policy.pool_waits"), 1);
	json_decref(rep);
}

/* ... and of a connect blocked in the kernel: its pool slot comes back. */
static void test_robust_connect_cancelled(void **state)
{
	char opts[PATH_MAX * 2];
	const char *env[] = { opts, NULL };
	char *argv[] = { robust(), "connect_cancel", NULL };
	struct pgt_proc bare, with;
	json_t *rep;

	(void)state;
	snprintf(opts, sizeof(opts), "PORTGUARD_OPTIONS=log_path=%s/r format=json policy=%s", dir,
		 write_file("fail.policy", "pool 127.0.0.1:* max=2 mode=fail\n"));
	run_bounded(&bare, argv, NULL, 0, 60);
	run_bounded(&with, argv, env, 1, 60);
	free(pgt_proc_err(&bare));
	free(pgt_proc_err(&with));
	assert_int_equal(with.status, 0);
	assert_string_equal(bare.buf, with.buf);
	assert_non_null(strstr(with.buf, "connect after cancel: allowed\n"));
	rep = exit_report(with.pid);
	assert_int_equal(pgt_int(rep, "policy.pool_denials"), 0);
	json_decref(rep);
}

/* ... and of close(): the socket is still open, and still ours. */
static void test_robust_close_cancelled(void **state)
{
	char opts[PATH_MAX];
	const char *env[] = { opts, NULL };
	char *argv[] = { robust(), "close_cancel", NULL };
	struct pgt_proc bare, with;
	json_t *rep;

	(void)state;
	snprintf(opts, sizeof(opts), "PORTGUARD_OPTIONS=log_path=%s/r format=json", dir);
	run_bounded(&bare, argv, NULL, 0, 20);
	run_bounded(&with, argv, env, 1, 20);
	free(pgt_proc_err(&bare));
	free(pgt_proc_err(&with));
	assert_string_equal(bare.buf, "fd still open\n");
	assert_string_equal(bare.buf, with.buf);
	rep = exit_report(with.pid);
	assert_int_equal(pgt_int(rep, "totals.leaked"), 1);
	assert_int_equal(pgt_int(rep, "totals.untracked"), 0);
	assert_int_equal(pgt_int(rep, "totals.closed"), 0);
	json_decref(rep);
}

/* 2. fork while the program holds flockfile(stdout) and reports to stdout
 * are asked for: no deadlock. */
static void test_robust_fork_holding_stdout(void **state)
{
	const char *env[] = { "PORTGUARD_OPTIONS=log_path=stdout format=json symbolize=0", NULL };
	char *argv[] = { robust(), "fork_flockfile", "100", NULL };
	struct pgt_proc p;
	char *err;

	(void)state;
	run_bounded(&p, argv, env, 1, 120);
	err = pgt_proc_err(&p);
	print_message("%s", err);
	assert_int_equal(p.status, 0);
	assert_non_null(strstr(err, "forked 100 times"));
	assert_non_null(strstr(p.buf, "\"reason\": \"signal\""));
	free(err);
}

/* 3. A FIFO where a file is expected: never a blocking open. */
static void test_robust_fifo_options(void **state)
{
	char fifo[PATH_MAX], opts[PATH_MAX * 2];
	const char *env[] = { opts, NULL };
	char *argv[] = { (char *)pgt_path("build/examples/leaky_client"), NULL };
	const char *keys[] = { "policy", "suppressions" };
	struct pgt_proc bare, with;

	(void)state;
	snprintf(fifo, sizeof(fifo), "%s/fifo", dir);
	assert_int_equal(mkfifo(fifo, 0600), 0);
	run_bounded(&bare, argv, NULL, 0, 30);
	free(pgt_proc_err(&bare));
	for (int i = 0; i < 2; i++) {
		char *err, want[PATH_MAX + 64];
		snprintf(opts, sizeof(opts), "PORTGUARD_OPTIONS=%s=%s", keys[i], fifo);
		run_bounded(&with, argv, env, 1, 30);
		err = pgt_proc_err(&with);
		assert_int_equal(with.status, bare.status);
		assert_string_equal(with.buf, bare.buf);
		snprintf(want, sizeof(want), "%s: not a regular file", fifo);
		if (i == 0)
			snprintf(want, sizeof(want),
				 "portguard: %s: cannot read: not a regular file", fifo);
		else
			snprintf(want, sizeof(want),
				 "portguard: suppressions: cannot read %s: not a regular file",
				 fifo);
		print_message("%s=FIFO: %s", keys[i], strstr(err, "portguard: ") ?: "(nothing)\n");
		assert_non_null(strstr(err, want));
		free(err);
	}
}

/* ... and a FIFO put in place of the report file between two reports. */
static void test_robust_fifo_report_file(void **state)
{
	char opts[PATH_MAX], path[PATH_MAX];
	const char *env[] = { opts, NULL };
	char *argv[] = { (char *)pgt_path("build/tests/prog_sleeper"), "-s", "30", NULL };
	struct pgt_proc p;
	double t0, waited;
	char *err;
	int hung;

	(void)state;
	snprintf(opts, sizeof(opts), "PORTGUARD_OPTIONS=log_path=%s/f format=json", dir);
	pgt_spawn(&p, argv, env, 1);
	assert_true(pgt_wait_output(&p, "ready\n", 10) >= 0);
	snprintf(path, sizeof(path), "%s/f.%d", dir, p.pid);
	kill(p.pid, SIGUSR1);
	waited = pgt_wait_lines(path, 1, 10);
	print_message("first report after %.2f s\n", waited);
	assert_true(waited >= 0);
	assert_int_equal(unlink(path), 0);
	assert_int_equal(mkfifo(path, 0600), 0);
	t0 = pgt_now();
	kill(p.pid, SIGTERM);
	pgt_proc_finish(&p, 20, &hung);
	print_message("exit with a FIFO as its report file took %.2f s\n", pgt_now() - t0);
	assert_false(hung);
	assert_int_equal(p.status, 0);
	err = pgt_proc_err(&p);
	assert_non_null(strstr(err, "cannot write"));
	free(err);
}

/* 4. Two threads call exit() at once: one whole exit report, and exitcode. */
static void test_robust_exit_race(void **state)
{
	char opts[PATH_MAX];
	const char *env[] = { opts, NULL };
	char *argv[] = { robust(), "exit_race", NULL };

	(void)state;
	snprintf(opts, sizeof(opts), "PORTGUARD_OPTIONS=log_path=%s/x format=json exitcode=23",
		 dir);
	for (int i = 0; i < 10; i++) {
		struct pgt_proc p;
		char path[PATH_MAX];
		char *text;
		json_t *rep;

		run_bounded(&p, argv, env, 1, 20);
		free(pgt_proc_err(&p));
		assert_int_equal(p.status, 23);
		assert_string_equal(p.buf, "exiting\n");
		snprintf(path, sizeof(path), "%s/x.%d", dir, p.pid);
		text = pgt_read_file(path);
		assert_non_null(text);
		rep = pgt_json_line(text, 0, 1);
		assert_non_null(rep);
		assert_string_equal(json_string_value(json_object_get(rep, "reason")), "exit");
		assert_int_equal(pgt_int(rep, "totals.leaked"), 1);
		assert_null(pgt_json_line(text, 1, 1)); /* one report, never two */
		json_decref(rep);
		free(text);
	}
}

/* 5. A bad pointer: EFAULT as without the library, under every policy that
 * looks at the address. */
static void test_robust_bad_address(void **state)
{
	const char *opts[] = {
		"PORTGUARD_OPTIONS=reuseaddr=1",
		"PORTGUARD_OPTIONS=reuseport=1",
		"PORTGUARD_OPTIONS=bind_no_port=1",
		NULL,
		NULL,
	};
	char pool[PATH_MAX + 32], churn[PATH_MAX + 32];
	char *argv[] = { robust(), "bad_address", NULL };
	struct pgt_proc bare;

	(void)state;
	snprintf(pool, sizeof(pool), "PORTGUARD_OPTIONS=policy=%s",
		 write_file("pool.policy", "pool *:* max=1 mode=fail\n"));
	opts[3] = pool;
	snprintf(churn, sizeof(churn), "PORTGUARD_OPTIONS=policy=%s",
		 write_file("churn.policy", "churn warn_per_sec=1\n"));
	opts[4] = churn;
	run_bounded(&bare, argv, NULL, 0, 20);
	free(pgt_proc_err(&bare));
	assert_non_null(strstr(bare.buf, "bind((void *)1): -1 Bad address\n"));
	for (size_t i = 0; i < PGT_LEN(opts); i++) {
		const char *env[] = { opts[i], NULL };
		struct pgt_proc with;
		run_bounded(&with, argv, env, 1, 20);
		free(pgt_proc_err(&with));
		print_message("%s: status %d\n", opts[i], with.status);
		assert_int_equal(with.status, bare.status);
		assert_string_equal(with.buf, bare.buf);
	}
}

/* 6. Fault signals and glibc's are refused as report_signal: a faulting
 * program dies of its fault as without the library. */
static void test_robust_fault_signal_refused(void **state)
{
	const char *names[] = { "SEGV", "11", "BUS", "FPE", "ILL", "TRAP", "SYS", "32", "33" };
	char *argv[] = { robust(), "segv", NULL };
	struct pgt_proc bare;

	(void)state;
	run_bounded(&bare, argv, NULL, 0, 20);
	free(pgt_proc_err(&bare));
	assert_int_equal(bare.status, 128 + SIGSEGV);
	for (size_t i = 0; i < PGT_LEN(names); i++) {
		char opt[64], want[128];
		const char *env[] = { opt, NULL };
		struct pgt_proc with;
		char *err, *line;
		snprintf(opt, sizeof(opt), "PORTGUARD_OPTIONS=report_signal=%s", names[i]);
		run_bounded(&with, argv, env, 1, 20);
		err = pgt_proc_err(&with);
		assert_int_equal(with.status, 128 + SIGSEGV);
		snprintf(want, sizeof(want),
			 "portguard: PORTGUARD_OPTIONS: report_signal=%s refused: ", names[i]);
		line = strstr(err, want);
		assert_non_null(line);
		assert_null(strstr(line + 1, want)); /* one line */
		free(err);
	}
}

/* 7. The program's own actions for the report signal: read-backs exactly as
 * without the library, and its handler's flags as it set them. */
static void test_robust_signal_readback(void **state)
{
	char *argv[] = { (char *)pgt_path("build/tests/prog_signals"), "readback", NULL };
	struct pgt_proc bare, with;

	(void)state;
	run_bounded(&bare, argv, NULL, 0, 20);
	run_bounded(&with, argv, NULL, 1, 20);
	free(pgt_proc_err(&bare));
	free(pgt_proc_err(&with));
	assert_int_equal(bare.status, 0);
	assert_non_null(strstr(bare.buf, "restorer glibc's"));
	assert_string_equal(bare.buf, with.buf);
}

static void run_eintr(struct pgt_proc *p, const char *const env[], int preload)
{
	char *argv[] = { (char *)pgt_path("build/tests/prog_signals"), "eintr", NULL };
	double ready;
	int hung;

	pgt_spawn(p, argv, env, preload);
	ready = pgt_wait_output(p, "ready\n", 10);
	print_message("eintr %s: ready after %.2f s\n", preload ? "with" : "bare", ready);
	assert_true(ready >= 0);
	/* read() returns only when a signal interrupts it (stdin stays open),
	 * so sending until it has returned is no race. */
	for (int i = 0; i < 500 && !strstr(p->buf, "read:"); i++) {
		kill(p->pid, SIGUSR1);
		pgt_wait_output(p, "read:", 0.05);
	}
	pgt_proc_finish(p, 10, &hung);
	assert_false(hung);
	free(pgt_proc_err(p));
}

static void test_robust_signal_handler_eintr(void **state)
{
	char opts[PATH_MAX];
	const char *env[] = { opts, NULL };
	struct pgt_proc bare, with;
	json_t *sig;

	(void)state;
	snprintf(opts, sizeof(opts), "PORTGUARD_OPTIONS=log_path=%s/e format=json", dir);
	run_eintr(&bare, NULL, 0);
	run_eintr(&with, env, 1);
	assert_string_equal(bare.buf,
			    "ready\nread: -1 Interrupted system call, handler ran 1 time(s)\n");
	assert_string_equal(bare.buf, with.buf);
	/* The signal was the program's alone. */
	{
		char path[PATH_MAX];
		char *text;
		snprintf(path, sizeof(path), "%s/e.%d", dir, with.pid);
		text = pgt_read_file(path);
		assert_non_null(text);
		sig = pgt_json_line(text, 0, 1);
		assert_string_equal(json_string_value(json_object_get(sig, "reason")), "exit");
		assert_null(pgt_json_line(text, 1, 1));
		json_decref(sig);
		free(text);
	}
}

/* 8. A vfork child that resets the signal changes nothing of the parent's. */
static void test_robust_vfork_child_signal(void **state)
{
	char *argv[] = { (char *)pgt_path("build/tests/prog_signals"), "vfork", NULL };
	struct pgt_proc bare, with;

	(void)state;
	run_bounded(&bare, argv, NULL, 0, 20);
	run_bounded(&with, argv, NULL, 1, 20);
	free(pgt_proc_err(&bare));
	free(pgt_proc_err(&with));
	assert_string_equal(bare.buf, "vfork: handler ran 1 time(s)\n");
	assert_string_equal(bare.buf, with.buf);
	assert_int_equal(with.status, 0);
}

/* 9. A stack switched by hand, unmapped memory right above it: the stack
 * comes out short, the program does not crash. */
static void test_robust_coroutine_stack(void **state)
{
	char opts[PATH_MAX];
	const char *env[] = { opts, NULL };
	char *argv[] = { robust(), "coroutine", NULL };
	struct pgt_proc bare, with;
	json_t *rep, *frames;

	(void)state;
	snprintf(opts, sizeof(opts), "PORTGUARD_OPTIONS=log_path=%s/r format=json", dir);
	run_bounded(&bare, argv, NULL, 0, 20);
	run_bounded(&with, argv, env, 1, 20);
	free(pgt_proc_err(&bare));
	free(pgt_proc_err(&with));
	assert_int_equal(bare.status, 0);
	assert_int_equal(with.status, 0);
	assert_string_equal(bare.buf, with.buf);
	rep = exit_report(with.pid);
	assert_int_equal(pgt_int(rep, "totals.created"), 2);
	frames = json_object_get(json_array_get(json_object_get(rep, "sites"), 0), "frames");
	assert_string_equal(
	    json_string_value(json_object_get(json_array_get(frames, 0), "function")),
	    "on_coroutine");
	json_decref(rep);
}

/* 10. Inherited across exec: counted per socket, not per descriptor. */
static void test_robust_inherited_counted_per_socket(void **state)
{
	char opts[PATH_MAX];
	const char *env[] = { opts, NULL };
	char *argv[] = { robust(), "inherit", NULL };
	struct pgt_proc p;
	json_t *rep, *sock;

	(void)state;
	snprintf(opts, sizeof(opts), "PORTGUARD_OPTIONS=log_path=%s/r format=json", dir);
	run_bounded(&p, argv, env, 1, 20);
	free(pgt_proc_err(&p));
	assert_string_equal(p.buf, "inherited\n");
	rep = exit_report(p.pid);
	assert_int_equal(pgt_int(rep, "totals.inherited"), 1);
	assert_int_equal(pgt_int(rep, "totals.open"), 1);
	sock = json_array_get(
	    json_object_get(json_array_get(json_object_get(rep, "sites"), 0), "sockets"), 0);
	assert_int_equal(pgt_int(sock, "handles"), 3);
	json_decref(rep);
}

/* Everything at once for a minute (PG_CHAOS_SECONDS to change it): threads
 * churning, duping and closing sockets, forks, execs, cancelled threads,
 * report signals. No hang, no crash, and every report of every process
 * parses and adds up. */
static void test_robust_chaos(void **state)
{
	const char *secs = getenv("PG_CHAOS_SECONDS") ? getenv("PG_CHAOS_SECONDS") : "60";
	char opts[PATH_MAX], cmd[PATH_MAX + 32];
	const char *env[] = { opts, NULL };
	char *argv[] = { (char *)pgt_path("build/tests/prog_chaos"), (char *)secs, NULL };
	struct pgt_proc p;
	double t0 = pgt_now(), bound = atof(secs) + 120;
	int signals = 0, hung, files = 0, reports = 0, exits = 0, main_exit = 0;
	FILE *ls;
	char name[PATH_MAX];

	(void)state;
	snprintf(opts, sizeof(opts),
		 "PORTGUARD_OPTIONS=log_path=%s/chaos.%%p format=json symbolize=0", dir);
	pgt_spawn(&p, argv, env, 1);
	assert_true(pgt_wait_output(&p, "ready\n", 30) >= 0);
	while (!strstr(p.buf, "done") && pgt_now() - t0 < bound) {
		if (kill(p.pid, SIGUSR1) == 0)
			signals++;
		pgt_wait_output(&p, "done", 0.1);
	}
	pgt_proc_finish(&p, 60, &hung);
	print_message("chaos: %.1f s, %d report signals; %s", pgt_now() - t0, signals, p.buf);
	free(pgt_proc_err(&p));
	assert_false(hung);
	assert_int_equal(p.status, 0);
	assert_non_null(strstr(p.buf, "children abnormal 0, hung 0\n"));
	snprintf(cmd, sizeof(cmd), "ls %s | grep '^chaos\\.'", dir);
	ls = popen(cmd, "r");
	while (ls && fgets(name, sizeof(name), ls)) {
		char path[PATH_MAX * 2];
		char *text;
		name[strcspn(name, "\n")] = 0;
		snprintf(path, sizeof(path), "%s/%s", dir, name);
		text = pgt_read_file(path);
		files++;
		for (const char *q = text; q && *q;) {
			const char *e = strchr(q, '\n');
			json_error_t jerr;
			json_t *j = json_loadb(q, e ? (size_t)(e - q) : strlen(q), 0, &jerr);
			if (!j)
				print_message("%s: not JSON: %.200s\n", name, q);
			assert_non_null(j);
			if (!json_object_get(j, "event")) {
				reports++;
				if (!strcmp(json_string_value(json_object_get(j, "reason")),
					    "exit")) {
					exits++;
					main_exit |= pgt_int(j, "pid") == p.pid;
					if (!pgt_adds_up(j))
						print_message("%s: exit report does not add up\n",
							      name);
					assert_true(pgt_adds_up(j));
				}
			}
			json_decref(j);
			q = e ? e + 1 : NULL;
		}
		free(text);
	}
	if (ls)
		pclose(ls);
	print_message("chaos: %d report files, %d reports, %d exit reports\n", files, reports,
		      exits);
	assert_true(exits >= 1);
	assert_true(main_exit);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_robust_pool_wait_cancelled),
		cmocka_unit_test(test_robust_connect_cancelled),
		cmocka_unit_test(test_robust_close_cancelled),
		cmocka_unit_test(test_robust_fork_holding_stdout),
		cmocka_unit_test(test_robust_fifo_options),
		cmocka_unit_test(test_robust_fifo_report_file),
		cmocka_unit_test(test_robust_exit_race),
		cmocka_unit_test(test_robust_bad_address),
		cmocka_unit_test(test_robust_fault_signal_refused),
		cmocka_unit_test(test_robust_signal_readback),
		cmocka_unit_test(test_robust_signal_handler_eintr),
		cmocka_unit_test(test_robust_vfork_child_signal),
		cmocka_unit_test(test_robust_coroutine_stack),
		cmocka_unit_test(test_robust_inherited_counted_per_socket),
		cmocka_unit_test(test_robust_chaos),
	};

	return cmocka_run_group_tests(tests, pgt_dir_setup, pgt_dir_teardown);
}
