/* The report writer on a synthetic registry (kernel=0: fake descriptors),
 * and the report's output. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "shim/common.h"
#include "shim/fdtab.h"
#include "shim/output.h"
#include "shim/report.h"
#include "shim/sites.h"
#include "tests/pgtest.h"

#include <sys/socket.h>

static struct pg_config cfg;
/* Memory given to pg_report_write (as the library gives what it set
 * aside), or NULL for its own. */
static char *given_mem;
static size_t given_size;

static int reset(void **state)
{
	(void)state;
	pg_fdtab_reset();
	pg_sites_reset();
	pg_config_defaults(&cfg);
	cfg.symbolize = 0;
	return 0;
}

/* Writes a report into a temporary file and returns its text. */
static char *report(int json, enum pg_reason reason, int quiet, struct pg_report_result *res)
{
	char path[] = "/tmp/pgt.report.XXXXXX";
	int fd = mkstemp(path);
	struct pg_report_opts o;
	char *text;

	cfg.format = json ? PG_FORMAT_JSON : PG_FORMAT_TEXT;
	memset(&o, 0, sizeof(o));
	o.cfg = &cfg;
	o.symbolize = cfg.symbolize;
	o.reason = reason;
	o.pid = 4242;
	o.exe = "/usr/bin/app \"x\"";
	o.now_ns = 10 * 1000000000LL;
	o.fd = fd;
	o.quiet_if_clean = quiet;
	o.kernel = 0;
	o.mem = given_mem;
	o.mem_size = given_size;
	assert_int_equal(pg_report_write(&o, res), 0);
	close(fd);
	text = pgt_read_file(path);
	unlink(path);
	return text;
}

static uint32_t site(uintptr_t a, uintptr_t b, uintptr_t c)
{
	uintptr_t f[3] = { a, b, c };

	return pg_sites_intern(f, 3);
}

static void add(int fd, uint64_t inode, uint32_t site_id, int64_t ns, int domain, int type,
		int protocol, unsigned flags)
{
	struct pg_sock_facts f = {
		inode,   ns,
		site_id, domain,
		type,    protocol,
		flags,   flags & PG_SOCK_INHERITED ? PG_VIA_INHERITED : PG_VIA_SOCKET
	};
	struct pg_fdtab_gone gone;

	assert_int_equal(pg_fdtab_add(fd, &f, &gone), 0);
	pg_sites_count_created(site_id);
}

static void close_fd(int fd, enum pg_close_outcome how, uint32_t site_id)
{
	struct pg_fdtab_close c;
	struct pg_fdtab_gone gone;

	pg_fdtab_close_begin(fd, &c, 0);
	pg_fdtab_close_end(&c, how, site_id, &gone);
}

/* 3 leaked from site A (one of them with two descriptors), 1 from B, one
 * inherited without a stack, 2 created and closed at A. */
static void populate(void)
{
	uint32_t a = site(0x1000, 0x2000, 0x3000), b = site(0x1111, 0x2000, 0x3000);
	struct pg_fdtab_gone gone;

	for (int fd = 10; fd < 15; fd++)
		add(fd, 500 + (uint64_t)fd, a, 9 * 1000000000LL, AF_INET, SOCK_STREAM, 6, 0);
	pg_fdtab_dup(10, 30, 0, PG_VIA_DUP, &gone);
	for (int fd = 13; fd < 15; fd++)
		close_fd(fd, PG_CLOSED, 0);
	add(20, 900, b, 8 * 1000000000LL, AF_INET6, SOCK_DGRAM, 17, 0);
	add(3, 42, 0, 1, -1, -1, -1, PG_SOCK_INHERITED);
}

static void test_report_json_counts_and_sites(void **state)
{
	struct pg_report_result res;
	char *text;
	json_t *rep, *sites, *s0, *s1, *sock;

	(void)state;
	populate();
	text = report(1, PG_REASON_EXIT, 0, &res);
	rep = pgt_json_line(text, 0, 1);
	assert_non_null(rep);
	/* one object, one line */
	assert_int_equal(strchr(text, '\n') - text + 1, (long)strlen(text));
	assert_int_equal(pgt_int(rep, "portguard"), 1);
	assert_int_equal(pgt_int(rep, "pid"), 4242);
	assert_string_equal(json_string_value(json_object_get(rep, "exe")), "/usr/bin/app \"x\"");
	assert_string_equal(json_string_value(json_object_get(rep, "reason")), "exit");
	assert_int_equal(pgt_int(rep, "totals.created"), 6);
	assert_int_equal(pgt_int(rep, "totals.closed"), 2);
	assert_int_equal(pgt_int(rep, "totals.inherited"), 1);
	assert_int_equal(pgt_int(rep, "totals.open"), 5);
	assert_int_equal(pgt_int(rep, "totals.leaked"), 4);
	assert_int_equal(pgt_int(rep, "totals.double_closes"), 0);
	assert_true(pgt_adds_up(rep));
	assert_int_equal(res.leaked, 4);
	assert_int_equal(res.sites_leaking, 2);

	sites = json_object_get(rep, "sites");
	assert_int_equal(json_array_size(sites), 3);
	s0 = json_array_get(sites, 0);
	assert_int_equal(pgt_int(s0, "leaked"), 3);
	assert_int_equal(pgt_int(s0, "open"), 3);
	assert_int_equal(pgt_int(s0, "created"), 5);
	assert_int_equal(json_array_size(json_object_get(s0, "frames")), 3);
	assert_string_equal(json_string_value(json_object_get(
				json_array_get(json_object_get(s0, "frames"), 0), "addr")),
			    "0x1000");
	sock = json_array_get(json_object_get(s0, "sockets"), 0);
	assert_int_equal(pgt_int(sock, "fd"), 10);
	assert_int_equal(pgt_int(sock, "handles"), 2);
	assert_int_equal(pgt_int(sock, "inode"), 510);
	assert_int_equal(pgt_int(sock, "age_ms"), 1000);
	assert_string_equal(json_string_value(json_object_get(sock, "family")), "inet");
	assert_string_equal(json_string_value(json_object_get(sock, "protocol")), "tcp");
	assert_true(json_is_false(json_object_get(sock, "inherited")));
	/* unknown things are absent, not empty */
	assert_null(json_object_get(sock, "state"));
	assert_null(json_object_get(sock, "remote"));

	s1 = json_array_get(sites, 1);
	assert_int_equal(pgt_int(s1, "leaked"), 1);
	assert_string_equal(json_string_value(json_object_get(
				json_array_get(json_object_get(s1, "sockets"), 0), "protocol")),
			    "udp");
	/* the stackless site: inherited, not leaked */
	assert_int_equal(json_array_size(json_object_get(json_array_get(sites, 2), "frames")), 0);
	assert_int_equal(pgt_int(json_array_get(sites, 2), "leaked"), 0);
	assert_true(json_is_true(json_object_get(
	    json_array_get(json_object_get(json_array_get(sites, 2), "sockets"), 0), "inherited")));
	json_decref(rep);
	free(text);
}

/* Each site lists as many sockets as it says it has open, when the memory
 * is reused from one report to the next (the library's memory set aside):
 * an exit report after a signal report listed closed sockets again, from
 * a count the last report left. */
static void test_report_memory_reused(void **state)
{
	(void)state;
	given_size = pg_report_mem_for(64);
	given_mem = malloc(given_size);
	assert_non_null(given_mem);
	memset(given_mem, 0xab, given_size); /* what any earlier report left */
	populate();
	for (int round = 0; round < 2; round++) {
		char *text = report(1, round ? PG_REASON_EXIT : PG_REASON_SIGNAL, 0, NULL);
		json_t *j = json_loads(text, 0, NULL), *site;
		size_t i, listed = 0;
		assert_non_null(j);
		json_array_foreach(json_object_get(j, "sites"), i, site)
		{
			size_t n = json_array_size(json_object_get(site, "sockets"));
			assert_int_equal(pgt_int(site, "open"), n);
			assert_true(pgt_int(site, "leaked") <= (json_int_t)n);
			listed += n;
		}
		assert_int_equal(listed, pgt_int(j, "totals.open"));
		json_decref(j);
		free(text);
		/* Then most of them closed. */
		for (int fd = 10; fd < 13; fd++)
			close_fd(fd, PG_CLOSED, 0);
		close_fd(30, PG_CLOSED, 0);
	}
	free(given_mem);
	given_mem = NULL;
	given_size = 0;
}

static void test_report_text_reads_like_lsan(void **state)
{
	char *text;

	(void)state;
	populate();
	text = report(0, PG_REASON_SIGNAL, 0, NULL);
	assert_true(!strncmp(text, "==4242==portguard: signal report of /usr/bin/app", 48));
	assert_non_null(strstr(
	    text,
	    "Leak of 3 socket(s) (3 open, 5 created here) from:\n    #0 0x1000 (<unknown "
	    "module>)\n    #1 0x2000 (<unknown module>)\n    #2 0x3000 (<unknown module>)\n"));
	assert_non_null(strstr(text, "  fd 10: tcp (unbound), age 1000 ms, 2 descriptors\n"));
	assert_non_null(strstr(text, "Leak of 1 socket(s)"));
	assert_non_null(
	    strstr(text, "Open, not counted as leaked: 1 socket(s) (no creation stack):"));
	assert_string_equal(strstr(text, "SUMMARY:"),
			    "SUMMARY: portguard: 4 socket(s) leaked from 2 call site(s).\n");
	free(text);
}

static void test_report_quiet_when_nothing_to_say(void **state)
{
	struct pg_report_result res;
	char *text;

	(void)state;
	add(3, 42, 0, 1, -1, -1, -1, PG_SOCK_INHERITED);
	text = report(0, PG_REASON_EXIT, 1, &res);
	assert_string_equal(text, "");
	assert_int_equal(res.written, 0);
	free(text);
	/* Only inherited sockets, none leaked: nothing of its own to say, no
	 * JSON either (a forking server's child writes no file)... */
	text = report(1, PG_REASON_EXIT, 1, &res);
	assert_string_equal(text, "");
	free(text);
	/* ... but asked for (a signal), it answers */
	text = report(1, PG_REASON_SIGNAL, 1, &res);
	assert_non_null(strstr(text, "\"leaked\": 0"));
	free(text);
	/* asked for, to a file: the summary says 0 */
	text = report(0, PG_REASON_SIGNAL, 0, &res);
	assert_non_null(
	    strstr(text, "SUMMARY: portguard: 0 socket(s) leaked from 0 call site(s).\n"));
	free(text);
}

static void test_report_excuses(void **state)
{
	struct pg_report_result res;
	char *text;
	json_t *rep;
	uint32_t a = site(1, 2, 3);

	(void)state;
	add(5, 1, a, 9 * 1000000000LL, AF_INET, SOCK_STREAM, 6, PG_SOCK_LISTENING);
	add(6, 2, a, 9999 * 1000000LL, AF_INET, SOCK_STREAM, 6, 0); /* 1 ms old */
	add(7, 3, a, 1 * 1000000000LL, AF_INET, SOCK_STREAM, 6, 0);
	cfg.ignore_listening = 1;
	cfg.min_age_ms = 500;
	text = report(1, PG_REASON_SIGNAL, 0, &res);
	rep = pgt_json_line(text, 0, 1);
	assert_int_equal(pgt_int(rep, "totals.open"), 3);
	assert_int_equal(pgt_int(rep, "totals.leaked"), 1);
	assert_int_equal(res.leaked, 1);
	json_decref(rep);
	free(text);
}

static void test_report_double_close_has_three_stacks(void **state)
{
	char *text;
	json_t *rep, *dc;

	(void)state;
	add(9, 1, site(1, 1, 1), 1, AF_INET, SOCK_STREAM, 6, 0);
	close_fd(9, PG_CLOSED, site(2, 2, 2));
	close_fd(9, PG_WAS_GONE, site(3, 3, 3));
	text = report(1, PG_REASON_EXIT, 1, NULL);
	rep = pgt_json_line(text, 0, 1);
	assert_int_equal(pgt_int(rep, "totals.double_closes"), 1);
	dc = json_array_get(json_object_get(rep, "double_closes"), 0);
	assert_int_equal(pgt_int(dc, "fd"), 9);
	assert_string_equal(json_string_value(json_object_get(
				json_array_get(json_object_get(dc, "closed_again"), 0), "addr")),
			    "0x3");
	assert_string_equal(json_string_value(json_object_get(
				json_array_get(json_object_get(dc, "closed"), 0), "addr")),
			    "0x2");
	assert_string_equal(json_string_value(json_object_get(
				json_array_get(json_object_get(dc, "created"), 0), "addr")),
			    "0x1");
	json_decref(rep);
	free(text);
	/* a double close alone makes a clean text exit report speak */
	text = report(0, PG_REASON_EXIT, 1, NULL);
	assert_non_null(strstr(
	    text,
	    "Double close of fd 9 (1 time(s)); closed again at:\n    #0 0x3 (<unknown module>)\n"));
	free(text);
}

static void test_report_output_names(void **state)
{
	char out[64];

	(void)state;
	assert_int_equal(pg_output_path("/tmp/pg", 77, out, sizeof(out)), 0);
	assert_string_equal(out, "/tmp/pg.77");
	assert_int_equal(pg_output_path("/tmp/pg-%p.log", 77, out, sizeof(out)), 0);
	assert_string_equal(out, "/tmp/pg-77.log");
	assert_int_equal(
	    pg_output_path("/tmp/a-very-long-name-that-does-not-fit-in-sixty-four-bytes-at-all", 7,
			   out, sizeof(out)),
	    -ENAMETOOLONG);
}

static void test_report_output_files(void **state)
{
	char *dir = pgt_tmpdir();
	struct pg_output d;
	struct pg_config c;
	char p[PATH_MAX];
	struct stat st;
	int fd;

	(void)state;
	memset(&d, 0, sizeof(d));
	pg_output_remember_std(&d);
	pg_config_defaults(&c);
	c.dest = PG_DEST_PATH;
	snprintf(c.log_path, sizeof(c.log_path), "%s/r", dir);

	/* first report: a new file, mode 0600 */
	fd = pg_output_open(&d, &c, 100);
	assert_true(fd > 2);
	assert_true(d.file);
	assert_int_equal(write(fd, "one\n", 4), 4);
	close(fd);
	snprintf(p, sizeof(p), "%s/r.100", dir);
	assert_int_equal(stat(p, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	/* later reports of the same process append */
	fd = pg_output_open(&d, &c, 100);
	assert_int_equal(write(fd, "two\n", 4), 4);
	close(fd);
	char *text = pgt_read_file(p);
	assert_string_equal(text, "one\ntwo\n");
	free(text);
	/* another process with the same pid: the name is taken, .1 is used */
	struct pg_output d2;
	memset(&d2, 0, sizeof(d2));
	fd = pg_output_open(&d2, &c, 100);
	close(fd);
	snprintf(p, sizeof(p), "%s/r.100.1", dir);
	assert_int_equal(stat(p, &st), 0);
	/* a symbolic link where the report would go: not followed; the
	 * fallback file, $TMPDIR/portguard.PID (TMPDIR as read at load) */
	snprintf(d.tmpdir, sizeof(d.tmpdir), "%s", dir);
	snprintf(p, sizeof(p), "%s/r.200", dir);
	assert_int_equal(symlink("/tmp/elsewhere", p), 0);
	fd = pg_output_open(&d, &c, 200);
	assert_true(fd > 2);
	assert_true(d.file);
	close(fd);
	assert_int_equal(lstat("/tmp/elsewhere", &st), -1);
	snprintf(p, sizeof(p), "%s/portguard.200", dir);
	assert_int_equal(stat(p, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	/* an unwritable directory: the fallback file too */
	snprintf(c.log_path, sizeof(c.log_path), "%s/missing/dir/r", dir);
	fd = pg_output_open(&d, &c, 300);
	assert_true(fd > 2);
	close(fd);
	snprintf(p, sizeof(p), "%s/portguard.300", dir);
	assert_int_equal(stat(p, &st), 0);
	pgt_rmdir(dir);
	free(dir);
}

/* A report never goes into a descriptor that became something else. */
static void test_report_output_std_replaced(void **state)
{
	struct pg_output d;
	struct pg_config c;
	int saved = dup(2), sv[2], fd;
	char *dir = pgt_tmpdir(), p[PATH_MAX + 32];
	struct stat st;

	(void)state;
	memset(&d, 0, sizeof(d));
	pg_output_remember_std(&d);
	snprintf(d.tmpdir, sizeof(d.tmpdir), "%s", dir);
	pg_config_defaults(&c);
	assert_int_equal(pg_output_open(&d, &c, 1), 2);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	dup2(sv[0], 2);
	/* Not into the socket now on fd 2: the fallback file. */
	fd = pg_output_open(&d, &c, 1);
	assert_true(fd > 2);
	close(fd);
	snprintf(p, sizeof(p), "%s/portguard.1", dir);
	assert_int_equal(stat(p, &st), 0);
	pgt_rmdir(dir);
	free(dir);
	dup2(saved, 2);
	close(saved);
	close(sv[0]);
	close(sv[1]);
	assert_int_equal(pg_output_open(&d, &c, 1), 2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_report_json_counts_and_sites, reset),
		cmocka_unit_test_setup(test_report_memory_reused, reset),
		cmocka_unit_test_setup(test_report_text_reads_like_lsan, reset),
		cmocka_unit_test_setup(test_report_quiet_when_nothing_to_say, reset),
		cmocka_unit_test_setup(test_report_excuses, reset),
		cmocka_unit_test_setup(test_report_double_close_has_three_stacks, reset),
		cmocka_unit_test_setup(test_report_output_names, reset),
		cmocka_unit_test_setup(test_report_output_files, reset),
		cmocka_unit_test_setup(test_report_output_std_replaced, reset),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
