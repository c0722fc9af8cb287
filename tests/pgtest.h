/* Helpers shared by the tests: run a program under the library, read its
 * reports. Header-only so each test binary stays one file. */
#ifndef PG_TEST_H
#define PG_TEST_H

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define PGT_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* Absolute path of a file of the build tree (tests run from the top). */
static inline const char *pgt_path(const char *rel)
{
	static char buf[8][PATH_MAX];
	static int i;
	char *b = buf[i++ % 8];

	if (!realpath(rel, b))
		snprintf(b, PATH_MAX, "%s", rel);
	return b;
}

static inline char *pgt_tmpdir(void)
{
	char *d = strdup("/tmp/pgtest.XXXXXX");

	if (!mkdtemp(d))
		abort();
	return d;
}

static inline void pgt_rmdir(const char *d)
{
	char cmd[PATH_MAX + 16];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", d);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", d);
}

/* A temporary directory for a group of tests: the variable, and the group
 * setup and teardown that make and remove it. */
#define PGT_GROUP_DIR(var)                        \
	static char *var;                         \
	static int pgt_dir_setup(void **state)    \
	{                                         \
		(void)state;                      \
		var = pgt_tmpdir();               \
		return var ? 0 : -1;              \
	}                                         \
	static int pgt_dir_teardown(void **state) \
	{                                         \
		(void)state;                      \
		pgt_rmdir(var);                   \
		free(var);                        \
		return 0;                         \
	}

static inline char *pgt_read_file(const char *path)
{
	FILE *f = fopen(path, "r");
	char *buf = NULL;
	size_t len = 0, cap = 0, n;

	if (!f)
		return NULL;
	do {
		if (cap - len < 65536) {
			cap = cap ? cap * 2 : 65536;
			buf = realloc(buf, cap + 1);
		}
		n = fread(buf + len, 1, cap - len, f);
		len += n;
	} while (n > 0);
	fclose(f);
	buf[len] = 0;
	return buf;
}

struct pgt_run {
	int pid;
	int status; /* exit code, or 128+signal */
	char *out, *err;
};

/* Runs argv with env entries (NAME=VALUE, NULL-terminated) added, stdin from
 * /dev/null, stdout and stderr captured. preload: put the library in front. */
static inline void pgt_run(struct pgt_run *r, char *const argv[], const char *const env[],
			   int preload)
{
	char outp[] = "/tmp/pgt.out.XXXXXX", errp[] = "/tmp/pgt.err.XXXXXX";
	int ofd = mkstemp(outp), efd = mkstemp(errp), st;
	pid_t pid = fork();

	if (pid == 0) {
		int nul = open("/dev/null", O_RDONLY);
		dup2(nul, 0);
		dup2(ofd, 1);
		dup2(efd, 2);
		close(nul);
		close(ofd);
		close(efd);
		unsetenv("PORTGUARD_OPTIONS");
		unsetenv("LD_PRELOAD");
		if (preload)
			setenv("LD_PRELOAD", pgt_path("build/libportguard.so"), 1);
		for (int i = 0; env && env[i]; i++)
			putenv((char *)env[i]);
		execvp(argv[0], argv);
		_exit(127);
	}
	close(ofd);
	close(efd);
	r->pid = pid;
	waitpid(pid, &st, 0);
	r->status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
	r->out = pgt_read_file(outp);
	r->err = pgt_read_file(errp);
	unlink(outp);
	unlink(errp);
}

static inline void pgt_run_free(struct pgt_run *r)
{
	free(r->out);
	free(r->err);
}

/* The n-th JSON object of a file of JSON lines (skipping event lines when
 * reports_only), or NULL. */
static inline json_t *pgt_json_line(const char *text, int n, int reports_only)
{
	const char *p = text;
	int i = 0;

	while (p && *p) {
		const char *e = strchr(p, '\n');
		size_t len = e ? (size_t)(e - p) : strlen(p);
		json_error_t jerr;
		json_t *j = json_loadb(p, len, 0, &jerr);
		if (j && (!reports_only || !json_object_get(j, "event"))) {
			if (i++ == n)
				return j;
		}
		json_decref(j);
		p = e ? e + 1 : NULL;
	}
	return NULL;
}

static inline long pgt_int(json_t *obj, const char *path)
{
	/* "totals.leaked" */
	char key[128];
	const char *dot;
	json_t *j = obj;

	while (j && (dot = strchr(path, '.'))) {
		snprintf(key, sizeof(key), "%.*s", (int)(dot - path), path);
		j = json_object_get(j, key);
		path = dot + 1;
	}
	j = j ? json_object_get(j, path) : NULL;
	return json_is_integer(j) ? (long)json_integer_value(j) : -1;
}

/* The report file a process wrote under log_path=DIR/r (one process). */
static inline char *pgt_report_in(const char *dir, int pid)
{
	char path[PATH_MAX];

	snprintf(path, sizeof(path), "%s/r.%d", dir, pid);
	return pgt_read_file(path);
}

static inline double pgt_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* The report of reason ("exit"/"signal", NULL: any) number n of process pid
 * under log_path=DIR/r, or NULL. */
static inline json_t *pgt_report_of(const char *dir, int pid, const char *reason, int n)
{
	char *text = pgt_report_in(dir, pid);
	json_t *found = NULL;

	for (int i = 0; text && !found; i++) {
		json_t *j = pgt_json_line(text, i, 1);
		if (!j)
			break;
		if (!reason || !strcmp(json_string_value(json_object_get(j, "reason")), reason)) {
			if (n-- == 0) {
				found = j;
				break;
			}
		}
		json_decref(j);
	}
	free(text);
	return found;
}

/* A program running beside the test: stdin a pipe the test holds (closing
 * it is EOF), stdout a pipe the test reads, stderr a file. */
struct pgt_proc {
	int pid;
	int in, out; /* the test's ends */
	char errpath[32];
	char buf[65536]; /* stdout so far */
	size_t len;
	int status; /* after pgt_proc_finish: exit code, or 128+signal, or -1 */
};

static inline void pgt_spawn(struct pgt_proc *p, char *const argv[], const char *const env[],
			     int preload)
{
	int in[2], out[2], efd;

	memset(p, 0, sizeof(*p));
	snprintf(p->errpath, sizeof(p->errpath), "/tmp/pgt.err.XXXXXX");
	efd = mkstemp(p->errpath);
	if (efd < 0 || pipe(in) || pipe(out))
		abort();
	p->pid = fork();
	if (p->pid == 0) {
		dup2(in[0], 0);
		dup2(out[1], 1);
		dup2(efd, 2);
		close(in[0]);
		close(in[1]);
		close(out[0]);
		close(out[1]);
		close(efd);
		unsetenv("PORTGUARD_OPTIONS");
		unsetenv("LD_PRELOAD");
		if (preload)
			setenv("LD_PRELOAD", pgt_path("build/libportguard.so"), 1);
		for (int i = 0; env && env[i]; i++)
			putenv((char *)env[i]);
		execvp(argv[0], argv);
		_exit(127);
	}
	close(in[0]);
	close(out[1]);
	close(efd);
	p->in = in[1];
	p->out = out[0];
	fcntl(p->out, F_SETFL, O_NONBLOCK);
}

/* Reads what the program wrote so far; 0 at EOF, 1 otherwise. */
static inline int pgt_proc_pump(struct pgt_proc *p, int wait_ms)
{
	struct timespec ts = { 0, (long)wait_ms * 1000000L };
	ssize_t n;

	for (;;) {
		if (p->len + 1 >= sizeof(p->buf))
			return 1;
		n = read(p->out, p->buf + p->len, sizeof(p->buf) - 1 - p->len);
		if (n > 0) {
			p->len += (size_t)n;
			p->buf[p->len] = 0;
			continue;
		}
		if (n == 0)
			return 0;
		if (errno != EAGAIN && errno != EINTR)
			return 0;
		nanosleep(&ts, NULL);
		return 1;
	}
}

/* Waits up to bound_s seconds for text in the program's stdout; returns the
 * seconds it took, or -1 (EOF or the bound). */
static inline double pgt_wait_output(struct pgt_proc *p, const char *text, double bound_s)
{
	double t0 = pgt_now();

	while (!strstr(p->buf, text)) {
		if (pgt_now() - t0 > bound_s || !pgt_proc_pump(p, 5))
			return strstr(p->buf, text) ? pgt_now() - t0 : -1;
	}
	return pgt_now() - t0;
}

/* Closes stdin, reads stdout to EOF and reaps the program, killing it after
 * bound_s seconds (status then 128+SIGKILL, and *hung set). */
static inline int pgt_proc_finish(struct pgt_proc *p, double bound_s, int *hung)
{
	double t0 = pgt_now();
	int st, r;

	if (hung)
		*hung = 0;
	if (p->in >= 0)
		close(p->in);
	p->in = -1;
	for (;;) {
		pgt_proc_pump(p, 5);
		r = waitpid(p->pid, &st, WNOHANG);
		if (r == p->pid)
			break;
		if (pgt_now() - t0 > bound_s) {
			kill(p->pid, SIGKILL);
			waitpid(p->pid, &st, 0);
			if (hung)
				*hung = 1;
			break;
		}
	}
	while (pgt_proc_pump(p, 1) && p->len + 1 < sizeof(p->buf))
		;
	close(p->out);
	p->status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
	return p->status;
}

/* The program's stderr (caller frees); removes the file. */
static inline char *pgt_proc_err(struct pgt_proc *p)
{
	char *e = pgt_read_file(p->errpath);

	unlink(p->errpath);
	return e ? e : calloc(1, 1);
}

/* Waits up to bound_s seconds until path exists with at least lines
 * complete lines; returns the seconds it took, or -1. */
static inline double pgt_wait_lines(const char *path, int lines, double bound_s)
{
	double t0 = pgt_now();
	struct timespec ts = { 0, 5000000 };

	for (;;) {
		char *t = pgt_read_file(path);
		int n = 0;
		for (char *q = t; q && (q = strchr(q, '\n')); q++)
			n++;
		free(t);
		if (n >= lines)
			return pgt_now() - t0;
		if (pgt_now() - t0 > bound_s)
			return -1;
		nanosleep(&ts, NULL);
	}
}

/* Checks the accounting identity of a report object. */
static inline int pgt_adds_up(json_t *rep)
{
	long cr = pgt_int(rep, "totals.created"), in = pgt_int(rep, "totals.inherited"),
	     rc = pgt_int(rep, "totals.received"), un = pgt_int(rep, "totals.untracked"),
	     cl = pgt_int(rep, "totals.closed"), cu = pgt_int(rep, "totals.closed_unseen"),
	     op = pgt_int(rep, "totals.open");

	if (cr < 0 || in < 0 || rc < 0 || un < 0 || cl < 0 || cu < 0 || op < 0)
		return 0;
	return cr + in + rc + un == cl + cu + op;
}

#endif
