/* portguard dump: a running process's report now, on our own stdout.
 *
 * No signal: the library's thread in the process polls, once a second, for
 * a request file, /tmp/portguard-dump.PID in the process's own root (so a
 * systemd PrivateTmp is reached through /proc/PID/root), and answers with
 * the report in /tmp/portguard-dump.PID.NONCE, which we print and remove
 * (shim/reporter.c). Nothing of the program's runs, is interrupted or is
 * swallowed, whatever it does with its signals, its environment or its
 * stderr. */
#include "tools/cli.h"
#include "tools/cmd.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static const char usage[] =
    "usage: portguard dump [--json] [--timeout S] PID\n"
    "\n"
    "Prints the report of process PID, which must have loaded libportguard,\n"
    "on standard output: the sockets it has open now, by call site. The\n"
    "process's own reports (log_path, stderr) are not touched, and no signal\n"
    "is sent: its handlers, its calls and its signals are its own.\n"
    "\n"
    "  --json          the report as one JSON object (reason \"dump\")\n"
    "  --timeout S     wait at most S seconds for it (default 5)\n"
    "  -h, --help      this text\n"
    "\n"
    "Exit status: 0 the report was printed; 1 no such process, not permitted,\n"
    "the process has not loaded libportguard or has no report to give yet, or\n"
    "no report within the timeout; 2 bad arguments.\n";

static const struct option longopts[] = {
	{ "json", no_argument, NULL, 'j' },
	{ "timeout", required_argument, NULL, 't' },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

struct pg_target {
	long pid;
	char comm[64];
};

static void read_comm(struct pg_target *t)
{
	char path[64];
	long n;

	snprintf(path, sizeof(path), "/proc/%ld/comm", t->pid);
	n = pg_cli_read_small(path, t->comm, sizeof(t->comm));
	if (n <= 0)
		snprintf(t->comm, sizeof(t->comm), "?");
	else
		t->comm[strcspn(t->comm, "\n")] = '\0';
}

static int is_zombie(const struct pg_target *t)
{
	char path[64], buf[1024];
	const char *p;

	snprintf(path, sizeof(path), "/proc/%ld/stat", t->pid);
	if (pg_cli_read_small(path, buf, sizeof(buf)) <= 0)
		return 0;
	/* The state follows the last ')': comm may hold parentheses itself. */
	p = strrchr(buf, ')');
	return p && p[1] == ' ' && (p[2] == 'Z' || p[2] == 'X');
}

/* 1: a mapping's file name starts with "libportguard"; 0: none; -errno. */
static int has_library(const struct pg_target *t)
{
	char path[64], *line = NULL;
	size_t cap = 0;
	int found = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%ld/maps", t->pid);
	f = fopen(path, "re");
	if (!f)
		return -errno;
	errno = 0;
	while (!found && getline(&line, &cap, f) > 0) {
		char *name = strchr(line, '/'), *base;
		if (!name)
			continue;
		base = strrchr(name, '/') + 1;
		found = strncmp(base, "libportguard", 12) == 0 && strstr(base, ".so");
	}
	/* Reading maps of another user's process fails at the first read. */
	if (!found && ferror(f)) {
		int e = errno ? errno : EIO;
		free(line);
		fclose(f);
		return -e;
	}
	free(line);
	fclose(f);
	return found;
}

/* Whether the library's report thread (named "portguard") runs in the
 * process: it starts with the first socket, so a process that has made none
 * yet answers at its first socket or with its exit report. -1: cannot tell. */
static int has_report_thread(const struct pg_target *t)
{
	char path[64], comm[32];
	struct dirent *d;
	DIR *dir;
	int found = 0;

	snprintf(path, sizeof(path), "/proc/%ld/task", t->pid);
	dir = opendir(path);
	if (!dir)
		return -1;
	while (!found && (d = readdir(dir))) {
		int fd;
		ssize_t n;

		if (d->d_name[0] < '0' || d->d_name[0] > '9')
			continue;
		snprintf(path, sizeof(path), "/proc/%ld/task/%.20s/comm", t->pid, d->d_name);
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			continue;
		n = read(fd, comm, sizeof(comm) - 1);
		close(fd);
		found = n > 0 && !strncmp(comm, "portguard\n", 10);
	}
	closedir(dir);
	return found;
}

/* The pid the process knows itself by (the last NSpid field: inside a
 * container's pid namespace it differs from ours); its request file is
 * named with it. */
static long own_pid(const struct pg_target *t)
{
	char path[64], buf[4096], *p, *end;
	long last = t->pid;

	snprintf(path, sizeof(path), "/proc/%ld/status", t->pid);
	if (pg_cli_read_small(path, buf, sizeof(buf)) <= 0 || !(p = strstr(buf, "\nNSpid:")))
		return last;
	p += 8;
	for (;;) {
		long v = strtol(p, &end, 10);
		if (end == p)
			break;
		last = v;
		p = end;
	}
	return last;
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Copies the answer to stdout if it is a regular file of the process's
 * user (not something put there by another). 0, or -1. */
static int print_answer(const char *path, uid_t owner)
{
	char buf[65536];
	struct stat st;
	ssize_t n;
	int fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);

	if (fd < 0)
		return -1;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_uid != owner) {
		close(fd);
		return -1;
	}
	while ((n = read(fd, buf, sizeof(buf))) > 0)
		if (fwrite(buf, 1, (size_t)n, stdout) != (size_t)n)
			break;
	close(fd);
	return fflush(stdout) == 0 ? 0 : -1;
}

int pg_cmd_dump(int argc, char **argv)
{
	struct pg_target t = { 0 };
	double timeout = 5, t0;
	int c, json = 0, r, fd, printed = -1;
	unsigned char rnd[8];
	char nonce[17], dir[64], req[128], tmp[160], ans[160], line[96];
	struct stat st, proc;

	opterr = 0;
	while ((c = getopt_long(argc, argv, ":jt:h", longopts, NULL)) != -1) {
		switch (c) {
		case 'j': json = 1; break;
		case 't':
			if (pg_cli_parse_double(optarg, 0.1, 3600, &timeout))
				return pg_cli_usage_error(
				    usage, "--timeout: '%s' is not a number of seconds (0.1-3600)",
				    optarg);
			break;
		case 'h': fputs(usage, stdout); return 0;
		case ':':
			return pg_cli_usage_error(usage, "option '%s' needs an argument",
						  argv[optind - 1]);
		default: return pg_cli_usage_error(usage, "unknown option '%s'", argv[optind - 1]);
		}
	}
	if (optind != argc - 1)
		return pg_cli_usage_error(usage, optind == argc ? "no PID given" : "one PID only");
	if (pg_cli_parse_long(argv[optind], 1, INT32_MAX, &t.pid))
		return pg_cli_usage_error(usage, "'%s' is not a process id", argv[optind]);

	snprintf(dir, sizeof(dir), "/proc/%ld", t.pid);
	if (stat(dir, &proc) < 0) {
		pg_cli_warn("no process with pid %ld", t.pid);
		return 1;
	}
	read_comm(&t);
	if (is_zombie(&t)) {
		pg_cli_warn("pid %ld (%s) has exited and is waiting for its parent", t.pid, t.comm);
		return 1;
	}
	r = has_library(&t);
	if (r < 0) {
		pg_cli_warn("may not ask pid %ld (%s): cannot read /proc/%ld/maps: %s", t.pid,
			    t.comm, t.pid, strerror(-r));
		return 1;
	}
	if (r == 0) {
		pg_cli_warn("pid %ld (%s) has not loaded libportguard", t.pid, t.comm);
		return 1;
	}
	if (has_report_thread(&t) == 0) {
		pg_cli_warn("pid %ld (%s) has not created a socket yet: the library's thread, "
			    "which answers, starts with the first one",
			    t.pid, t.comm);
		return 1;
	}
	/* The process's /tmp, as it sees it. */
	snprintf(dir, sizeof(dir), "/proc/%ld/root/tmp", t.pid);
	if (stat(dir, &st) < 0 || access(dir, W_OK) < 0) {
		pg_cli_warn("may not ask pid %ld (%s): %s: %s", t.pid, t.comm, dir,
			    strerror(errno));
		return 1;
	}
	if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd)) {
		uint64_t x = (uint64_t)now_s() * 1000003u ^ (uint64_t)getpid();
		memcpy(rnd, &x, sizeof(rnd));
	}
	for (int i = 0; i < 8; i++)
		snprintf(nonce + 2 * i, 3, "%02x", rnd[i]);
	snprintf(req, sizeof(req), "%s/portguard-dump.%ld", dir, own_pid(&t));
	snprintf(tmp, sizeof(tmp), "%s.%s.req", req, nonce);
	snprintf(ans, sizeof(ans), "%s.%s", req, nonce);
	snprintf(line, sizeof(line), "portguard-dump 1 %s %s\n", nonce, json ? "json" : "text");
	/* Written whole, then renamed into place: never read half-written.
	 * Readable by the process's user (a root dump of another user's). */
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
	if (fd < 0 || write(fd, line, strlen(line)) != (ssize_t)strlen(line) || close(fd) < 0 ||
	    rename(tmp, req) < 0) {
		pg_cli_warn("may not ask pid %ld (%s): %s: %s", t.pid, t.comm, req,
			    strerror(errno));
		unlink(tmp);
		return 1;
	}
	t0 = now_s();
	while (now_s() - t0 < timeout) {
		struct timespec ts = { 0, 20 * 1000 * 1000 };
		if (access(ans, F_OK) == 0) {
			printed = print_answer(ans, proc.st_uid);
			break;
		}
		if (stat(dir, &st) < 0)
			break; /* it has exited */
		nanosleep(&ts, NULL);
	}
	unlink(req);
	unlink(ans);
	if (printed == 0)
		return 0;
	if (printed < 0 && access(dir, F_OK) == 0 && now_s() - t0 >= timeout)
		pg_cli_warn("pid %ld (%s) gave no report within %.1f s", t.pid, t.comm, timeout);
	else if (printed < 0 && access(dir, F_OK) < 0)
		pg_cli_warn("pid %ld (%s) exited before it answered", t.pid, t.comm);
	else
		pg_cli_warn("pid %ld (%s): its answer %s is not a file of its own", t.pid, t.comm,
			    ans);
	return 1;
}
