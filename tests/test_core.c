/* The core (shim/core.h), reached directly and under LD_PRELOAD: what no
 * call may do to the program whatever the library is busy with (issue 11).
 *
 * Direct: a socket call while another thread holds every lock of the
 * library, and from a signal handler on top of this thread's own use of a
 * lock, passes through unrecorded and counted lost, within the bound.
 * Preloaded (tests/prog_core.c): a signal handler making sockets while main
 * is in malloc; closefrom loops while reports are written; pthread_exit
 * from main; no memory left at exit; signal reports while threads churn,
 * dup and fork. Every wait is bounded and printed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "shim/core.h"
#include "shim/fdtab.h"
#include "shim/locks.h"
#include "tests/pgtest.h"

#include <dirent.h>
#include <pthread.h>
#include <signal.h>

PGT_GROUP_DIR(dir)

static int setup(void **state)
{
	pg_core_init_for_test("stack_depth=16 report_signal=0 report_at_exit=0");
	return pgt_dir_setup(state);
}

static int reset(void **state)
{
	(void)state;
	pg_fdtab_reset();
	return 0;
}

static size_t listed(void)
{
	static struct pg_snap snap[64];
	struct pg_cut c;

	pg_fdtab_cut(snap, PGT_LEN(snap), &c);
	return c.listed;
}

/* ---- direct ---- */

static int holding, release_all;

static void *hold_every_lock(void *arg)
{
	(void)arg;
	pg_lock_take_range(0, PG_LOCK_COUNT - 1);
	__atomic_store_n(&holding, 1, __ATOMIC_RELEASE);
	while (!__atomic_load_n(&release_all, __ATOMIC_ACQUIRE))
		usleep(1000);
	pg_lock_give_range(0, PG_LOCK_COUNT - 1);
	return NULL;
}

static void test_core_every_lock_held_elsewhere(void **state)
{
	struct pg_core_close op;
	pthread_t t;
	double t0, took;

	(void)state;
	holding = release_all = 0;
	pthread_create(&t, NULL, hold_every_lock, NULL);
	t0 = pgt_now();
	while (!__atomic_load_n(&holding, __ATOMIC_ACQUIRE) && pgt_now() - t0 < 30)
		usleep(1000);
	assert_true(holding);
	t0 = pgt_now();
	pg_core_socket(5, AF_INET, SOCK_STREAM, 0);
	pg_core_close_begin(5, &op);
	pg_core_close_end(&op, PG_CLOSED);
	took = pgt_now() - t0;
	print_message("every lock held by another thread: socket+close passed in %.3f s\n", took);
	/* The bound is PG_LOCK_BOUND_MS per lock waited for (the call site's,
	 * the shard's): never for ever. */
	assert_true(took < 10);
	assert_int_equal(pg_fdtab_lost(), 1);
	__atomic_store_n(&release_all, 1, __ATOMIC_RELEASE);
	pthread_join(t, NULL);
	assert_int_equal(listed(), 0);
	/* Free again: recorded as ever. */
	pg_core_socket(5, AF_INET, SOCK_STREAM, 0);
	assert_int_equal(listed(), 1);
	pg_core_close_begin(5, &op);
	pg_core_close_end(&op, PG_CLOSED);
	assert_int_equal(listed(), 0);
	assert_int_equal(pg_fdtab_lost(), 1);
}

static double handler_took;

static void on_usr2(int sig)
{
	struct pg_core_close op;
	double t0 = pgt_now();

	(void)sig;
	/* 7 and 71 share shard 7, whose lock this thread holds below. */
	pg_core_socket(71, AF_INET, SOCK_DGRAM, 0);
	pg_core_close_begin(7, &op);
	pg_core_close_end(&op, PG_CLOSED);
	handler_took = pgt_now() - t0;
}

static void test_core_handler_on_top_of_the_library(void **state)
{
	struct sigaction sa, old;
	struct pg_core_close op;

	(void)state;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_usr2;
	sigaction(SIGUSR2, &sa, &old);
	pg_core_socket(7, AF_INET, SOCK_STREAM, 0);
	assert_int_equal(listed(), 1);
	/* This thread is inside the library (it holds shard 7's lock) when the
	 * signal comes. */
	assert_int_equal(pg_lock_take(PG_LOCK_SHARD0 + 7, -1), 0);
	raise(SIGUSR2);
	pg_lock_give(PG_LOCK_SHARD0 + 7);
	sigaction(SIGUSR2, &old, NULL);
	print_message("a handler on top of the library: passed in %.6f s\n", handler_took);
	assert_true(handler_took < 0.1);
	/* Socket 71 not recorded, the close of 7 not settled: both lost;
	 * 7 is still listed (reconciliation will find it gone). */
	assert_int_equal(pg_fdtab_lost(), 2);
	assert_int_equal(listed(), 1);
	assert_false(pg_fdtab_tracked(71));
	/* 7's close was given back: a close now settles it. */
	pg_core_close_begin(7, &op);
	assert_int_equal(op.c.what, PG_ENTRY_LIVE);
	pg_core_close_end(&op, PG_CLOSED);
	assert_int_equal(listed(), 0);
}

/* ---- under LD_PRELOAD ---- */

static void opts(char *buf, size_t size, const char *name, const char *more)
{
	snprintf(buf, size, "PORTGUARD_OPTIONS=log_path=%s/%s format=json %s", dir, name, more);
}

/* Every report line (not events) in dir/name.PID, each checked with fn. */
static int each_report(const char *name, int pid, void (*fn)(json_t *, void *), void *arg)
{
	char path[PATH_MAX];
	char *text;
	int n = 0;

	snprintf(path, sizeof(path), "%s/%s.%d", dir, name, pid);
	text = pgt_read_file(path);
	for (int i = 0; text; i++) {
		json_t *j = pgt_json_line(text, i, 1);
		if (!j)
			break;
		fn(j, arg);
		n++;
		json_decref(j);
	}
	free(text);
	return n;
}

static json_t *exit_report(const char *name, int pid)
{
	char path[PATH_MAX];
	char *text;
	json_t *found = NULL;

	snprintf(path, sizeof(path), "%s/%s.%d", dir, name, pid);
	text = pgt_read_file(path);
	for (int i = 0; text && !found; i++) {
		json_t *j = pgt_json_line(text, i, 1);
		if (!j)
			break;
		if (!strcmp(json_string_value(json_object_get(j, "reason")), "exit"))
			found = j;
		else
			json_decref(j);
	}
	free(text);
	return found;
}

static void run(struct pgt_proc *p, char *const argv[], const char *const env[], double bound)
{
	double t0 = pgt_now();
	int hung;

	pgt_spawn(p, argv, env, 1);
	pgt_proc_finish(p, bound, &hung);
	print_message("%s: status %d after %.2f s%s; %s", argv[1], p->status, pgt_now() - t0,
		      hung ? " (killed: it hung)" : "", p->buf);
	free(pgt_proc_err(p));
	assert_false(hung);
}

/* A 1 kHz SIGALRM handler making and closing 40 sockets a tick while main
 * loops malloc/free: 4 runs of 500 ticks, each clean, every socket
 * recorded. (Before the core was rebuilt: aborts with a corrupt heap.) */
static void test_core_sockets_in_a_handler_interrupting_malloc(void **state)
{
	char o[PATH_MAX + 64];
	const char *env[] = { o, NULL };
	char *argv[] = { (char *)pgt_path("build/tests/prog_core"), "alarm", "500", NULL };

	(void)state;
	opts(o, sizeof(o), "alarm", "symbolize=0");
	for (int i = 0; i < 4; i++) {
		struct pgt_proc p;
		json_t *rep;
		long made = -1;
		const char *m;

		run(&p, argv, env, 120);
		assert_int_equal(p.status, 0);
		m = strstr(p.buf, " made ");
		assert_non_null(m);
		made = atol(m + 6);
		assert_int_equal(made, 500 * 40);
		rep = exit_report("alarm", p.pid);
		assert_non_null(rep);
		assert_int_equal(pgt_int(rep, "totals.created"), made);
		assert_int_equal(pgt_int(rep, "totals.closed"), made);
		assert_int_equal(pgt_int(rep, "totals.lost"), 0);
		assert_int_equal(pgt_int(rep, "totals.open"), 0);
		json_decref(rep);
	}
}

/* Sends report signals to p until at least want signal reports are in
 * dir/name.PID (or 60 s); returns how many signals were sent. */
static int signal_until_reports(struct pgt_proc *p, const char *name, int want)
{
	char path[PATH_MAX];
	double t0 = pgt_now();
	int sent = 0, have = 0;

	snprintf(path, sizeof(path), "%s/%s.%d", dir, name, p->pid);
	while (pgt_now() - t0 < 60) {
		char *text;
		if (kill(p->pid, SIGUSR1) == 0)
			sent++;
		pgt_proc_pump(p, 10);
		text = pgt_read_file(path);
		have = 0;
		for (const char *q = text; q && (q = strstr(q, "\"reason\": \"signal\"")); q++)
			have++;
		free(text);
		if (have >= want)
			break;
	}
	print_message("%d report signals, %d signal reports in %.2f s\n", sent, have,
		      pgt_now() - t0);
	return sent;
}

/* Runs argv under the library until it says "ready", asks for reports
 * until want signal reports are in dir/name.PID, then ends it (stdin
 * closed) within bound_s: it must not hang and must exit 0. */
static void run_signalled(struct pgt_proc *p, char *const argv[], const char *const env[],
			  const char *name, int want, double bound_s)
{
	double ready;
	int hung;

	pgt_spawn(p, argv, env, 1);
	ready = pgt_wait_output(p, "ready\n", 30);
	print_message("%s: ready after %.2f s\n", argv[1], ready);
	assert_true(ready >= 0);
	signal_until_reports(p, name, want);
	pgt_proc_finish(p, bound_s, &hung);
	free(pgt_proc_err(p));
	print_message("%s: %s", argv[1], p->buf);
	assert_false(hung);
	assert_int_equal(p->status, 0);
}

/* closefrom(3) in a loop, new sockets after it, while reports are written:
 * no report byte ever reaches the program's sockets, none of them is
 * closed under it, and a listener it closed accepts nothing. (Before:
 * "listener: Bad file descriptor" within the first reports.) */
static void test_core_closefrom_loop_while_reporting(void **state)
{
	char o[PATH_MAX + 64];
	const char *env[] = { o, NULL };
	char *argv[] = { (char *)pgt_path("build/tests/prog_core"), "closefrom", NULL };
	struct pgt_proc p;
	long rounds = -1, foreign = -1, closed = -1, accepted = -1;
	const char *r;

	(void)state;
	opts(o, sizeof(o), "cf", "");
	run_signalled(&p, argv, env, "cf", 20, 60);
	r = strstr(p.buf, "rounds ");
	assert_non_null(r);
	assert_int_equal(sscanf(r, "rounds %ld foreign %ld closed %ld accepted %ld", &rounds,
				&foreign, &closed, &accepted),
			 4);
	assert_true(rounds > 0);
	assert_int_equal(foreign, 0);
	assert_int_equal(closed, 0);
	assert_int_equal(accepted, 0);
}

/* pthread_exit from main: the process ends with its last thread, and its
 * exit report is written. (Before: state Zl until SIGKILL.) */
static void test_core_pthread_exit_from_main(void **state)
{
	char o[PATH_MAX + 64];
	const char *env[] = { o, NULL };
	char *argv[] = { (char *)pgt_path("build/tests/prog_core"), "thread_exit", NULL };
	struct pgt_proc p;
	json_t *rep;

	(void)state;
	opts(o, sizeof(o), "te", "");
	run(&p, argv, env, 60);
	assert_int_equal(p.status, 0);
	rep = exit_report("te", p.pid);
	assert_non_null(rep);
	assert_int_equal(pgt_int(rep, "totals.leaked"), 2);
	json_decref(rep);
}

/* No memory left at exit (RLIMIT_AS, all of it taken): the exit report is
 * still written, from memory set aside. (Before: an empty file.) */
static void test_core_exit_report_without_memory(void **state)
{
	char o[PATH_MAX + 64];
	const char *env[] = { o, NULL };
	char *argv[] = { (char *)pgt_path("build/tests/prog_core"), "nomem", "50", NULL };
	struct pgt_proc p;
	json_t *rep;

	(void)state;
	opts(o, sizeof(o), "nm", "");
	run(&p, argv, env, 60);
	assert_int_equal(p.status, 0);
	assert_non_null(strstr(p.buf, "then none left"));
	rep = exit_report("nm", p.pid);
	assert_non_null(rep);
	assert_int_equal(pgt_int(rep, "totals.leaked"), 50);
	assert_true(pgt_adds_up(rep));
	json_decref(rep);
}

struct sums {
	int reports, bad;
};

static void check_sum(json_t *j, void *arg)
{
	struct sums *s = arg;

	s->reports++;
	if (!pgt_adds_up(j)) {
		char *t = json_dumps(json_object_get(j, "totals"), JSON_COMPACT);
		print_message("does not add up: %s\n", t);
		free(t);
		s->bad++;
	}
}

/* Signal reports while 16 threads make, dup, dup2, close and fork: every
 * report adds up, the exit report to the socket. (Before: 148 of 165
 * reports did not.) */
static void test_core_reports_add_up_during_churn(void **state)
{
	char o[PATH_MAX + 64];
	const char *env[] = { o, NULL };
	char *argv[] = { (char *)pgt_path("build/tests/prog_core"), "churn", "16", NULL };
	struct pgt_proc p;
	struct sums s = { 0, 0 };
	json_t *rep;
	long churned = -1, forks = -1;
	const char *c;

	(void)state;
	opts(o, sizeof(o), "ch", "symbolize=0");
	run_signalled(&p, argv, env, "ch", 30, 120);
	c = strstr(p.buf, "churned ");
	assert_non_null(c);
	assert_int_equal(sscanf(c, "churned %ld forks %ld", &churned, &forks), 2);
	each_report("ch", p.pid, check_sum, &s);
	print_message("churn: %d reports, %d did not add up\n", s.reports, s.bad);
	assert_true(s.reports >= 31);
	assert_int_equal(s.bad, 0);
	rep = exit_report("ch", p.pid);
	assert_non_null(rep);
	assert_int_equal(pgt_int(rep, "totals.created"), churned);
	assert_int_equal(pgt_int(rep, "totals.closed"), churned);
	assert_int_equal(pgt_int(rep, "totals.closed_unseen"), 0);
	assert_int_equal(pgt_int(rep, "totals.lost"), 0);
	json_decref(rep);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_core_every_lock_held_elsewhere, reset),
		cmocka_unit_test_setup(test_core_handler_on_top_of_the_library, reset),
		cmocka_unit_test(test_core_sockets_in_a_handler_interrupting_malloc),
		cmocka_unit_test(test_core_closefrom_loop_while_reporting),
		cmocka_unit_test(test_core_pthread_exit_from_main),
		cmocka_unit_test(test_core_exit_report_without_memory),
		cmocka_unit_test(test_core_reports_add_up_during_churn),
	};

	return cmocka_run_group_tests(tests, setup, pgt_dir_teardown);
}
