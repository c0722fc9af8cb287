/*
 * bench/scale.c: memory and report time with as many real sockets open at
 * once as RLIMIT_NOFILE allows.
 *
 *   build/bench/scale [-m MARGIN] [-D NEST] [-u LOG_PREFIX [-j]]
 *   build/bench/scale -a [-m MARGIN] [-D NEST] [-d DEPTH]
 *
 * Raises the soft RLIMIT_NOFILE to the hard limit, then opens TCP sockets
 * (unconnected) from 10 distinct call sites until MARGIN (default 100)
 * descriptors are left free for the report's own (its /proc/self/fd scan,
 * the log file, the ELF files libdw reads). Prints resident memory before
 * and after (from /proc/self/statm), and the unwinding libraries mapped.
 *
 * Run bare and under LD_PRELOAD: the difference in resident memory, divided
 * by the socket count, is what the library holds per socket.
 *
 * -u LOG_PREFIX: under the library with log_path=LOG_PREFIX, sends itself
 *   the report signal (SIGUSR1) and times until LOG_PREFIX.PID holds the
 *   whole report (text: the SUMMARY line; -j JSON: the closing "}\n").
 * Always: prints return_ns (CLOCK_MONOTONIC) just before main returns, so
 *   that the caller can time the exit (and its report) from outside.
 *
 * -a: archive mode, without the preloaded library: the same sockets are
 *   recorded by calling the registry of build/libportguard.a directly, with
 *   stacks from glibc backtrace() at DEPTH (16) interned per socket as the
 *   library does; prints the bytes of the stack table and per record,
 *   and the time pg_report_write (kernel=1: reconciliation and per-socket
 *   queries included) takes in text and JSON, symbolize 0 and 1.
 * Prints figures only.
 */
#include "shim/common.h"
#include "shim/config.h"
#include "shim/arena.h"
#include "shim/fdtab.h"
#include "shim/sites.h"
#include "shim/real.h"
#include "shim/report.h"

#include <errno.h>
#include <execinfo.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define NSITES 10

static int archive, intern_only, depth = 16;
static int *fds;
static long nfds;

static int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static long rss_bytes(void)
{
	long size = 0, res = 0;
	FILE *f = fopen("/proc/self/statm", "re");

	if (f) {
		if (fscanf(f, "%ld %ld", &size, &res) != 2)
			res = 0;
		fclose(f);
	}
	return res * sysconf(_SC_PAGESIZE);
}

/* Which unwinding and symbolizing libraries the process has mapped. */
static void print_unwinder_libs(void)
{
	static const char *const names[] = { "libunwind", "libgcc_s", "libdw", "libelf" };
	int seen[PG_ARRAY_LEN(names)] = { 0 }, any = 0;
	char line[4096];
	FILE *f = fopen("/proc/self/maps", "re");

	if (!f)
		return;
	while (fgets(line, sizeof(line), f))
		for (size_t i = 0; i < PG_ARRAY_LEN(names); i++)
			if (strstr(line, names[i]))
				seen[i] = 1;
	fclose(f);
	printf("mapped_libs=");
	for (size_t i = 0; i < PG_ARRAY_LEN(names); i++)
		if (seen[i])
			printf("%s%s", any++ ? "," : "", names[i]);
	printf("%s\n", any ? "" : "none");
}

/* One socket; in archive mode also the library's work: capture, intern,
 * record. */
__attribute__((noipa)) static int make(void)
{
	int fd = intern_only ? 0 : socket(AF_INET, SOCK_STREAM, 0);

	if (fd >= 0 && archive) {
		uintptr_t frames[PG_MAX_DEPTH];
		void *buf[PG_MAX_DEPTH];
		struct stat st;
		int n = backtrace(buf, depth);
		uint32_t site;
		struct pg_fdtab_gone gone;

		for (int i = 0; i < n; i++)
			frames[i] = (uintptr_t)buf[i];
		site = pg_sites_intern(frames, (unsigned)n);
		if (intern_only)
			return fd;
		fstat(fd, &st);
		struct pg_sock_facts f = { st.st_ino, pg_now_coarse_ns(), site,
					   AF_INET,   SOCK_STREAM,        0,
					   0,         PG_VIA_SOCKET };
		pg_fdtab_add(fd, &f, &gone);
	}
	return fd;
}

/* Ten distinct call sites (noipa: not merged, not inlined). */
#define SITE(k)                                         \
	__attribute__((noipa)) static int site##k(void) \
	{                                               \
		int fd = make();                        \
		__asm__ volatile("" : "+r"(fd));        \
		return fd + (k & 0);                    \
	}
SITE(0)
SITE(1)
SITE(2)
SITE(3)
SITE(4)
SITE(5)
SITE(6)
SITE(7)
SITE(8)
SITE(9)
static int (*const sites[NSITES])(void) = { site0, site1, site2, site3, site4,
					    site5, site6, site7, site8, site9 };

static long open_all(long want)
{
	for (nfds = 0; nfds < want; nfds++) {
		int fd = sites[nfds % NSITES]();
		if (fd < 0) {
			fprintf(stderr, "scale: socket %ld: %s\n", nfds, strerror(errno));
			break;
		}
		fds[nfds] = fd;
	}
	return nfds;
}

/* The stacks are as deep as a real program's (see bench/pair.c). */
__attribute__((noipa)) static long nest(int d, long want)
{
	long r;

	if (d <= 0)
		return open_all(want);
	r = nest(d - 1, want);
	/* The result passes through an empty asm after the call: no tail call. */
	__asm__ volatile("" : "+r"(r));
	return r;
}

/* 1 when path holds a whole report: text up to its SUMMARY line, JSON up to
 * the closing "}\n". Reads only when the size changed since the last look
 * (*size), so that polling costs the report thread next to nothing. */
static int report_complete(const char *path, int json, long *size)
{
	char tail[4096];
	struct stat st;
	ssize_t n;
	off_t from;
	int fd;

	if (stat(path, &st) < 0 || st.st_size < 2 || st.st_size == *size)
		return 0;
	*size = st.st_size;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	from = st.st_size > (off_t)sizeof(tail) - 1 ? st.st_size - (off_t)sizeof(tail) + 1 : 0;
	n = pread(fd, tail, (size_t)(st.st_size - from), from);
	close(fd);
	if (n < 2 || tail[n - 1] != '\n')
		return 0;
	tail[n] = 0;
	if (json)
		return tail[n - 2] == '}';
	return strstr(tail, "\nSUMMARY: portguard:") != NULL;
}

/* Times from the signal to the whole report in the file, polled every
 * 0.5 ms (the resolution of the figure). */
static void signal_report(const char *prefix, int json)
{
	char path[4096];
	struct timespec nap = { 0, 500000 };
	long size = 0;
	int64_t t0, t1;
	int done = 0;

	snprintf(path, sizeof(path), "%s.%d", prefix, (int)getpid());
	t0 = now_ns();
	kill(getpid(), SIGUSR1);
	while (!(done = report_complete(path, json, &size)) && now_ns() - t0 < 60 * 1000000000LL)
		nanosleep(&nap, NULL);
	t1 = now_ns();
	if (done)
		printf("usr1_report_ns=%lld usr1_report_bytes=%ld\n", (long long)(t1 - t0), size);
	else
		printf("usr1_report_ns=timeout\n");
}

static void archive_reports(void)
{
	static const struct {
		int json, sym;
	} kinds[] = { { 0, 0 }, { 0, 1 }, { 1, 0 }, { 1, 1 } };
	char path[] = "/tmp/pgbench.scale.XXXXXX";
	int fd = mkstemp(path);

	if (fd < 0) {
		perror("scale: mkstemp");
		return;
	}
	unlink(path);
	/* The report closes what it opens through libc's own calls, found as
	 * the preloaded library finds them. */
	pg_real_bind();
	for (size_t i = 0; i < PG_ARRAY_LEN(kinds); i++) {
		struct pg_config cfg;
		struct pg_report_opts o;
		struct pg_report_result res;
		struct stat st;
		int64_t t0, t1;

		pg_config_defaults(&cfg);
		cfg.format = kinds[i].json ? PG_FORMAT_JSON : PG_FORMAT_TEXT;
		cfg.symbolize = kinds[i].sym;
		memset(&o, 0, sizeof(o));
		memset(&res, 0, sizeof(res));
		o.cfg = &cfg;
		o.symbolize = cfg.symbolize;
		o.reason = PG_REASON_SIGNAL;
		o.pid = (int)getpid();
		o.exe = "scale";
		o.now_ns = pg_now_coarse_ns();
		o.fd = fd;
		o.kernel = 1;
		if (ftruncate(fd, 0) < 0 || lseek(fd, 0, SEEK_SET) < 0)
			perror("scale: truncate");
		t0 = now_ns();
		pg_report_write(&o, &res);
		t1 = now_ns();
		fstat(fd, &st);
		printf("archive_report_%s_sym%d_ns=%lld bytes=%lld leaked=%llu\n",
		       kinds[i].json ? "json" : "text", kinds[i].sym, (long long)(t1 - t0),
		       (long long)st.st_size, (unsigned long long)res.leaked);
	}
	close(fd);
}

int main(int argc, char **argv)
{
	struct rlimit rl;
	long margin = 100, want, rss0, rss1, soft0;
	size_t b0 = 0, b1 = 0, b2 = 0;
	const char *usr1 = NULL;
	int nest_depth = 32, json = 0, opt;
	int64_t t0, t1;

	while ((opt = getopt(argc, argv, "m:D:u:jad:")) != -1) {
		switch (opt) {
		case 'm': margin = atol(optarg); break;
		case 'D': nest_depth = atoi(optarg); break;
		case 'u': usr1 = optarg; break;
		case 'j': json = 1; break;
		case 'a': archive = 1; break;
		case 'd': depth = atoi(optarg); break;
		default:
			fprintf(stderr,
				"usage: %s [-m MARGIN] [-D NEST] [-u LOG_PREFIX [-j]] | -a [-m "
				"MARGIN] [-D NEST] [-d DEPTH]\n",
				argv[0]);
			return 2;
		}
	}
	if (depth < 1 || depth > PG_MAX_DEPTH)
		depth = 16;
	getrlimit(RLIMIT_NOFILE, &rl);
	soft0 = (long)rl.rlim_cur;
	rl.rlim_cur = rl.rlim_max;
	if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
		perror("scale: setrlimit");
	getrlimit(RLIMIT_NOFILE, &rl);
	printf("nofile_soft_before=%ld nofile_hard=%ld nofile_soft=%ld\n", soft0, (long)rl.rlim_max,
	       (long)rl.rlim_cur);
	want = (long)rl.rlim_cur - margin;
	fds = calloc((size_t)want, sizeof(*fds));
	if (want <= 0 || !fds) {
		fprintf(stderr, "scale: nothing to open\n");
		return 1;
	}
	if (archive) {
		/* The stack table first: the ten stacks, captured through the
		 * same frames as the sockets' below, interned without a record. */
		b0 = pg_arena_in_use();
		intern_only = 1;
		nest(nest_depth, NSITES);
		intern_only = 0;
		b1 = pg_arena_in_use();
	}
	rss0 = rss_bytes();
	b2 = pg_fdtab_bytes();
	t0 = now_ns();
	nest(nest_depth, want);
	t1 = now_ns();
	rss1 = rss_bytes();
	printf("sockets=%ld sites=%d margin=%ld open_ns_per_socket=%.0f\n", nfds, NSITES, margin,
	       (double)(t1 - t0) / (double)(nfds ? nfds : 1));
	printf("rss_before=%ld rss_after=%ld\n", rss0, rss1);
	print_unwinder_libs();
	if (archive) {
		printf("archive_stack_table_bytes=%zu archive_record_bytes=%zu "
		       "archive_bytes_per_record=%.1f tracked=%zu\n",
		       b1 - b0, pg_fdtab_bytes() - b2,
		       (double)(pg_fdtab_bytes() - b2) / (double)(nfds ? nfds : 1),
		       pg_fdtab_size_hint());
		archive_reports();
	}
	if (usr1)
		signal_report(usr1, json);
	fflush(stdout);
	printf("return_ns=%lld\n", (long long)now_ns());
	fflush(stdout);
	return 0;
}
