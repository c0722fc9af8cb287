/* Unit tests of the tool's parsers and readers: the
 * /proc/net/tcp fallback, /proc/PID/fd links and limits, number arguments,
 * the call-site key of `portguard report`, and the two socket-table readers
 * against each other on a real loopback connection. The tool never links
 * the shim, so its sources are compiled in here. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "tools/cli.c"
#include "tools/merge.c"
#include "tools/procscan.c"
#include "common/names.c"
#include "tools/socktab.c"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>

static void test_tool_procnet_line(void **state)
{
	struct pg_tcpsock s;
	char a[64];

	(void)state;
	/* 127.0.0.1:8080 -> 127.0.0.1:40000, ESTABLISHED, inode 12345 */
	assert_int_equal(pg_socktab_parse_line(
			     "   3: 0100007F:1F90 0100007F:9C40 01 00000000:00000000 00:00000000 "
			     "00000000     0        0 12345 1 0000000000000000 20 4 30 10 -1\n",
			     4, &s),
			 0);
	assert_int_equal(s.family, 4);
	assert_int_equal(s.lport, 8080);
	assert_int_equal(s.rport, 40000);
	assert_int_equal(s.state, 1);
	assert_int_equal(s.inode, 12345);
	pg_socktab_addr_str(s.family, s.laddr, a, sizeof(a));
	assert_string_equal(a, "127.0.0.1");
	/* TIME_WAIT: inode 0 */
	assert_int_equal(
	    pg_socktab_parse_line("  10: 0100007F:A000 0200007F:0050 06 00000000:00000000 "
				  "03:00001234 00000000     0        0 0 3 0000000000000000\n",
				  4, &s),
	    0);
	assert_int_equal(s.state, 6);
	assert_int_equal(s.inode, 0);
	pg_socktab_addr_str(s.family, s.raddr, a, sizeof(a));
	assert_string_equal(a, "127.0.0.2");
	/* [::1]:41000 -> [::1]:443 */
	assert_int_equal(
	    pg_socktab_parse_line(
		"   0: 00000000000000000000000001000000:A028 00000000000000000000000001000000:01BB "
		"01 00000000:00000000 00:00000000 00000000     0        0 777 1 0000000000000000 "
		"20 4 1 10 -1\n",
		6, &s),
	    0);
	assert_int_equal(s.family, 6);
	assert_int_equal(s.lport, 41000);
	assert_int_equal(s.rport, 443);
	pg_socktab_addr_str(s.family, s.laddr, a, sizeof(a));
	assert_string_equal(a, "::1");
	/* An IPv4-mapped IPv6 socket counts in the IPv4 port space. */
	assert_int_equal(
	    pg_socktab_parse_line(
		"   1: 0000000000000000FFFF00000100007F:A029 0000000000000000FFFF00000100007F:1F90 "
		"08 00000000:00000000 00:00000000 00000000     0        0 778 1\n",
		6, &s),
	    0);
	assert_int_equal(s.family, 4);
	pg_socktab_addr_str(s.family, s.raddr, a, sizeof(a));
	assert_string_equal(a, "127.0.0.1");
	assert_int_equal(s.state, 8);
	/* The header and garbage are refused. */
	assert_int_equal(
	    pg_socktab_parse_line("  sl  local_address rem_address   st tx_queue rx_queue tr "
				  "tm->when retrnsmt   uid  timeout inode\n",
				  4, &s),
	    -EINVAL);
	assert_int_equal(pg_socktab_parse_line("   3: 0100007F:1F90\n", 4, &s), -EINVAL);
	assert_int_equal(
	    pg_socktab_parse_line("   3: 0100007G:1F90 0100007F:9C40 01 0:0 0:0 0 0 0 1\n", 4, &s),
	    -EINVAL);
}

static void test_tool_state_names(void **state)
{
	(void)state;
	assert_string_equal(pg_names_tcp_state(1), "ESTABLISHED");
	assert_string_equal(pg_names_tcp_state(6), "TIME_WAIT");
	assert_string_equal(pg_names_tcp_state(8), "CLOSE_WAIT");
	assert_string_equal(pg_names_tcp_state(10), "LISTEN");
	assert_null(pg_names_tcp_state(0));
	assert_null(pg_names_tcp_state(13));
}

static void test_tool_fd_links(void **state)
{
	(void)state;
	assert_int_equal(pg_procscan_socket_inode("socket:[123456]", 15), 123456);
	assert_int_equal(pg_procscan_socket_inode("pipe:[123456]", 13), 0);
	assert_int_equal(pg_procscan_socket_inode("socket:[]", 9), 0);
	assert_int_equal(pg_procscan_socket_inode("socket:[12a]", 12), 0);
	assert_int_equal(pg_procscan_socket_inode("/dev/null", 9), 0);
}

static void test_tool_limits(void **state)
{
	static const char lim[] =
	    "Limit                     Soft Limit           Hard Limit           Units     \n"
	    "Max processes             63456                63456                processes \n"
	    "Max open files            1024                 524288               files     \n"
	    "Max locked memory         8388608              8388608              bytes     \n";
	static const char unl[] =
	    "Max open files            unlimited            unlimited            files     \n";

	(void)state;
	assert_int_equal(pg_procscan_parse_limits(lim), 1024);
	assert_int_equal(pg_procscan_parse_limits(unl), -1);
	assert_int_equal(pg_procscan_parse_limits("nothing\n"), -1);
}

static void test_tool_numbers(void **state)
{
	long l;
	double d;

	(void)state;
	assert_int_equal(pg_cli_parse_long("42", 1, 100, &l), 0);
	assert_int_equal(l, 42);
	assert_int_equal(pg_cli_parse_long(" 42", 1, 100, &l), -EINVAL);
	assert_int_equal(pg_cli_parse_long("42 ", 1, 100, &l), -EINVAL);
	assert_int_equal(pg_cli_parse_long("+42", 1, 100, &l), -EINVAL);
	assert_int_equal(pg_cli_parse_long("0", 1, 100, &l), -ERANGE);
	assert_int_equal(pg_cli_parse_long("99999999999999999999999", 1, 100, &l), -ERANGE);
	assert_int_equal(pg_cli_parse_long("", 1, 100, &l), -EINVAL);
	assert_int_equal(pg_cli_parse_double("60.5", 0, 100, &d), 0);
	assert_true(d == 60.5);
	assert_int_equal(pg_cli_parse_double("0.01", 0, 100, &d), 0);
	assert_int_equal(pg_cli_parse_double("100", 0, 100, &d), 0);
	assert_int_equal(pg_cli_parse_double("100.1", 0, 100, &d), -EINVAL);
	assert_int_equal(pg_cli_parse_double("-1", 0, 100, &d), -EINVAL);
	assert_int_equal(pg_cli_parse_double("nan", 0, 100, &d), -EINVAL);
	assert_int_equal(pg_cli_parse_double("inf", 0, 100, &d), -EINVAL);
	assert_int_equal(pg_cli_parse_double("5%", 0, 100, &d), -EINVAL);
}

static const char *write_tmp(const char *text)
{
	static char path[8][64];
	static int i;
	char *p = path[i++ % 8];
	int fd;

	snprintf(p, 64, "/tmp/pg_test_tool_XXXXXX");
	fd = mkstemp(p);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	return p;
}

#define FRAME(addr, mod, off) \
	"{\"addr\": \"" addr "\", \"module\": \"" mod "\", \"offset\": \"" off "\"}"
#define REPORT(pid, frames)                                                                       \
	"{\"portguard\": 1, \"pid\": " pid ", \"exe\": \"/x\", \"reason\": \"exit\", \"sites\": " \
	"[{\"open\": 1, \"leaked\": 1, \"created\": 1, \"frames\": [" frames                      \
	"], \"sockets\": []}]}\n"

/* How many sites two one-site reports merge into. */
static size_t merged_sites(const char *a, const char *b)
{
	const char *fa = write_tmp(a), *fb = write_tmp(b);
	struct pg_merge m;
	size_t n;

	pg_merge_init(&m);
	assert_int_equal(pg_merge_load(&m, fa), 0);
	assert_int_equal(pg_merge_load(&m, fb), 0);
	pg_merge_build(&m);
	n = m.nsites;
	pg_merge_free(&m);
	unlink(fa);
	unlink(fb);
	return n;
}

static void test_tool_merge_key(void **state)
{
	(void)state;
	/* Different addresses, same module+offset (however the hex is written). */
	assert_int_equal(merged_sites(REPORT("1", FRAME("0x55550001b2c3", "/a", "0x1b2c3")),
				      REPORT("2", FRAME("0x56660001b2c3", "/a", "0x001B2C3"))),
			 1);
	/* Same offset in another module. */
	assert_int_equal(merged_sites(REPORT("1", FRAME("0x1", "/a", "0x10")),
				      REPORT("2", FRAME("0x1", "/b", "0x10"))),
			 2);
	/* A prefix of a longer stack is another site. */
	assert_int_equal(
	    merged_sites(REPORT("1", FRAME("0x1", "/a", "0x10")),
			 REPORT("2", FRAME("0x1", "/a", "0x10") ", " FRAME("0x2", "/a", "0x20"))),
	    2);
	/* Without a module, only the same absolute address merges. */
	assert_int_equal(
	    merged_sites(REPORT("1", "{\"addr\": \"0x77\"}"), REPORT("2", "{\"addr\": \"0x77\"}")),
	    1);
	assert_int_equal(
	    merged_sites(REPORT("1", "{\"addr\": \"0x77\"}"), REPORT("2", "{\"addr\": \"0x78\"}")),
	    2);
}

static void test_tool_merge_choice(void **state)
{
	static const char sig1[] =
	    "{\"portguard\": 1, \"pid\": 9, \"reason\": \"signal\", \"totals\": {\"leaked\": 1}}\n";
	static const char sig2[] =
	    "{\"portguard\": 1, \"pid\": 9, \"reason\": \"signal\", \"totals\": {\"leaked\": 2}}\n";
	static const char ex[] =
	    "{\"portguard\": 1, \"pid\": 9, \"reason\": \"exit\", \"totals\": {\"leaked\": 5}}\n";
	static const char ev[] = "{\"portguard\": 1, \"pid\": 9, \"event\": \"churn\"}\n";
	char text[1024];
	struct pg_merge m;
	const char *f;

	(void)state;
	/* The latest signal report when there is no exit report. */
	snprintf(text, sizeof(text), "%s%s%s", sig1, ev, sig2);
	f = write_tmp(text);
	pg_merge_init(&m);
	assert_int_equal(pg_merge_load(&m, f), 0);
	pg_merge_build(&m);
	assert_int_equal(pg_merge_int(m.totals, "leaked"), 2);
	assert_int_equal(pg_merge_int(m.events, "churn"), 1);
	assert_int_equal(m.nsignal, 1);
	pg_merge_free(&m);
	unlink(f);
	/* The exit report, wherever it stands. */
	snprintf(text, sizeof(text), "%s%s%s", sig1, ex, sig2);
	f = write_tmp(text);
	pg_merge_init(&m);
	assert_int_equal(pg_merge_load(&m, f), 0);
	pg_merge_build(&m);
	assert_int_equal(pg_merge_int(m.totals, "leaked"), 5);
	assert_int_equal(m.nexit, 1);
	assert_int_equal(m.npids, 1);
	pg_merge_free(&m);
	unlink(f);
}

static const struct pg_tcpsock *find_sock(const struct pg_socktab *t, uint16_t lport,
					  uint16_t rport)
{
	for (size_t i = 0; i < t->n; i++)
		if (t->v[i].lport == lport && t->v[i].rport == rport && t->v[i].family == 4)
			return &t->v[i];
	return NULL;
}

/* A real loopback connection, found by both readers with the same facts. */
static void test_tool_socktab_readers(void **state)
{
	struct sockaddr_in a = { .sin_family = AF_INET }, c;
	socklen_t len = sizeof(a);
	struct pg_socktab diag = { 0 }, proc = { 0 };
	const struct pg_tcpsock *d, *p;
	int l, cl, sv;
	struct stat st;

	(void)state;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	l = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(l >= 0);
	assert_int_equal(bind(l, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(l, 1), 0);
	assert_int_equal(getsockname(l, (struct sockaddr *)&a, &len), 0);
	cl = socket(AF_INET, SOCK_STREAM, 0);
	assert_int_equal(connect(cl, (struct sockaddr *)&a, sizeof(a)), 0);
	sv = accept(l, NULL, NULL);
	assert_true(sv >= 0);
	len = sizeof(c);
	assert_int_equal(getsockname(cl, (struct sockaddr *)&c, &len), 0);
	assert_int_equal(fstat(cl, &st), 0);

	assert_int_equal(pg_socktab_read_diag(&diag), 0);
	assert_int_equal(pg_socktab_read_proc(&proc), 0);
	d = find_sock(&diag, ntohs(c.sin_port), ntohs(a.sin_port));
	p = find_sock(&proc, ntohs(c.sin_port), ntohs(a.sin_port));
	assert_non_null(d);
	assert_non_null(p);
	assert_int_equal(d->inode, (uint64_t)st.st_ino);
	assert_int_equal(p->inode, (uint64_t)st.st_ino);
	assert_int_equal(d->state, 1);
	assert_int_equal(p->state, 1);
	assert_memory_equal(d->laddr, p->laddr, 16);
	assert_memory_equal(d->raddr, p->raddr, 16);
	/* and the listener, in state LISTEN */
	d = find_sock(&diag, ntohs(a.sin_port), 0);
	assert_non_null(d);
	assert_int_equal(d->state, 10);
	pg_socktab_free(&diag);
	pg_socktab_free(&proc);
	close(cl);
	close(sv);
	close(l);
}

/* Our own socket shows up among our descriptors, with its inode. */
static void test_tool_procscan_self(void **state)
{
	struct pg_procscan s;
	const struct pg_proc *me;
	size_t first, n;
	struct stat st;
	int fd;

	(void)state;
	fd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &st), 0);
	assert_int_equal(pg_procscan_run(&s, (int)getpid(), 0), 0);
	me = pg_procscan_find(&s, (int)getpid());
	assert_non_null(me);
	assert_true(me->sockets >= 1);
	assert_true(me->fds >= 4);
	assert_true(me->fd_limit > 0);
	n = pg_procscan_owners_of(&s, st.st_ino, &first);
	assert_int_equal(n, 1);
	assert_int_equal(s.owners[first].pid, getpid());
	pg_procscan_free(&s);
	close(fd);
	/* A pid that cannot exist. */
	assert_int_equal(pg_procscan_run(&s, 0x7ffffff0, 0), -ESRCH);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_tool_procnet_line),
		cmocka_unit_test(test_tool_state_names),
		cmocka_unit_test(test_tool_fd_links),
		cmocka_unit_test(test_tool_limits),
		cmocka_unit_test(test_tool_numbers),
		cmocka_unit_test(test_tool_merge_key),
		cmocka_unit_test(test_tool_merge_choice),
		cmocka_unit_test(test_tool_socktab_readers),
		cmocka_unit_test(test_tool_procscan_self),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
