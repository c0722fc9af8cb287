/*
 * bench/sim.c: the registry and the report writer past what one machine can
 * open: N synthetic sockets (fake descriptors and inodes; default 1,000,000)
 * from S call sites (default 1,000; 16 fake frames each), driven through
 * the functions of build/libportguard.a directly.
 *
 *   build/bench/sim [-n SOCKETS] [-s SITES] [-r ROUNDS] [-o DIR]
 *
 * Per round, each step timed on its own: intern the sites; insert every
 * socket (pg_registry_add); look every descriptor up in a scattered order
 * (pg_registry_is_tracked); write the report (kernel=0, symbolize=0) in text
 * and in JSON, to /dev/null and to a file in DIR (default /tmp); remove
 * every socket (pg_registry_close_begin + close_end, as close() does).
 * Memory: pg_arena_in_use for the call sites, pg_fdtab_bytes for records and slots
 * before and after. The registry is reset between rounds. Prints one
 * key=value line per round and one of medians. Prints figures only.
 */
#include "shim/common.h"
#include "shim/config.h"
#include "shim/arena.h"
#include "shim/fdtab.h"
#include "shim/sites.h"
#include "shim/report.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define DEPTH 16
#define FD_BASE 1000 /* fake descriptors: FD_BASE, FD_BASE + 1, ... */

enum {
	M_INTERN,
	M_INSERT,
	M_LOOKUP,
	M_TEXT_NULL,
	M_JSON_NULL,
	M_TEXT_FILE,
	M_JSON_FILE,
	M_REMOVE,
	M_SITE_BYTES,
	M_REC_BYTES,
	M_TOMB_BYTES,
	M_TEXT_SIZE,
	M_JSON_SIZE,
	NM
};
static const char *const mname[NM] = {
	"intern_ns_per_site",
	"insert_ns_per_op",
	"lookup_ns_per_op",
	"report_text_devnull_ms",
	"report_json_devnull_ms",
	"report_text_file_ms",
	"report_json_file_ms",
	"remove_ns_per_op",
	"site_table_bytes",
	"bytes_per_record",
	"bytes_after_remove_per_record",
	"report_text_bytes",
	"report_json_bytes",
};

static int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static uint64_t rng = 0x853c49e6748fea9bull;

static uint64_t next_rand(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static double median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof(*v), cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* Writes one report; returns ms, *size the bytes written (files only). */
static double report(int json, int fd, long *size)
{
	struct pg_config cfg;
	struct pg_report_opts o;
	struct pg_report_result res;
	struct stat st;
	int64_t t0, t1;

	pg_config_defaults(&cfg);
	cfg.format = json ? PG_FORMAT_JSON : PG_FORMAT_TEXT;
	cfg.symbolize = 0;
	memset(&o, 0, sizeof(o));
	memset(&res, 0, sizeof(res));
	o.cfg = &cfg;
	o.symbolize = cfg.symbolize;
	o.reason = PG_REASON_EXIT;
	o.pid = (int)getpid();
	o.exe = "sim";
	o.now_ns = pg_now_coarse_ns();
	o.fd = fd;
	o.kernel = 0;
	if (ftruncate(fd, 0) == 0)
		lseek(fd, 0, SEEK_SET);
	t0 = now_ns();
	if (pg_report_write(&o, &res) < 0)
		fprintf(stderr, "sim: pg_report_write failed\n");
	t1 = now_ns();
	if (size && fstat(fd, &st) == 0 && S_ISREG(st.st_mode))
		*size = (long)st.st_size;
	return (double)(t1 - t0) / 1e6;
}

static void round_once(long n, int nsites, const char *dir, double *m)
{
	uint32_t *site = calloc((size_t)nsites, sizeof(*site));
	uintptr_t frames[DEPTH];
	size_t b0, b1, b2;
	int64_t t0, t1;
	long hits = 0, size = 0;
	char path[4096];
	int devnull = open("/dev/null", O_WRONLY | O_CLOEXEC), fd;

	snprintf(path, sizeof(path), "%s/pgbench.sim.XXXXXX", dir);
	fd = mkstemp(path);
	if (!site || devnull < 0 || fd < 0) {
		perror("sim: setup");
		exit(1);
	}
	unlink(path);
	pg_fdtab_reset();
	pg_sites_reset();

	/* Fake return addresses, as a PIE program and its libraries have. */
	b0 = pg_arena_in_use();
	t0 = now_ns();
	for (int s = 0; s < nsites; s++) {
		for (int i = 0; i < DEPTH; i++)
			frames[i] = 0x555555554000u + (next_rand() & 0xffffff);
		site[s] = pg_sites_intern(frames, DEPTH);
		if (!site[s]) {
			fprintf(stderr, "sim: out of memory\n");
			exit(1);
		}
	}
	t1 = now_ns();
	b1 = pg_arena_in_use();
	m[M_INTERN] = (double)(t1 - t0) / nsites;
	m[M_SITE_BYTES] = (double)(b1 - b0);
	b1 = pg_fdtab_bytes();

	t0 = now_ns();
	for (long i = 0; i < n; i++) {
		struct pg_sock_facts f = { 100000000u + (uint64_t)i,
					   pg_now_coarse_ns(),
					   site[i % nsites],
					   AF_INET,
					   SOCK_STREAM,
					   6,
					   0,
					   PG_VIA_SOCKET };
		struct pg_fdtab_gone gone;
		pg_fdtab_add((int)(FD_BASE + i), &f, &gone);
	}
	t1 = now_ns();
	b2 = pg_fdtab_bytes();
	m[M_INSERT] = (double)(t1 - t0) / n;
	m[M_REC_BYTES] = (double)(b2 - b1) / n;

	/* A scattered order: i * a large odd number mod n visits each once
	 * when gcd(step, n) == 1; otherwise some twice, which does not matter. */
	t0 = now_ns();
	for (long i = 0; i < n; i++)
		hits +=
		    pg_fdtab_tracked((int)(FD_BASE + (long)(((uint64_t)i * 7919u) % (uint64_t)n)));
	t1 = now_ns();
	m[M_LOOKUP] = (double)(t1 - t0) / n;
	if (hits != n)
		fprintf(stderr, "sim: lookup found %ld of %ld\n", hits, n);

	m[M_TEXT_NULL] = report(0, devnull, NULL);
	m[M_JSON_NULL] = report(1, devnull, NULL);
	m[M_TEXT_FILE] = report(0, fd, &size);
	m[M_TEXT_SIZE] = (double)size;
	m[M_JSON_FILE] = report(1, fd, &size);
	m[M_JSON_SIZE] = (double)size;

	t0 = now_ns();
	for (long i = 0; i < n; i++) {
		struct pg_fdtab_close c;
		struct pg_fdtab_gone gone;
		if (pg_fdtab_close_begin((int)(FD_BASE + i), &c, 0) == PG_ENTRY_LIVE)
			pg_fdtab_close_end(&c, PG_CLOSED, c.site, &gone);
	}
	t1 = now_ns();
	m[M_REMOVE] = (double)(t1 - t0) / n;
	/* Closed descriptors stay as tombstones (double-close detection). */
	m[M_TOMB_BYTES] = (double)(pg_fdtab_bytes() - b1) / n;

	close(fd);
	close(devnull);
	free(site);
}

int main(int argc, char **argv)
{
	long n = 1000000;
	int nsites = 1000, rounds = 3, opt;
	const char *dir = "/tmp";
	double(*m)[NM];

	while ((opt = getopt(argc, argv, "n:s:r:o:")) != -1) {
		switch (opt) {
		case 'n': n = atol(optarg); break;
		case 's': nsites = atoi(optarg); break;
		case 'r': rounds = atoi(optarg); break;
		case 'o': dir = optarg; break;
		default:
			fprintf(stderr, "usage: %s [-n SOCKETS] [-s SITES] [-r ROUNDS] [-o DIR]\n",
				argv[0]);
			return 2;
		}
	}
	if (n < 1 || nsites < 1 || rounds < 1)
		return 2;
	m = calloc((size_t)rounds, sizeof(*m));
	if (!m)
		return 1;
	printf("sim: sockets=%ld sites=%d depth=%d rounds=%d\n", n, nsites, DEPTH, rounds);
	for (int r = 0; r < rounds; r++) {
		round_once(n, nsites, dir, m[r]);
		printf("round=%d", r + 1);
		for (int k = 0; k < NM; k++)
			printf(" %s=%.1f", mname[k], m[r][k]);
		printf("\n");
		fflush(stdout);
	}
	printf("median");
	for (int k = 0; k < NM; k++) {
		double v[rounds];
		for (int r = 0; r < rounds; r++)
			v[r] = m[r][k];
		printf(" %s=%.1f", mname[k], median(v, rounds));
	}
	printf("\n");
	free(m);
	return 0;
}
