/* portguard dump: ask a running process for a report now.
 *
 * The report signal's default action kills a process that has no handler for
 * it, so before sending anything we make sure, in /proc/PID, that the process
 * has loaded libportguard and catches (or blocks) the signal. A pidfd taken
 * first keeps a recycled pid from receiving the signal meant for the one we
 * checked. */
#include "tools/cli.h"
#include "tools/cmd.h"
#include "common/names.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

static const char usage[] =
    "usage: portguard dump [-s SIGNAL] PID\n"
    "\n"
    "Asks process PID, which must have loaded libportguard, for a report of\n"
    "the sockets it has open now. The report goes where the process's\n"
    "PORTGUARD_OPTIONS send it (log_path, stderr by default).\n"
    "\n"
    "  -s, --signal SIGNAL  the signal to send: USR1, USR2, RTMIN+3, a number;\n"
    "                       default: the process's report_signal, else USR1\n"
    "  -h, --help           this text\n"
    "\n"
    "Exit status: 0 the signal was sent; 1 no such process, not permitted, or\n"
    "the process has not loaded libportguard or does not catch the signal\n"
    "(it would be killed); 2 bad arguments.\n";

static const struct option longopts[] = {
	{ "signal", required_argument, NULL, 's' },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

struct pg_target {
	long pid;
	int pidfd; /* -1 when pidfd_open is unavailable */
	char comm[64];
	char log_path[256]; /* from its PORTGUARD_OPTIONS, "" when unknown */
	int signal; /* its report_signal; -1 unknown, 0 none */
};

static int send_signal(struct pg_target *t, int sig)
{
	if (t->pidfd >= 0)
		return (int)syscall(SYS_pidfd_send_signal, t->pidfd, sig, NULL, 0);
	return kill((pid_t)t->pid, sig);
}

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

/* Its PORTGUARD_OPTIONS as set at exec, split and read as the library reads
 * them (common/names.c): report_signal and log_path, the last occurrence
 * winning; a signal the library refuses leaves the value before it. */
static void on_option(const char *key, const char *val, void *arg)
{
	struct pg_target *t = arg;
	int sig;

	if (strcmp(key, "report_signal") == 0) {
		sig = pg_names_signal(val);
		if (sig == 0 || (sig > 0 && !pg_names_signal_refused(sig)))
			t->signal = sig;
	} else if (strcmp(key, "log_path") == 0) {
		snprintf(t->log_path, sizeof(t->log_path), "%s", val);
	}
}

static void parse_options(struct pg_target *t, const char *s)
{
	const struct pg_names_opt_cb cb = { on_option, NULL, t };

	pg_names_options(s, 4096, &cb);
}

static void read_options(struct pg_target *t)
{
	char path[64], *env = NULL, *p, *end;
	size_t cap = 0, len = 0;
	ssize_t n;
	int fd;

	t->signal = -1;
	snprintf(path, sizeof(path), "/proc/%ld/environ", t->pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	for (;;) {
		if (len + 4096 + 1 > cap) {
			cap = cap ? cap * 2 : 16384;
			env = pg_cli_realloc(env, cap);
		}
		n = read(fd, env + len, cap - len - 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		len += (size_t)n;
	}
	close(fd);
	if (!env)
		return;
	env[len] = '\0';
	t->signal = SIGUSR1;
	for (p = env, end = env + len; p < end; p += strlen(p) + 1)
		if (strncmp(p, "PORTGUARD_OPTIONS=", 18) == 0)
			parse_options(t, p + 18);
	free(env);
}

/* Bit sig-1 of one of the "Sig*:" masks of /proc/PID/status; -1 unknown. */
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

static int status_mask_has(const struct pg_target *t, const char *key, int sig)
{
	char path[64], buf[4096], *p;
	uint64_t mask;

	snprintf(path, sizeof(path), "/proc/%ld/status", t->pid);
	if (pg_cli_read_small(path, buf, sizeof(buf)) <= 0)
		return -1;
	p = strstr(buf, key);
	if (!p)
		return -1;
	mask = strtoull(p + strlen(key), NULL, 16);
	return sig <= 64 ? (int)((mask >> (sig - 1)) & 1) : -1;
}

int pg_cmd_dump(int argc, char **argv)
{
	struct pg_target t = { .pidfd = -1 };
	char name[32];
	int c, sig = 0, r, caught, blocked, ignored;
	struct stat st;
	char path[64];

	opterr = 0;
	while ((c = getopt_long(argc, argv, ":s:h", longopts, NULL)) != -1) {
		switch (c) {
		case 's':
			sig = pg_names_signal(optarg);
			if (sig <= 0)
				return pg_cli_usage_error(usage, "'%s' is not a signal", optarg);
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
	/* 0 and negative numbers would signal whole process groups. */
	if (pg_cli_parse_long(argv[optind], 1, INT32_MAX, &t.pid))
		return pg_cli_usage_error(usage, "'%s' is not a process id", argv[optind]);

	t.pidfd = (int)syscall(SYS_pidfd_open, (pid_t)t.pid, 0);
	if (t.pidfd < 0 && errno == ESRCH) {
		pg_cli_warn("no process with pid %ld", t.pid);
		return 1;
	}
	snprintf(path, sizeof(path), "/proc/%ld", t.pid);
	if (stat(path, &st) < 0) {
		pg_cli_warn("no process with pid %ld", t.pid);
		return 1;
	}
	read_comm(&t);
	if (is_zombie(&t)) {
		pg_cli_warn("pid %ld (%s) has exited and is waiting for its parent", t.pid, t.comm);
		return 1;
	}
	if (send_signal(&t, 0) < 0) {
		pg_cli_warn("may not signal pid %ld (%s): %s", t.pid, t.comm,
			    errno == ESRCH ? "it has exited" : strerror(errno));
		return 1;
	}
	r = has_library(&t);
	if (r < 0) {
		pg_cli_warn("cannot read /proc/%ld/maps (%s) to check that pid %ld (%s) has loaded "
			    "libportguard; not signalling it",
			    t.pid, strerror(-r), t.pid, t.comm);
		return 1;
	}
	if (r == 0) {
		pg_cli_warn("pid %ld (%s) has not loaded libportguard; not signalling it "
			    "(the signal would kill it)",
			    t.pid, t.comm);
		return 1;
	}

	read_options(&t);
	if (!sig) {
		if (t.signal == 0) {
			pg_cli_warn("pid %ld (%s) runs with report_signal=0: it makes no report "
				    "on a signal",
				    t.pid, t.comm);
			return 1;
		}
		sig = t.signal > 0 ? t.signal : SIGUSR1;
	}
	pg_names_signal_format(sig, name, sizeof(name));
	ignored = status_mask_has(&t, "SigIgn:", sig);
	caught = status_mask_has(&t, "SigCgt:", sig);
	blocked = status_mask_has(&t, "SigBlk:", sig);
	if (ignored == 1) {
		pg_cli_warn("pid %ld (%s) ignores SIG%s: it would make no report", t.pid, t.comm,
			    name);
		return 1;
	}
	/* Neither caught nor blocked: the default action (death, for USR1 and
	 * the real-time signals) is what the signal would do. */
	if (caught == 0 && blocked == 0) {
		pg_cli_warn("pid %ld (%s) does not catch SIG%s (its report_signal is another?); "
			    "not signalling it, the signal would kill it",
			    t.pid, t.comm, name);
		return 1;
	}
	if (send_signal(&t, sig) < 0) {
		pg_cli_warn("cannot signal pid %ld (%s): %s", t.pid, t.comm,
			    errno == ESRCH ? "it has exited" : strerror(errno));
		return 1;
	}
	if (t.log_path[0])
		pg_cli_warn("sent SIG%s to pid %ld (%s); its reports go to log_path=%s", name,
			    t.pid, t.comm, t.log_path);
	else
		pg_cli_warn("sent SIG%s to pid %ld (%s)", name, t.pid, t.comm);
	if (has_report_thread(&t) == 0)
		pg_cli_warn("pid %ld has not created a socket yet, so it has no report thread: "
			    "it will answer at its first socket, or with its exit report",
			    t.pid);
	if (t.pidfd >= 0)
		close(t.pidfd);
	return 0;
}
