/* Real programs under the library: the examples, python3, curl and test
 * programs, checked through their JSON reports and compared with runs
 * without the library. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "tests/pgtest.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sys/socket.h>

static char python[PATH_MAX];

/* The real interpreter, not a pyenv shell shim that would write its own
 * report. */
static const char *real_python(void)
{
	if (!python[0]) {
		FILE *p = popen("python3 -c 'import sys; print(sys.executable)' 2>/dev/null", "r");
		if (p && fgets(python, sizeof(python), p))
			python[strcspn(python, "\n")] = 0;
		if (p)
			pclose(p);
	}
	return python;
}

/* Runs argv under the library with JSON reports to DIR/r.PID; returns the
 * exit report of the one process (owned by the caller). */
static json_t *run_json(struct pgt_run *r, char *const argv[], const char *extra_opts)
{
	char *dir = pgt_tmpdir();
	char opts[PATH_MAX + 256];
	const char *env[] = { opts, NULL };
	json_t *rep = NULL;
	char cmd[PATH_MAX + 64];
	FILE *ls;
	char name[PATH_MAX];

	snprintf(opts, sizeof(opts), "PORTGUARD_OPTIONS=log_path=%s/r format=json %s", dir,
		 extra_opts ? extra_opts : "");
	pgt_run(r, argv, env, 1);
	snprintf(cmd, sizeof(cmd), "ls %s", dir);
	ls = popen(cmd, "r");
	while (ls && fgets(name, sizeof(name), ls)) {
		char path[PATH_MAX * 2];
		char *text;
		name[strcspn(name, "\n")] = 0;
		snprintf(path, sizeof(path), "%s/%s", dir, name);
		text = pgt_read_file(path);
		for (int i = 0; text && !rep; i++) {
			json_t *j = pgt_json_line(text, i, 1);
			if (!j)
				break;
			if (!strcmp(json_string_value(json_object_get(j, "reason")), "exit"))
				rep = j;
			else
				json_decref(j);
		}
		free(text);
	}
	if (ls)
		pclose(ls);
	pgt_rmdir(dir);
	free(dir);
	return rep;
}

static void assert_same_as_bare(char *const argv[], const struct pgt_run *with)
{
	struct pgt_run bare;

	pgt_run(&bare, argv, NULL, 0);
	assert_int_equal(bare.status, with->status);
	assert_string_equal(bare.out, with->out);
	pgt_run_free(&bare);
}

static void test_integration_leaky_client(void **state)
{
	char *argv[] = { (char *)pgt_path("build/examples/leaky_client"), NULL };
	struct pgt_run r;
	json_t *rep = run_json(&r, argv, NULL), *site;

	(void)state;
	assert_non_null(rep);
	assert_int_equal(pgt_int(rep, "totals.leaked"), 2);
	assert_int_equal(pgt_int(rep, "totals.open"), 2);
	/* 1 listening + 5 client + 5 accepted sockets */
	assert_int_equal(pgt_int(rep, "totals.created"), 11);
	assert_true(pgt_adds_up(rep));
	site = json_array_get(json_object_get(rep, "sites"), 0);
	assert_int_equal(pgt_int(site, "leaked"), 2);
	assert_int_equal(pgt_int(site, "created"), 5);
	assert_true(json_array_size(json_object_get(site, "frames")) >= 2);
	assert_string_equal(json_string_value(json_object_get(rep, "exe")), argv[0]);
	assert_string_equal(json_string_value(json_object_get(
				json_array_get(json_object_get(site, "sockets"), 0), "protocol")),
			    "tcp");
	assert_same_as_bare(argv, &r);
	json_decref(rep);
	pgt_run_free(&r);
}

static void test_integration_leaky_server(void **state)
{
	char *argv[] = { (char *)pgt_path("build/examples/leaky_server"), NULL };
	struct pgt_run r;
	json_t *rep = run_json(&r, argv, NULL), *sock;

	(void)state;
	assert_non_null(rep);
	assert_int_equal(pgt_int(rep, "totals.leaked"), 2);
	assert_true(pgt_adds_up(rep));
	sock = json_array_get(
	    json_object_get(json_array_get(json_object_get(rep, "sites"), 0), "sockets"), 0);
	assert_string_equal(json_string_value(json_object_get(sock, "state")), "CLOSE_WAIT");
	assert_non_null(strstr(json_string_value(json_object_get(sock, "local")), "127.0.0.1:"));
	assert_same_as_bare(argv, &r);
	json_decref(rep);
	pgt_run_free(&r);
}

static void test_integration_python_three_leaks(void **state)
{
	char *argv[] = { (char *)real_python(), (char *)pgt_path("tests/leak3.py"), NULL };
	struct pgt_run r;
	json_t *rep;

	(void)state;
	if (!argv[0][0])
		skip();
	rep = run_json(&r, argv, NULL);
	assert_non_null(rep);
	assert_int_equal(r.status, 0);
	assert_int_equal(pgt_int(rep, "totals.leaked"), 3);
	assert_int_equal(pgt_int(rep, "totals.created"), 4);
	assert_int_equal(pgt_int(rep, "totals.closed"), 1);
	assert_true(pgt_adds_up(rep));
	assert_same_as_bare(argv, &r);
	json_decref(rep);
	pgt_run_free(&r);
}

/* A one-page HTTP server on 127.0.0.1 for curl, served from a thread. */
static int http_fd;
static void *http_serve(void *arg)
{
	int n = *(int *)arg;

	for (int i = 0; i < n; i++) {
		char req[2048];
		static const char resp[] =
		    "HTTP/1.1 200 OK\r\nContent-Length: 6\r\nConnection: close\r\n\r\nhello\n";
		int c = accept(http_fd, NULL, NULL);
		if (c < 0)
			break;
		if (read(c, req, sizeof(req)) > 0 && write(c, resp, sizeof(resp) - 1) < 0)
			perror("write");
		close(c);
	}
	return NULL;
}

static unsigned short http_start(pthread_t *t, int *requests)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t len = sizeof(a);

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	http_fd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(http_fd >= 0);
	assert_int_equal(bind(http_fd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(http_fd, 16), 0);
	assert_int_equal(getsockname(http_fd, (struct sockaddr *)&a, &len), 0);
	pthread_create(t, NULL, http_serve, requests);
	return ntohs(a.sin_port);
}

static void test_integration_curl_no_leak(void **state)
{
	char url[64];
	char *argv[] = { "curl", "-s", "--noproxy", "*", url, NULL };
	int requests = 2;
	pthread_t t;
	struct pgt_run r;
	json_t *rep;

	(void)state;
	if (system("command -v curl >/dev/null") != 0)
		skip();
	snprintf(url, sizeof(url), "http://127.0.0.1:%u/", http_start(&t, &requests));
	rep = run_json(&r, argv, NULL);
	assert_non_null(rep);
	assert_int_equal(r.status, 0);
	assert_string_equal(r.out, "hello\n");
	assert_int_equal(pgt_int(rep, "totals.leaked"), 0);
	assert_true(pgt_int(rep, "totals.created") >= 1);
	assert_true(pgt_adds_up(rep));
	assert_same_as_bare(argv, &r);
	pthread_join(t, NULL);
	close(http_fd);
	json_decref(rep);
	pgt_run_free(&r);
}

/* A clean exit to stderr has nothing to say: nothing is printed. */
static void test_integration_quiet_when_clean(void **state)
{
	char url[64];
	char *argv[] = { "curl", "-s", "--noproxy", "*", url, NULL };
	int requests = 1;
	pthread_t t;
	struct pgt_run r;

	(void)state;
	if (system("command -v curl >/dev/null") != 0)
		skip();
	snprintf(url, sizeof(url), "http://127.0.0.1:%u/", http_start(&t, &requests));
	pgt_run(&r, argv, NULL, 1);
	pthread_join(t, NULL);
	close(http_fd);
	assert_int_equal(r.status, 0);
	assert_string_equal(r.err, "");
	pgt_run_free(&r);
}

static void test_integration_text_summary(void **state)
{
	char *argv[] = { (char *)pgt_path("build/examples/leaky_client"), NULL };
	struct pgt_run r;

	(void)state;
	pgt_run(&r, argv, NULL, 1);
	assert_int_equal(r.status, 0);
	assert_non_null(strstr(r.err, "==portguard: exit report of"));
	assert_non_null(strstr(r.err, "Leak of 2 socket(s)"));
	assert_non_null(strstr(r.err, "    #0 0x"));
	/* the last line */
	assert_non_null(
	    strstr(r.err, "\nSUMMARY: portguard: 2 socket(s) leaked from 1 call site(s).\n"));
	assert_string_equal(strstr(r.err, "SUMMARY:"),
			    "SUMMARY: portguard: 2 socket(s) leaked from 1 call site(s).\n");
	pgt_run_free(&r);
}

static void test_integration_exitcode(void **state)
{
	char *leaky[] = { (char *)pgt_path("build/examples/leaky_client"), NULL };
	char *by_exit[] = { (char *)pgt_path("build/tests/prog_sleeper"), "-s", "0", "-e", NULL };
	char *failing[] = {
		(char *)pgt_path("build/tests/prog_sleeper"), "-s", "0", "-x", "5", NULL
	};
	char *clean[] = {
		(char *)pgt_path("build/tests/prog_sleeper"), "-n", "0", "-s", "0", NULL
	};
	const char *env[] = { "PORTGUARD_OPTIONS=exitcode=23", NULL };
	struct pgt_run r;

	(void)state;
	/* return from main with leaks */
	pgt_run(&r, leaky, env, 1);
	assert_int_equal(r.status, 23);
	/* stdio was flushed before the status changed */
	assert_string_equal(r.out, "fetched 3 of 5 records\n");
	pgt_run_free(&r);
	/* exit(0) with leaks */
	pgt_run(&r, by_exit, env, 1);
	assert_int_equal(r.status, 23);
	assert_string_equal(r.out, "ready\nhandler ran 0 time(s)\n");
	pgt_run_free(&r);
	/* a failing status is kept */
	pgt_run(&r, failing, env, 1);
	assert_int_equal(r.status, 5);
	pgt_run_free(&r);
	/* no leak: the program's own 0 */
	pgt_run(&r, clean, env, 1);
	assert_int_equal(r.status, 0);
	pgt_run_free(&r);
}

/* kill -USR1 on a process asleep with no handler of its own: a report
 * within a second, and the program goes on. With a handler of its own
 * (each API), the signal is the program's alone (SPEC section 4): its
 * handler runs once, no report is written. */
static void check_signal_report(const char *api)
{
	char *dir = pgt_tmpdir();
	char opts[PATH_MAX + 64];
	const char *env[] = { opts, NULL };
	char *own[] = { (char *)pgt_path("build/tests/prog_sleeper"),
			"-n",
			"2",
			"-H",
			"10",
			"-a",
			(char *)api,
			"-s",
			"20",
			NULL };
	char *none[] = {
		(char *)pgt_path("build/tests/prog_sleeper"), "-n", "2", "-s", "20", NULL
	};
	struct pgt_proc p;
	double t0, delay = -1;
	int hung;

	snprintf(opts, sizeof(opts), "PORTGUARD_OPTIONS=log_path=%s/r format=json", dir);
	pgt_spawn(&p, api ? own : none, env, 1);
	assert_true(pgt_wait_output(&p, "ready\n", 10) >= 0);
	if (api)
		assert_non_null(strstr(p.buf, "previous action was SIG_DFL"));
	t0 = pgt_now();
	kill(p.pid, SIGUSR1);
	if (api) {
		/* The handler ran: the program counts it at exit. */
		kill(p.pid, SIGTERM);
		pgt_proc_finish(&p, 10, &hung);
		assert_false(hung);
		assert_int_equal(p.status, 0);
		assert_non_null(strstr(p.buf, "handler ran 1 time(s)"));
		{
			json_t *sig = pgt_report_of(dir, p.pid, "signal", 0);
			json_t *ex = pgt_report_of(dir, p.pid, "exit", 0);
			assert_null(sig);
			assert_non_null(ex);
			json_decref(ex);
		}
		print_message("own handler (%s): ran once, no signal report\n", api);
	} else {
		while (pgt_now() - t0 < 10) {
			json_t *rep = pgt_report_of(dir, p.pid, "signal", 0);
			if (rep) {
				delay = pgt_now() - t0;
				assert_int_equal(pgt_int(rep, "totals.leaked"), 2);
				json_decref(rep);
				break;
			}
			usleep(5000);
		}
		print_message("signal report written %.1f ms after kill\n", delay * 1000);
		assert_true(delay >= 0);
		assert_true(delay < 5.0); /* generous: the promise is one second */
		kill(p.pid, SIGTERM);
		pgt_proc_finish(&p, 10, &hung);
		assert_false(hung);
		assert_int_equal(p.status, 0);
		assert_non_null(strstr(p.buf, "handler ran 0 time(s)"));
		/* then the exit report, appended to the same file */
		json_t *rep = pgt_report_of(dir, p.pid, "exit", 0);
		assert_non_null(rep);
		json_decref(rep);
	}
	free(pgt_proc_err(&p));
	pgt_rmdir(dir);
	free(dir);
}

static void test_integration_signal_reports(void **state)
{
	(void)state;
	check_signal_report(NULL);
}

static void test_integration_signal_own_handler(void **state)
{
	(void)state;
	check_signal_report("sigaction");
	check_signal_report("signal");
	check_signal_report("bsd");
	check_signal_report("sysv");
	check_signal_report("sigset");
}

/* An ignored report signal is honoured: no report, the process lives. */
static void test_integration_signal_ignored(void **state)
{
	char *dir = pgt_tmpdir();
	char opts[PATH_MAX + 64];
	const char *env[] = { opts, NULL };
	char *argv[] = { "sh", "-c", "trap '' USR1; exec \"$0\" -s 20",
			 (char *)pgt_path("build/tests/prog_sleeper"), NULL };
	struct pgt_proc p;
	int hung;

	(void)state;
	snprintf(opts, sizeof(opts), "PORTGUARD_OPTIONS=log_path=%s/r format=json report_at_exit=0",
		 dir);
	/* The shell execs the program: the action is inherited ignored. */
	pgt_spawn(&p, argv, env, 1);
	assert_true(pgt_wait_output(&p, "ready\n", 10) >= 0);
	kill(p.pid, SIGUSR1);
	kill(p.pid, SIGTERM);
	pgt_proc_finish(&p, 10, &hung);
	assert_false(hung);
	assert_int_equal(p.status, 0);
	assert_null(pgt_report_in(dir, p.pid));
	free(pgt_proc_err(&p));
	pgt_rmdir(dir);
	free(dir);
}

/* Bad options: one warning line each, defaults, the program runs. */
static void test_integration_bad_options(void **state)
{
	char *argv[] = { "true", NULL };
	const char *env[] = { "PORTGUARD_OPTIONS=format=xml bogus=1 stack_depth=99", NULL };
	struct pgt_run r;

	(void)state;
	pgt_run(&r, argv, env, 1);
	assert_int_equal(r.status, 0);
	assert_non_null(
	    strstr(r.err, "portguard: PORTGUARD_OPTIONS: format must be text or json, got 'xml'"));
	assert_non_null(strstr(r.err, "portguard: PORTGUARD_OPTIONS: unknown key 'bogus'\n"));
	assert_non_null(strstr(r.err, "portguard: PORTGUARD_OPTIONS: stack_depth must be a whole "
				      "number from 0 to 64, got '99'"));
	pgt_run_free(&r);
}

/* A suppression file silences exactly the matching call sites. */
static void test_integration_suppressions(void **state)
{
	char *dir = pgt_tmpdir();
	char supp[PATH_MAX], opts[PATH_MAX * 2];
	char *argv[] = { (char *)pgt_path("build/examples/leaky_client"), NULL };
	struct pgt_run r;
	json_t *rep, *used;
	FILE *f;

	(void)state;
	snprintf(supp, sizeof(supp), "%s/s.supp", dir);
	f = fopen(supp, "w");
	fputs("# kept open on purpose\nleak:no_such_function\nleak:connect_to\n", f);
	fclose(f);
	snprintf(opts, sizeof(opts), "suppressions=%s", supp);
	rep = run_json(&r, argv, opts);
	assert_non_null(rep);
	assert_int_equal(pgt_int(rep, "totals.leaked"), 0);
	assert_int_equal(pgt_int(rep, "totals.suppressed"), 2);
	assert_int_equal(pgt_int(rep, "totals.open"), 2);
	assert_true(pgt_adds_up(rep));
	used = json_array_get(json_object_get(rep, "suppressions"), 0);
	assert_string_equal(json_string_value(json_object_get(used, "pattern")), "connect_to");
	assert_int_equal(pgt_int(used, "line"), 3);
	assert_int_equal(pgt_int(used, "count"), 2);
	assert_int_equal(json_array_size(json_object_get(rep, "suppressions")), 1);
	json_decref(rep);
	pgt_run_free(&r);

	/* a pattern that matches nothing changes nothing */
	f = fopen(supp, "w");
	fputs("leak:no_such_function\n", f);
	fclose(f);
	rep = run_json(&r, argv, opts);
	assert_int_equal(pgt_int(rep, "totals.leaked"), 2);
	assert_int_equal(pgt_int(rep, "totals.suppressed"), 0);
	json_decref(rep);
	pgt_run_free(&r);

	/* text: the table before SUMMARY (a file report is always written) */
	{
		char opt2[PATH_MAX * 3];
		const char *env[] = { opt2, NULL };
		f = fopen(supp, "w");
		fputs("leak:leaky_client.c\n", f);
		fclose(f);
		snprintf(opt2, sizeof(opt2), "PORTGUARD_OPTIONS=suppressions=%s log_path=%s/t",
			 supp, dir);
		pgt_run(&r, argv, env, 1);
		char path[PATH_MAX];
		snprintf(path, sizeof(path), "%s/t.%d", dir, r.pid);
		char *text = pgt_read_file(path);
		assert_non_null(text);
		assert_non_null(
		    strstr(text, "Suppressions used:\n  count template\n      2 leaky_client.c\n"));
		assert_non_null(
		    strstr(text, "SUMMARY: portguard: 0 socket(s) leaked from 0 call site(s).\n"));
		free(text);
		pgt_run_free(&r);
	}

	/* a bad file: one line naming FILE:LINE, nothing suppressed, the program runs */
	{
		char opt2[PATH_MAX * 2];
		const char *env[] = { opt2, NULL };
		f = fopen(supp, "w");
		fputs("leak:connect_to\nleak:\n", f);
		fclose(f);
		snprintf(opt2, sizeof(opt2), "PORTGUARD_OPTIONS=suppressions=%s", supp);
		pgt_run(&r, argv, env, 1);
		assert_int_equal(r.status, 0);
		char want[PATH_MAX + 64];
		snprintf(want, sizeof(want), "portguard: %s:2: ", supp);
		assert_non_null(strstr(r.err, want));
		assert_non_null(strstr(r.err, "SUMMARY: portguard: 2 socket(s) leaked"));
		pgt_run_free(&r);
	}
	pgt_rmdir(dir);
	free(dir);
}

/* The line number in a source file of the first line containing text. */
static int source_line(const char *file, const char *text)
{
	FILE *f = fopen(file, "r");
	char line[512];
	int n = 0, found = 0;

	while (f && fgets(line, sizeof(line), f)) {
		n++;
		if (strstr(line, text)) {
			found = n;
			break;
		}
	}
	if (f)
		fclose(f);
	return found;
}

static json_t *frame_named(json_t *frames, const char *function)
{
	for (size_t i = 0; i < json_array_size(frames); i++) {
		json_t *f = json_array_get(frames, i);
		const char *fn = json_string_value(json_object_get(f, "function"));
		if (fn && !strcmp(fn, function))
			return f;
	}
	return NULL;
}

/* A program built with -g: every frame of the leaking call site points at
 * the right source line (the call's, not the next one), in both formats;
 * the inlined functions are frames of their own. */
static void test_integration_file_line(void **state)
{
	const char *src = "examples/leaky_client.c";
	struct {
		const char *function, *text;
	} want[] = {
		{ "connect_to", "int fd = socket(AF_INET, SOCK_STREAM, 0);" },
		{ "fetch_record", "int fd = connect_to(port);" },
		{ "main", "if (fetch_record(ntohs(a.sin_port), id, buf, sizeof(buf)) == 0)" },
	};
	char *argv[] = { (char *)pgt_path("build/examples/leaky_client"), NULL };
	struct pgt_run r;
	json_t *rep = run_json(&r, argv, NULL), *frames;

	(void)state;
	frames = json_object_get(json_array_get(json_object_get(rep, "sites"), 0), "frames");
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		json_t *f = frame_named(frames, want[i].function);
		int line = source_line(src, want[i].text);
		char text_frame[256];

		assert_true(line > 0);
		assert_non_null(f);
		assert_non_null(strstr(json_string_value(json_object_get(f, "file")), src));
		assert_int_equal(pgt_int(f, "line"), line);
		print_message("%s at %s:%d\n", want[i].function, src, line);
		/* text: "#N 0x... in FUNCTION /path/examples/leaky_client.c:LINE" */
		snprintf(text_frame, sizeof(text_frame), " in %s %s:%d\n", want[i].function,
			 pgt_path(src), line);
		pgt_run_free(&r);
		pgt_run(&r, argv, NULL, 1);
		assert_non_null(strstr(r.err, text_frame));
	}
	json_decref(rep);
	pgt_run_free(&r);
}

/* A stripped copy: no names, no lines, but module+offset for every frame,
 * the same offsets as the unstripped binary's. */
static void test_integration_stripped_binary(void **state)
{
	char *dir = pgt_tmpdir();
	char copy[PATH_MAX], cmd[PATH_MAX * 2 + 64];
	char *argv[] = { copy, NULL };
	char *orig[] = { (char *)pgt_path("build/examples/leaky_client"), NULL };
	struct pgt_run r;
	json_t *rep, *f, *of;

	(void)state;
	snprintf(copy, sizeof(copy), "%s/leaky_client.stripped", dir);
	snprintf(cmd, sizeof(cmd), "strip -o %s %s", copy, orig[0]);
	assert_int_equal(system(cmd), 0);
	rep = run_json(&r, argv, NULL);
	f = json_array_get(
	    json_object_get(json_array_get(json_object_get(rep, "sites"), 0), "frames"), 0);
	assert_string_equal(json_string_value(json_object_get(f, "module")), copy);
	assert_non_null(json_string_value(json_object_get(f, "offset")));
	assert_null(json_object_get(f, "file"));
	assert_null(json_object_get(f, "line"));
	pgt_run_free(&r);
	{
		json_t *orep = run_json(&r, orig, NULL);
		of = json_array_get(
		    json_object_get(json_array_get(json_object_get(orep, "sites"), 0), "frames"),
		    0);
		assert_string_equal(json_string_value(json_object_get(f, "offset")),
				    json_string_value(json_object_get(of, "offset")));
		json_decref(orep);
	}
	/* text: (module+0xOFFSET) */
	pgt_run_free(&r);
	pgt_run(&r, argv, NULL, 1);
	snprintf(cmd, sizeof(cmd), "    #0 0x");
	assert_non_null(strstr(r.err, cmd));
	snprintf(cmd, sizeof(cmd), "(%s+0x", copy);
	assert_non_null(strstr(r.err, cmd));
	json_decref(rep);
	pgt_run_free(&r);
	pgt_rmdir(dir);
	free(dir);
}

/* Thread count of a child, from /proc/PID/status. */
static void test_integration_single_threaded_without_sockets(void **state)
{
	char *nosock[] = { "sh", "-c", "grep Threads: /proc/self/status", NULL };
	char *py[] = { (char *)real_python(), "-c",
		       "import socket,threading; s=socket.socket(); "
		       "print(open('/proc/self/status').read().split('Threads:')[1].split()[0])",
		       NULL };
	struct pgt_run r;

	(void)state;
	pgt_run(&r, nosock, NULL, 1);
	assert_string_equal(r.out, "Threads:\t1\n");
	pgt_run_free(&r);
	if (!py[0][0])
		return;
	/* the report thread starts with the first socket */
	pgt_run(&r, py, NULL, 1);
	assert_string_equal(r.out, "2\n");
	pgt_run_free(&r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_integration_leaky_client),
		cmocka_unit_test(test_integration_leaky_server),
		cmocka_unit_test(test_integration_python_three_leaks),
		cmocka_unit_test(test_integration_curl_no_leak),
		cmocka_unit_test(test_integration_quiet_when_clean),
		cmocka_unit_test(test_integration_text_summary),
		cmocka_unit_test(test_integration_exitcode),
		cmocka_unit_test(test_integration_signal_reports),
		cmocka_unit_test(test_integration_signal_own_handler),
		cmocka_unit_test(test_integration_signal_ignored),
		cmocka_unit_test(test_integration_bad_options),
		cmocka_unit_test(test_integration_single_threaded_without_sockets),
		cmocka_unit_test(test_integration_suppressions),
		cmocka_unit_test(test_integration_file_line),
		cmocka_unit_test(test_integration_stripped_binary),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
