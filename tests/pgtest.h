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

static inline char *pgt_read_file(const char *path)
{
	FILE *f = fopen(path, "r");
	char *buf = NULL;
	size_t len = 0, cap = 0;
	int c;

	if (!f)
		return NULL;
	while ((c = fgetc(f)) != EOF) {
		if (len + 2 > cap) {
			cap = cap ? cap * 2 : 4096;
			buf = realloc(buf, cap);
		}
		buf[len++] = (char)c;
	}
	fclose(f);
	if (!buf)
		buf = calloc(1, 1);
	else
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

/* Checks the accounting identity of a report object. */
static inline int pgt_adds_up(json_t *rep)
{
	long cr = pgt_int(rep, "totals.created"), in = pgt_int(rep, "totals.inherited"),
	     un = pgt_int(rep, "totals.untracked"), cl = pgt_int(rep, "totals.closed"),
	     cu = pgt_int(rep, "totals.closed_unseen"), op = pgt_int(rep, "totals.open");

	if (cr < 0 || in < 0 || un < 0 || cl < 0 || cu < 0 || op < 0)
		return 0;
	return cr + in + un == cl + cu + op;
}

#endif
