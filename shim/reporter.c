/* The library's thread and the reports (shim/reporter.h).
 *
 * The thread blocks every signal, works in a descriptor table of its own,
 * and does not count among glibc's threads (__nptl_nthreads): when the
 * program's last thread ends (main having called pthread_exit), glibc calls
 * exit(0) in it as it would without us, and the exit report is written. It
 * wakes on requests (shim/signals.h) and at least once a second, when it
 * also sets memory aside for the next report. The exit report is asked of
 * it too, by the exiting thread, which waits: the exiting thread keeps its
 * own table (the program's exit handlers and stdio run on in it). */
#include "shim/reporter.h"

#include "shim/arena.h"
#include "shim/common.h"
#include "shim/core.h"
#include "shim/enforce.h"
#include "shim/events.h"
#include "shim/fdtab.h"
#include "shim/locks.h"
#include "shim/out.h"
#include "shim/output.h"
#include "shim/progfd.h"
#include "shim/real.h"
#include "shim/report.h"
#include "shim/signals.h"
#include "shim/sites.h"
#include "shim/stack.h"
#include "shim/suppress.h"
#include "shim/symbolize.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdio.h>
#include <stdio_ext.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/prctl.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

static struct pg_output output;
static struct pg_suppress *supp;
static int running; /* the thread runs */
int pg_reporter_settled;
static int exit_started, exit_done;
static sem_t exit_sem; /* the thread says: the exit report is written */
static struct pg_report_result exit_res;
static int exit_res_ok;
/* Memory for the next report, set aside ahead (grown by the thread). */
static void *reserve;
static size_t reserve_size;
static unsigned *nptl_nthreads; /* glibc's count of threads */

static void load_suppressions(const struct pg_config *cfg)
{
	char err[512];
	size_t len = 0;
	const char *why;
	char *text;

	if (!cfg->suppressions[0])
		return;
	text = pg_read_file(cfg->suppressions, 16 << 20, &len, &why);
	if (!text) {
		pg_warn("suppressions: cannot read %s: %s", cfg->suppressions, why);
		return;
	}
	if (pg_suppress_parse(text, len, cfg->suppressions, &supp, err, sizeof(err)) < 0)
		pg_warn("%s; no suppression applied", err);
	pg_free(text);
}

void pg_reporter_init(void)
{
	const struct pg_config *cfg = pg_core_config();

	pg_output_remember_std(&output);
	sem_init(&exit_sem, 0, 0);
	/* Looked up now, in the loading thread: the loader's lock is not
	 * ours to take in a thread a fork may leave behind. */
	nptl_nthreads = dlvsym(RTLD_DEFAULT, "__nptl_nthreads", "GLIBC_PRIVATE");
	load_suppressions(cfg);
	pg_signals_init(cfg->report_signal);
}

int pg_reporter_running(void)
{
	return __atomic_load_n(&running, __ATOMIC_ACQUIRE);
}

/* Enough for a report of everything tracked now, and some more. */
static void grow_reserve(void)
{
	size_t want = pg_report_mem_for(pg_fdtab_size_hint() * 3 / 2 + 1024);
	void *n;

	if (reserve_size >= want)
		return;
	n = pg_arena_alloc(want);
	if (!n)
		return;
	pg_arena_free(reserve, reserve_size);
	reserve = n;
	reserve_size = want;
}

/* One event line, with its call site's frames, where reports go. */
static void write_event(const struct pg_event *e, struct pg_symbolizer **sym)
{
	const struct pg_config *cfg = pg_core_config();
	char line[PG_EVENT_TEXT + PG_EVENT_JSON + 2048];
	struct pg_out o;
	const struct pg_site *s = pg_sites_get(e->site);
	unsigned n = s ? (s->depth < 4 ? s->depth : 4) : 0;
	int json = cfg->format == PG_FORMAT_JSON, fd;

	pg_out_init_buf(&o, line, sizeof(line) - 1);
	pg_out_puts(&o, json ? e->json : e->text);
	if (e->site != PG_EVENT_NO_FRAMES) {
		/* The call site, short: a few frames, names from the symbol
		 * tables only. */
		if (!*sym)
			*sym = pg_sym_open(0);
		pg_out_puts(&o, json ? ", \"frames\": [" : "; at ");
		for (unsigned i = 0; i < n; i++) {
			struct pg_sym sy;
			int k = *sym ? pg_sym_lookup(*sym, s->frames[i], 1, &sy, 1) : 0;
			if (json) {
				pg_out_printf(&o, "%s{\"addr\": \"0x%lx\"", i ? ", " : "",
					      (unsigned long)s->frames[i]);
				if (k > 0 && sy.module && strcmp(sy.module, "?")) {
					pg_out_puts(&o, ", \"module\": ");
					pg_out_json_str(&o, sy.module);
					pg_out_printf(&o, ", \"offset\": \"0x%lx\"",
						      (unsigned long)sy.offset);
				}
				if (k > 0 && sy.function) {
					pg_out_puts(&o, ", \"function\": ");
					pg_out_json_str(&o, sy.function);
				}
				pg_out_puts(&o, "}");
				continue;
			}
			pg_out_printf(&o, "%s#%u 0x%lx", i ? " " : "", i,
				      (unsigned long)s->frames[i]);
			if (k > 0 && sy.function)
				pg_out_printf(&o, " in %s", sy.function);
			if (k > 0 && sy.module && strcmp(sy.module, "?")) {
				const char *base = strrchr(sy.module, '/');
				pg_out_printf(&o, " (%s+0x%lx)", base ? base + 1 : sy.module,
					      (unsigned long)sy.offset);
			}
		}
		if (json)
			pg_out_puts(&o, "]");
		else if (!n)
			pg_out_puts(&o, "(no stack)");
	}
	if (json)
		pg_out_puts(&o, "}");
	pg_out_end_buf(&o);
	fd = pg_output_open(&output, cfg, pg_core_pid());
	if (fd >= 0) {
		struct iovec v[2] = { { line, strlen(line) }, { (void *)"\n", 1 } };
		/* One write: lines of several processes sharing a stream do not
		 * interleave. */
		while (writev(fd, v, 2) < 0 && errno == EINTR)
			;
	}
	pg_output_close(&output, fd);
}

static void flush_events(void)
{
	struct pg_symbolizer *sym = NULL;
	struct pg_event e;

	while (pg_events_pop(&e))
		write_event(&e, &sym);
	if (sym)
		pg_sym_close(sym);
}

/* The output is opened only when the report has something to say: a
 * process with nothing of its own leaves no file. */
struct lazy_output {
	const struct pg_config *cfg;
	int fd;
};

static int open_output(void *arg)
{
	struct lazy_output *l = arg;

	l->fd = pg_output_open(&output, l->cfg, pg_core_pid());
	return l->fd;
}

static void write_report_to(enum pg_reason reason, struct pg_report_result *res,
			    const struct pg_config *cfg, int fd);

static void write_report(enum pg_reason reason, struct pg_report_result *res)
{
	write_report_to(reason, res, pg_core_config(), -1);
}

/* ---- portguard dump ----
 *
 * A request the library's thread polls for, once a second, costing one
 * system call (an open that finds nothing): no signal, so nothing of the
 * program's is interrupted, run or swallowed. `portguard dump` writes
 * /tmp/portguard-dump.PID (through /proc/PID/root, so a private /tmp is
 * reached too) holding "portguard-dump 1 NONCE FORMAT"; the thread writes
 * the report to /tmp/portguard-dump.PID.NONCE.part (O_EXCL, O_NOFOLLOW,
 * 0600) and renames it to .../portguard-dump.PID.NONCE when complete. The
 * request is accepted only from a regular file of this process's user or
 * root; a nonce is answered once (the tool removes the request: a process
 * may not remove root's file from a sticky /tmp). */
static char last_nonce[40];

static int nonce_ok(const char *s)
{
	size_t n = strlen(s);

	if (n < 8 || n >= sizeof(last_nonce))
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'z') ||
		      (s[i] >= 'A' && s[i] <= 'Z')))
			return 0;
	return 1;
}

static void check_dump_request(void)
{
	char path[96], buf[160], nonce[64], format[16], out[160], done[160];
	struct pg_config cfg;
	struct pg_report_result res;
	struct stat st;
	ssize_t n;
	int fd, version;

	snprintf(path, sizeof(path), "/tmp/portguard-dump.%d", pg_core_pid());
	fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) ||
	    (st.st_uid != geteuid() && st.st_uid != 0) || st.st_size >= (off_t)sizeof(buf)) {
		pg_real.close(fd);
		return;
	}
	n = read(fd, buf, sizeof(buf) - 1);
	pg_real.close(fd);
	if (n <= 0)
		return;
	buf[n] = 0;
	if (sscanf(buf, "portguard-dump %d %63s %15s", &version, nonce, format) != 3 ||
	    version != 1 || !nonce_ok(nonce) || !strcmp(nonce, last_nonce))
		return;
	snprintf(last_nonce, sizeof(last_nonce), "%s", nonce);
	snprintf(out, sizeof(out), "%s.%s.part", path, nonce);
	snprintf(done, sizeof(done), "%s.%s", path, nonce);
	fd = open(out, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return;
	cfg = *pg_core_config();
	cfg.format = !strcmp(format, "json") ? PG_FORMAT_JSON : PG_FORMAT_TEXT;
	write_report_to(PG_REASON_DUMP, &res, &cfg, fd);
	pg_real.close(fd);
	if (rename(out, done) < 0)
		unlink(out);
}

static void write_report_to(enum pg_reason reason, struct pg_report_result *res,
			    const struct pg_config *cfg, int given_fd)
{
	struct pg_report_opts o;
	struct lazy_output lazy = { cfg, -1 };
	int64_t t0 = pg_now_ns();

	memset(&o, 0, sizeof(o));
	memset(res, 0, sizeof(*res));
	pg_alloc_no_fault++;
	flush_events();
	o.cfg = cfg;
	/* The exit report of a forked child (a forking server's, one a
	 * connection) names functions from the symbol tables: loading debug
	 * information again in every child cost 65 ms each (libc's debug file
	 * decompressed), more than the connection. symbolize=2: file:line
	 * there too. Dumps, signal reports and the parent's have file:line. */
	o.symbolize = cfg->symbolize == 1 && reason == PG_REASON_EXIT && pg_core_forked()
			  ? 0
			  : cfg->symbolize;
	o.reason = reason;
	o.pid = pg_core_pid();
	o.exe = pg_core_exe();
	o.argv0 = pg_core_argv0();
	o.now_ns = pg_now_coarse_ns();
	o.fd = given_fd;
	if (given_fd < 0) {
		o.open_fd = open_output;
		o.open_arg = &lazy;
	}
	o.quiet_if_clean = reason == PG_REASON_EXIT && cfg->dest != PG_DEST_PATH;
	o.kernel = 1;
	o.supp = supp;
	o.policy = 1;
	o.events = pg_enforce_events() > 0;
	/* From the memory set aside (the exit report must come out when
	 * there is none left); grown first when it can be. */
	grow_reserve();
	o.mem = reserve;
	o.mem_size = reserve_size;
	pg_report_write(&o, res);
	pg_output_close(&output, lazy.fd);
	pg_alloc_no_fault--;
	if (cfg->verbosity >= 2)
		pg_warn("debug: %s report: %lu open, %lu leaked, %lu untracked; written in %.1f ms",
			reason == PG_REASON_EXIT ? "exit" : "signal", (unsigned long)res->open,
			(unsigned long)res->leaked, (unsigned long)res->untracked,
			(pg_now_ns() - t0) / 1e6);
}

/* Not counted among glibc's threads (GLIBC_PRIVATE, what libthread_db
 * reads): the process ends with the program's last thread. */
static void leave_thread_count(void)
{
	if (nptl_nthreads)
		__atomic_sub_fetch(nptl_nthreads, 1, __ATOMIC_ACQ_REL);
}

static void *thread_main(void *arg)
{
	(void)arg;
	pg_library_thread = 1;
	pg_inside = 1;
	/* Named for ps -L, by itself: pthread_setname_np from the creator
	 * opens /proc/self/task/TID/comm, in the program's table. */
	prctl(PR_SET_NAME, "portguard", 0, 0, 0);
	/* Injected failures (PORTGUARD_FAULT_ALLOC) are the program's calls'. */
	pg_alloc_no_fault = 1;
	pg_nocancel_begin();
	if (pg_progfd_setup(pg_core_pid()) == 0 && pg_core_config()->verbosity >= 2)
		pg_warn("debug: no descriptor table of our own (close_range UNSHARE): reports "
			"share the program's");
	leave_thread_count();
	grow_reserve();
	for (;;) {
		unsigned req = pg_signals_wait(1000);

		if (__atomic_load_n(&exit_done, __ATOMIC_ACQUIRE))
			continue;
		if (req & PG_REQ_EXIT) {
			write_report(PG_REASON_EXIT, &exit_res);
			exit_res_ok = 1;
			__atomic_store_n(&exit_done, 1, __ATOMIC_RELEASE);
			sem_post(&exit_sem);
			continue;
		}
		if (req & PG_REQ_REPORT) {
			struct pg_report_result res;
			write_report(PG_REASON_SIGNAL, &res);
		} else if ((req & PG_REQ_EVENTS) || pg_events_pending()) {
			flush_events();
		}
		check_dump_request();
		grow_reserve();
	}
	return NULL;
}

static int start_thread(void)
{
	pthread_t t;
	pthread_attr_t attr;
	sigset_t all, old;
	int ok = 0;

	if (pg_lock_take(PG_LOCK_THREAD, PG_LOCK_BOUND_MS) < 0)
		return 0;
	if (!running) {
		/* Set aside here, before the first socket's call returns: a
		 * program that then takes all the memory there is must still
		 * get its exit report, however late the thread first runs
		 * (3 of 40 exit reports were missing on a loaded machine when
		 * only the thread did this). */
		grow_reserve();
		/* The thread inherits this mask: it takes no signal at all. */
		sigfillset(&all);
		pthread_sigmask(SIG_SETMASK, &all, &old);
		pthread_attr_init(&attr);
		pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
		/* libdw walks DWARF scopes recursively; address space only,
		 * nothing resident until used. */
		pthread_attr_setstacksize(&attr, 2 << 20);
		if (pthread_create(&t, &attr, thread_main, NULL) == 0) {
			__atomic_store_n(&running, 1, __ATOMIC_RELEASE);
		}
		pthread_attr_destroy(&attr);
		pthread_sigmask(SIG_SETMASK, &old, NULL);
	}
	ok = running;
	pg_lock_give(PG_LOCK_THREAD);
	return ok;
}

void pg_reporter_start_if_safe(void)
{
	/* Even with report_signal=0 and no policy: portguard dump asks it. */
	if (pg_stack_in_signal_handler())
		return;
	if (start_thread())
		__atomic_store_n(&pg_reporter_settled, 1, __ATOMIC_RELEASE);
}

void pg_reporter_wake_events(void)
{
	pg_signals_post(PG_REQ_EVENTS);
}

/* The program's buffered output before ours, when reports go to stdout.
 * We never wait on a lock of the program's. */
static void flush_program_stdout(void)
{
	if (pg_core_config()->dest != PG_DEST_STDOUT ||
	    __fsetlocking(stdout, FSETLOCKING_QUERY) == FSETLOCKING_BYCALLER)
		return;
	if (ftrylockfile(stdout) == 0) {
		fflush_unlocked(stdout);
		funlockfile(stdout);
	}
}

void pg_reporter_exit(void)
{
	const struct pg_config *cfg = pg_core_config();
	struct pg_report_result res;
	struct timespec until;
	int status, cancel;

	if (!cfg->report_at_exit || __atomic_exchange_n(&exit_started, 1, __ATOMIC_ACQ_REL))
		return;
	cancel = pg_nocancel_begin();
	flush_program_stdout();
	memset(&res, 0, sizeof(res));
	/* A process whose thread has not started (a forked child that made no
	 * socket) writes its report here: starting a thread to say nothing
	 * would cost a forking server more than its connection. */
	if (__atomic_load_n(&running, __ATOMIC_ACQUIRE)) {
		pg_signals_post(PG_REQ_EXIT);
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_sec += 60;
		while (sem_timedwait(&exit_sem, &until) < 0 && errno == EINTR)
			;
		if (exit_res_ok)
			res = exit_res;
	} else {
		/* No thread to be had: written here, in the program's table. */
		write_report(PG_REASON_EXIT, &res);
	}
	pg_nocancel_end(cancel);
	/* exitcode: only a clean exit becomes a failing one. */
	if (cfg->exitcode && res.leaked && pg_core_exit_status_known(&status) && status == 0) {
		fflush(NULL);
		_exit(cfg->exitcode);
	}
}

void pg_reporter_fork_child(void)
{
	running = 0;
	pg_reporter_settled = 0;
	exit_started = exit_done = exit_res_ok = 0;
	sem_init(&exit_sem, 0, 0);
	/* Not the parent's reserve: its thread may have been replacing it at
	 * the fork (the old one unmapped, the new one not yet stored), and a
	 * child's exit report then wrote into unmapped memory (1 child in
	 * about 2,000 of tests/prog_chaos). The child sets aside its own when
	 * its thread starts; the parent's mapping is left as it is. */
	reserve = NULL;
	reserve_size = 0;
}
