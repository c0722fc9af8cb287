#include "shim/output.h"

#include "shim/progfd.h"
#include "shim/real.h"

#include "shim/out.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

void pg_output_remember_std(struct pg_output *d)
{
	struct stat st;
	const char *tmp = getenv("TMPDIR");

	/* Read now: a daemon may rewrite its environment later. */
	snprintf(d->tmpdir, sizeof(d->tmpdir), "%s", tmp && tmp[0] == '/' ? tmp : "/tmp");

	for (int fd = 1; fd <= 2; fd++) {
		d->std_ok[fd] = fstat(fd, &st) == 0;
		if (d->std_ok[fd]) {
			d->std_dev[fd] = st.st_dev;
			d->std_ino[fd] = st.st_ino;
		}
	}
}

/* The program's fd 1 or 2 here, if it is still the stream it was. */
static int std_fd(const struct pg_output *d, int fd)
{
	struct stat st;
	int here;

	if (!d->std_ok[fd] || (here = pg_progfd_get(fd)) < 0)
		return -1;
	if (fstat(here, &st) < 0 || st.st_dev != d->std_dev[fd] || st.st_ino != d->std_ino[fd]) {
		pg_progfd_put(here);
		return -1;
	}
	return here;
}

int pg_output_path(const char *log_path, int pid, char *out, size_t size)
{
	const char *p = strstr(log_path, "%p");
	int n;

	if (p)
		n = snprintf(out, size, "%.*s%d%s", (int)(p - log_path), log_path, pid, p + 2);
	else
		n = snprintf(out, size, "%s.%d", log_path, pid);
	return n < 0 || (size_t)n >= size ? -ENAMETOOLONG : 0;
}

/* First report of this process: a new file, never an existing one; if the
 * name is taken (an earlier process with our pid), the first free NAME.N. */
static int create_file(struct pg_output *d, const char *base, const char **why)
{
	char name[sizeof(d->chosen)];
	struct stat st;

	for (int i = 0; i < 1000; i++) {
		int n = i == 0 ? snprintf(name, sizeof(name), "%s", base)
			       : snprintf(name, sizeof(name), "%s.%d", base, i);
		if (n < 0 || (size_t)n >= sizeof(name)) {
			*why = "the name is too long";
			return -1;
		}
		int fd = open(name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
		if (fd >= 0) {
			snprintf(d->chosen, sizeof(d->chosen), "%s", name);
			return fd;
		}
		if (errno != EEXIST) {
			*why = strerror(errno);
			return -1;
		}
		/* O_EXCL never follows a link, but a link there means someone
		 * expects us to write through it: refuse. */
		if (i == 0 && lstat(name, &st) == 0 && S_ISLNK(st.st_mode)) {
			*why = "it is a symbolic link";
			return -1;
		}
	}
	*why = "no free name";
	return -1;
}

/* Later reports append, but only to a regular file of ours. */
static int append_file(const char *name, const char **why)
{
	struct stat st;
	/* O_NONBLOCK: a FIFO put in its place must not hang the program. */
	int fd = open(name, O_WRONLY | O_APPEND | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);

	if (fd < 0) {
		*why = strerror(errno);
		return -1;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_uid != geteuid()) {
		*why = "it is no longer a regular file of ours";
		pg_real.close(fd);
		return -1;
	}
	return fd;
}

/* A report that cannot go where it was asked to goes to
 * $TMPDIR/portguard.PID (SPEC section 4), created as report files are; one
 * line names it, on stderr if stderr is still the program's. */
static int fallback(struct pg_output *d, int pid, const char *what, const char *why)
{
	char base[sizeof(d->chosen)];
	const char *why2 = NULL;
	int fd;

	if (d->fallback[0]) {
		fd = append_file(d->fallback, &why2);
		if (fd >= 0) {
			d->file = 1;
			return fd;
		}
	}
	snprintf(base, sizeof(base), "%s/portguard.%d", d->tmpdir, pid);
	fd = create_file(d, base, &why2);
	if (fd >= 0) {
		snprintf(d->fallback, sizeof(d->fallback), "%s", d->chosen);
		d->chosen[0] = 0;
		d->file = 1;
		if (!d->warned) {
			d->warned = 1;
			pg_warn("%s: %s; reports go to %s", what, why, d->fallback);
		}
		return fd;
	}
	if (!d->warned) {
		d->warned = 1;
		pg_warn("%s: %s, and %s: %s; no report written", what, why, base, why2);
	}
	return -1;
}

static void new_process(struct pg_output *d, int pid)
{
	if (d->pid != pid) {
		d->pid = pid;
		d->chosen[0] = 0;
		d->fallback[0] = 0;
		d->warned = 0;
	}
}

int pg_output_open(struct pg_output *d, const struct pg_config *c, int pid)
{
	char base[sizeof(d->chosen)];
	const char *why = NULL;
	int fd;

	d->file = 0;
	new_process(d, pid);
	if (c->dest == PG_DEST_STDOUT || c->dest == PG_DEST_STDERR) {
		int which = c->dest == PG_DEST_STDOUT ? 1 : 2;
		fd = std_fd(d, which);
		if (fd >= 0)
			return fd;
		return fallback(d, pid, which == 1 ? "stdout" : "stderr",
				"no longer the stream it was at start");
	}
	if (d->chosen[0]) {
		fd = append_file(d->chosen, &why);
		if (fd >= 0) {
			d->file = 1;
			return fd;
		}
		snprintf(base, sizeof(base), "%s", d->chosen);
	} else if (pg_output_path(c->log_path, pid, base, sizeof(base)) < 0) {
		why = "the name is too long";
	} else {
		fd = create_file(d, base, &why);
		if (fd >= 0) {
			d->file = 1;
			return fd;
		}
	}
	{
		char what[sizeof(base) + 32];
		snprintf(what, sizeof(what), "log_path: cannot write %s", base);
		return fallback(d, pid, what, why);
	}
}

void pg_output_close(struct pg_output *d, int fd)
{
	if (fd < 0)
		return;
	if (d->file)
		pg_real.close(fd);
	else
		pg_progfd_put(fd);
}
