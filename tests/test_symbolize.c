/* clang-format off */
/* These tests compare source lines (__LINE__ offsets);
 * the layout is part of what they check. */
/* shim/symbolize.c: module+offset, names only where right, file:line and
 * inlined frames from DWARF, stripped binaries, no descriptor left, no
 * debuginfod. Built with -g (CFLAGS): this file's own functions are the
 * subjects, and __LINE__ at each call site is the expected answer. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <link.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "shim/common.h"
#include "shim/symbolize.h"

#define DEBUGINFOD_URL "http://127.0.0.1:9/"

/* ---- subjects ---- */

static __attribute__((noinline, noclone)) uintptr_t capture(void)
{
	uintptr_t r = (uintptr_t)__builtin_return_address(0);

	__asm__ volatile("" ::: "memory");
	return r;
}

static __attribute__((noinline, noclone)) uintptr_t static_site(int *line)
{
	uintptr_t r = capture(); *line = __LINE__;

	/* No tail call: the return address must stay in this function. */
	__asm__ volatile("" ::: "memory");
	return r;
}

static inline __attribute__((always_inline)) uintptr_t inl_leaf(int *line)
{
	uintptr_t r = capture(); *line = __LINE__;

	return r;
}

static inline __attribute__((always_inline)) uintptr_t inl_mid(int *lines)
{
	uintptr_t r = inl_leaf(&lines[0]); lines[1] = __LINE__;

	return r;
}

static __attribute__((noinline, noclone)) uintptr_t inl_outer(int *lines)
{
	uintptr_t r = inl_mid(lines); lines[2] = __LINE__;

	__asm__ volatile("" ::: "memory");
	return r;
}

/* ---- helpers ---- */

struct segment {
	const char *want; /* NULL: the executable */
	int seen;
	uintptr_t bias, lo, hi;
	char name[PATH_MAX];
};

static int find_segment(struct dl_phdr_info *info, size_t size, void *arg)
{
	struct segment *seg = arg;
	int first = seg->seen++ == 0;

	(void)size;
	if (seg->want && !strstr(info->dlpi_name, seg->want))
		return 0;
	if (!seg->want && !first)
		return 1;
	for (int i = 0; i < info->dlpi_phnum; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];

		if (ph->p_type == PT_LOAD && (ph->p_flags & PF_X)) {
			seg->bias = info->dlpi_addr;
			seg->lo = info->dlpi_addr + ph->p_vaddr;
			seg->hi = seg->lo + ph->p_memsz;
			snprintf(seg->name, sizeof(seg->name), "%s", info->dlpi_name);
			return 1;
		}
	}
	return 0;
}

/* The executable (want NULL) or the first object whose name contains want. */
static struct segment text_of(const char *want)
{
	struct segment seg;

	memset(&seg, 0, sizeof(seg));
	seg.want = want;
	dl_iterate_phdr(find_segment, &seg);
	return seg;
}

static char *exe_realpath(void)
{
	static char buf[PATH_MAX];

	assert_non_null(realpath("/proc/self/exe", buf));
	return buf;
}

static int ends_with(const char *s, const char *tail)
{
	size_t a = strlen(s), b = strlen(tail);

	return a >= b && strcmp(s + a - b, tail) == 0;
}

static int count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	int n = 0;

	assert_non_null(d);
	while ((e = readdir(d)))
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n - 1;
}

static int mapped(const char *needle)
{
	FILE *f = fopen("/proc/self/maps", "re");
	char line[PATH_MAX + 128];
	int found = 0;

	assert_non_null(f);
	while (!found && fgets(line, sizeof(line), f))
		found = strstr(line, needle) != NULL;
	fclose(f);
	return found;
}

static int libdw_mapped(void)
{
	return mapped("/libdw-") || mapped("/libdw.so");
}

/* ---- tests ---- */

/* First in the file: nothing before it may have loaded libdw. */
static void test_symbolize_no_libdw_without_debuginfo(void **state)
{
	struct pg_symbolizer *s;
	struct pg_sym f[4];
	int line, n;
	uintptr_t a = static_site(&line);

	(void)state;
	assert_false(libdw_mapped());
	s = pg_sym_open(0);
	assert_non_null(s);
	assert_int_equal(pg_sym_has_debuginfo(s), 0);
	n = pg_sym_lookup(s, a, 1, f, 4);
	assert_int_equal(n, 1);
	assert_string_equal(f[0].module, exe_realpath());
	assert_null(f[0].file);
	assert_int_equal(f[0].line, 0);
	pg_sym_close(s);
	assert_false(libdw_mapped());
}

static double symbolize_ms(const uintptr_t *addrs, int k, const char *root, const char *what)
{
	struct pg_symbolizer *s;
	struct pg_sym f[8];
	int64_t t0, t1, t2;
	int frames = 0, lines = 0, names = 0;

	t0 = pg_now_ns();
	s = pg_sym_open(1);
	assert_non_null(s);
	if (root)
		assert_int_equal(pg_sym_set_debug_root(s, root), 0);
	for (int i = 0; i < k; i++) {
		int n = pg_sym_lookup(s, addrs[i], 1, f, 8);

		frames += n;
		lines += f[0].file != NULL;
		names += f[n - 1].function != NULL;
	}
	t1 = pg_now_ns();
	for (int i = 0; i < k; i++)
		pg_sym_lookup(s, addrs[i], 1, f, 8);
	t2 = pg_now_ns();
	print_message("symbolize: %d addresses (%d frames, %d with file:line, %d named) in "
		      "%.1f ms, %s; again from the cache in %.1f us\n",
		      k, frames, lines, names, (double)(t1 - t0) / 1e6, what,
		      (double)(t2 - t1) / 1e3);
	if (pg_sym_has_debuginfo(s)) {
		assert_true(libdw_mapped());
		/* This binary is built with -g. */
		assert_true(lines >= 30);
	}
	pg_sym_close(s);
	return (double)(t1 - t0) / 1e6;
}

/* ~100 distinct addresses in three objects: once with the first libdw load
 * and no separate debug files, once with those installed (libc6-dbg: libdw
 * inflates its compressed sections on first use). Printed, not asserted. */
static void test_symbolize_time(void **state)
{
	struct segment seg[3] = { text_of(NULL), text_of("libc.so"), text_of("libcmocka") };
	const int per[3] = { 40, 40, 20 };
	char root[] = "/tmp/pg_symrootXXXXXX";
	uintptr_t addrs[100];
	int k = 0;

	(void)state;
	for (int i = 0; i < 3; i++) {
		assert_true(seg[i].hi > seg[i].lo);
		for (int j = 0; j < per[i]; j++)
			addrs[k++] = seg[i].lo + (seg[i].hi - seg[i].lo) / (uintptr_t)per[i] * (uintptr_t)j + 5;
	}
	assert_non_null(mkdtemp(root));
	symbolize_ms(addrs, k, root, "pg_sym_open(1) and the first libdw load included, "
				     "no separate debug files");
	rmdir(root);
	symbolize_ms(addrs, k, NULL, "with the separate debug files installed here");
}

static void test_symbolize_file_line(void **state)
{
	struct segment exe = text_of(NULL);
	struct pg_symbolizer *s = pg_sym_open(1);
	struct pg_sym f[4];
	int line, n;
	uintptr_t a = static_site(&line);

	(void)state;
	assert_non_null(s);
	if (!pg_sym_has_debuginfo(s)) {
		pg_sym_close(s);
		skip();
	}
	n = pg_sym_lookup(s, a, 1, f, 4);
	assert_int_equal(n, 1);
	assert_string_equal(f[0].module, exe_realpath());
	assert_int_equal(f[0].offset, a - exe.bias);
	assert_string_equal(f[0].function, "static_site");
	assert_non_null(f[0].file);
	assert_true(f[0].file[0] == '/');
	assert_true(ends_with(f[0].file, "/tests/test_symbolize.c"));
	assert_int_equal(f[0].line, line);
	assert_int_equal(f[0].inlined, 0);
	pg_sym_close(s);
}

/* A static function is in no dynamic symbol table: without DWARF it has no
 * name rather than the name of whatever exported symbol precedes it. */
static void test_symbolize_static_function(void **state)
{
	struct pg_sym f[4];
	int line;
	uintptr_t a = static_site(&line);

	(void)state;
	for (int debuginfo = 0; debuginfo <= 1; debuginfo++) {
		struct pg_symbolizer *s = pg_sym_open(debuginfo);

		assert_non_null(s);
		pg_sym_lookup(s, a, 1, f, 4);
		if (pg_sym_has_debuginfo(s))
			assert_string_equal(f[0].function, "static_site");
		else if (f[0].function)
			assert_string_equal(f[0].function, "static_site");
		pg_sym_close(s);
	}
}

/* An address past the end of an exported libc function and before the next
 * symbol: padding or a local function of libc. The exported symbol below it,
 * which a nearest-symbol lookup would give, is not its name. */
static void test_symbolize_exported_size_check(void **state)
{
	static const char *const names[] = { "socket", "connect", "bind", "listen", "accept",
					      "close", "dup", "malloc", "printf", "qsort" };
	uintptr_t a = 0, start = 0;
	const char *below = NULL;

	(void)state;
	for (size_t i = 0; !a && i < sizeof(names) / sizeof(names[0]); i++) {
		Dl_info info;
		const ElfW(Sym) *sym = NULL;
		uintptr_t end;

		start = (uintptr_t)dlsym(RTLD_DEFAULT, names[i]);
		if (!start || !dladdr1((void *)start, &info, (void **)&sym, RTLD_DL_SYMENT) ||
		    !sym || !info.dli_sname)
			continue;
		end = (uintptr_t)info.dli_saddr + sym->st_size;
		for (uintptr_t p = end; p < end + 4096; p += 4) {
			if (!dladdr1((void *)p, &info, (void **)&sym, RTLD_DL_SYMENT))
				break;
			if (info.dli_sname)
				break; /* the next exported symbol: no gap */
			a = p;
			below = names[i];
			break;
		}
	}
	if (!a)
		skip();
	for (int debuginfo = 0; debuginfo <= 1; debuginfo++) {
		struct pg_symbolizer *s = pg_sym_open(debuginfo);
		struct pg_sym f[8];
		int n;

		assert_non_null(s);
		n = pg_sym_lookup(s, a, 0, f, 8);
		assert_true(strstr(f[n - 1].module, "libc.so") != NULL);
		if (!pg_sym_has_debuginfo(s))
			assert_null(f[n - 1].function);
		for (int i = 0; i < n; i++)
			if (f[i].function)
				assert_string_not_equal(f[i].function, below);
		/* The exported function's own body is still named. */
		n = pg_sym_lookup(s, start + 1, 0, f, 8);
		assert_non_null(f[n - 1].function);
		assert_true(strstr(f[n - 1].function, below) != NULL);
		pg_sym_close(s);
	}
}

static void test_symbolize_inlined(void **state)
{
	struct pg_symbolizer *s = pg_sym_open(1);
	struct pg_sym f[8];
	int lines[3], n;
	uintptr_t a = inl_outer(lines);

	(void)state;
	assert_non_null(s);
	if (!pg_sym_has_debuginfo(s)) {
		pg_sym_close(s);
		skip();
	}
	n = pg_sym_lookup(s, a, 1, f, 8);
	assert_int_equal(n, 3);
	assert_string_equal(f[0].function, "inl_leaf");
	assert_int_equal(f[0].line, lines[0]);
	assert_int_equal(f[0].inlined, 1);
	assert_string_equal(f[1].function, "inl_mid");
	assert_int_equal(f[1].line, lines[1]);
	assert_int_equal(f[1].inlined, 1);
	assert_string_equal(f[2].function, "inl_outer");
	assert_int_equal(f[2].line, lines[2]);
	assert_int_equal(f[2].inlined, 0);
	for (int i = 0; i < 3; i++) {
		assert_true(ends_with(f[i].file, "/tests/test_symbolize.c"));
		assert_string_equal(f[i].module, f[2].module);
		assert_int_equal(f[i].offset, f[2].offset);
	}
	/* Too small an array: the innermost and the real function. */
	n = pg_sym_lookup(s, a, 1, f, 2);
	assert_int_equal(n, 2);
	assert_string_equal(f[0].function, "inl_leaf");
	assert_string_equal(f[1].function, "inl_outer");
	assert_int_equal(f[1].line, lines[2]);
	n = pg_sym_lookup(s, a, 1, f, 1);
	assert_int_equal(n, 1);
	assert_string_equal(f[0].function, "inl_outer");
	pg_sym_close(s);
}

static void test_symbolize_nowhere(void **state)
{
	void *page = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	int on_stack = 0;
	uintptr_t addrs[] = { (uintptr_t)page + 100, 0x1000, 0, (uintptr_t)&on_stack,
			      UINTPTR_MAX - 7 };

	(void)state;
	assert_true(page != MAP_FAILED);
	for (int debuginfo = 0; debuginfo <= 1; debuginfo++) {
		struct pg_symbolizer *s = pg_sym_open(debuginfo);

		assert_non_null(s);
		for (size_t i = 0; i < sizeof(addrs) / sizeof(addrs[0]); i++) {
			for (int ret = 0; ret <= 1; ret++) {
				struct pg_sym f[4];
				int n = pg_sym_lookup(s, addrs[i], ret, f, 4);

				assert_int_equal(n, 1);
				assert_string_equal(f[0].module, "?");
				assert_int_equal(f[0].offset, addrs[i]);
				assert_null(f[0].function);
				assert_null(f[0].file);
				assert_int_equal(f[0].line, 0);
			}
		}
		pg_sym_close(s);
	}
	munmap(page, 4096);
}

/* An object loaded after pg_sym_open is not in the snapshot: the loader
 * still names it and gives its bias. */
static void test_symbolize_loaded_later(void **state)
{
	struct pg_symbolizer *s;
	struct link_map *map = NULL;
	struct pg_sym f[4];
	uintptr_t fn;
	void *h;
	int n;

	(void)state;
	if (mapped("/libm.so") || mapped("/libm-"))
		skip();
	s = pg_sym_open(1);
	assert_non_null(s);
	h = dlopen("libm.so.6", RTLD_NOW | RTLD_LOCAL);
	assert_non_null(h);
	assert_int_equal(dlinfo(h, RTLD_DI_LINKMAP, &map), 0);
	fn = (uintptr_t)dlsym(h, "nextafter");
	assert_true(fn != 0);
	n = pg_sym_lookup(s, fn + 1, 0, f, 4);
	assert_int_equal(n, 1);
	assert_true(strstr(f[0].module, "libm.so") != NULL);
	assert_int_equal(f[0].offset, fn + 1 - map->l_addr);
	assert_non_null(f[0].function);
	assert_true(strstr(f[0].function, "nextafter") != NULL);
	pg_sym_close(s);
	dlclose(h);
}

/* Repeated lookups come from the cache: the very same strings. */
static void test_symbolize_cache(void **state)
{
	struct pg_symbolizer *s = pg_sym_open(1);
	struct pg_sym f[4], g[4];
	int line;
	uintptr_t a = static_site(&line);

	(void)state;
	assert_non_null(s);
	assert_int_equal(pg_sym_lookup(s, a, 1, f, 4), 1);
	assert_int_equal(pg_sym_lookup(s, a, 1, g, 4), 1);
	assert_ptr_equal(f[0].module, g[0].module);
	assert_ptr_equal(f[0].function, g[0].function);
	assert_ptr_equal(f[0].file, g[0].file);
	/* The same address as a program counter is another entry. */
	assert_int_equal(pg_sym_lookup(s, a, 0, g, 4), 1);
	assert_int_equal(g[0].offset, f[0].offset);
	/* Many addresses: the table grows and keeps every answer. */
	for (uintptr_t p = 0x10000; p < 0x10000 + 3000 * 16; p += 16) {
		pg_sym_lookup(s, p, 0, g, 4);
		assert_int_equal(g[0].offset, p);
	}
	assert_int_equal(pg_sym_lookup(s, a, 1, g, 4), 1);
	assert_ptr_equal(f[0].file, g[0].file);
	assert_int_equal(g[0].line, f[0].line);
	pg_sym_close(s);
}

static void test_symbolize_no_fd_left(void **state)
{
	struct segment seg[3] = { text_of(NULL), text_of("libc.so"), text_of("libcmocka") };
	int before = count_fds(), lines[3];
	struct pg_sym f[8];

	(void)state;
	for (int round = 0; round < 2; round++) {
		struct pg_symbolizer *s = pg_sym_open(1);

		assert_non_null(s);
		pg_sym_lookup(s, inl_outer(lines), 1, f, 8);
		for (int i = 0; i < 3; i++)
			for (uintptr_t p = seg[i].lo; p < seg[i].hi; p += (seg[i].hi - seg[i].lo) / 16)
				pg_sym_lookup(s, p, 1, f, 8);
		pg_sym_close(s);
		assert_int_equal(count_fds(), before);
	}
}

/* main() set DEBUGINFOD_URLS: libdwfl's standard callbacks would now load
 * libdebuginfod for libc, which has no local debug information here. */
static void test_symbolize_no_debuginfod(void **state)
{
	struct segment libc = text_of("libc.so");
	struct pg_symbolizer *s = pg_sym_open(1);
	struct pg_sym f[8];

	(void)state;
	assert_non_null(s);
	for (uintptr_t p = libc.lo; p < libc.hi; p += (libc.hi - libc.lo) / 64)
		pg_sym_lookup(s, p, 1, f, 8);
	pg_sym_close(s);
	assert_false(mapped("libdebuginfod"));
	assert_string_equal(getenv("DEBUGINFOD_URLS"), DEBUGINFOD_URL);
}

static void test_symbolize_errno_kept(void **state)
{
	struct pg_symbolizer *s;
	struct pg_sym f[4];

	(void)state;
	errno = EXDEV;
	s = pg_sym_open(1);
	assert_int_equal(errno, EXDEV);
	pg_sym_lookup(s, (uintptr_t)test_symbolize_errno_kept + 3, 0, f, 4);
	pg_sym_lookup(s, 0x1234, 1, f, 4);
	assert_int_equal(errno, EXDEV);
	pg_sym_close(s);
	assert_int_equal(errno, EXDEV);
}

static void test_symbolize_bad_arguments(void **state)
{
	struct pg_symbolizer *s = pg_sym_open(0);
	struct pg_sym f[2];

	(void)state;
	assert_int_equal(pg_sym_lookup(s, 0x1234, 0, f, 0), 0);
	assert_int_equal(pg_sym_lookup(s, 0x1234, 0, NULL, 2), 0);
	/* pg_sym_open failed for want of memory: still module+offset. */
	assert_int_equal(pg_sym_lookup(NULL, 0x1234, 1, f, 2), 1);
	assert_string_equal(f[0].module, "?");
	assert_int_equal(f[0].offset, 0x1234);
	assert_null(f[0].function);
	assert_int_equal(pg_sym_has_debuginfo(NULL), 0);
	assert_int_equal(pg_sym_set_debug_root(NULL, "/x"), -EINVAL);
	pg_sym_close(NULL);
	pg_sym_close(s);
}

/* The next n - 1 allocations succeed and the nth fails: pg_alloc counts
 * calls across the process, so run it to a failure first. */
static void fail_nth_alloc(unsigned n)
{
	void *p;

	pg_alloc_set_fault(n);
	while ((p = pg_alloc(1)))
		pg_free(p);
}

/* Out of memory at every point of pg_sym_open and of the first lookups: NULL
 * or a usable symbolizer, never a crash or a leak. */
static void test_symbolize_out_of_memory(void **state)
{
	int line, named = 0;
	uintptr_t a = static_site(&line);
	size_t held = pg_alloc_bytes();

	(void)state;
	for (unsigned every = 1; every <= 40; every++) {
		struct pg_symbolizer *s;
		struct pg_sym f[4];

		fail_nth_alloc(every);
		s = pg_sym_open(1);
		for (int i = 0; i < 4; i++) {
			int n = pg_sym_lookup(s, a, 1, f, 4);

			assert_int_equal(n, 1);
			assert_non_null(f[0].module);
			if (!f[0].function)
				continue;
			assert_string_equal(f[0].function, "static_site");
			named++;
		}
		pg_sym_close(s);
		pg_alloc_set_fault(0);
		assert_int_equal(pg_alloc_bytes(), held);
	}
	assert_true(named > 0);
}

/* ---- the helper program, copied, stripped, with separate debug files ---- */

struct site {
	char name[64], module[PATH_MAX], function[128], file[PATH_MAX];
	int expected, line;
	unsigned long offset;
};

struct run {
	char exe[PATH_MAX], build_id[129];
	int debuginfo, fds_before, fds_after, nsites;
	struct site site[2];
};

static int sh(const char *fmt, ...)
{
	char cmd[4 * PATH_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	return system(cmd);
}

static void run_prog(const char *prog, const char *root, struct run *r)
{
	char cmd[2 * PATH_MAX + 16], line[3 * PATH_MAX];
	FILE *p;

	memset(r, 0, sizeof(*r));
	snprintf(cmd, sizeof(cmd), "%s %s", prog, root);
	p = popen(cmd, "r");
	assert_non_null(p);
	while (fgets(line, sizeof(line), p)) {
		struct site *st = &r->site[r->nsites];

		if (sscanf(line, "EXE %4095s", r->exe) == 1 ||
		    sscanf(line, "BUILDID %128s", r->build_id) == 1 ||
		    sscanf(line, "DEBUGINFO %d", &r->debuginfo) == 1 ||
		    sscanf(line, "FDS %d %d", &r->fds_before, &r->fds_after) == 2)
			continue;
		if (r->nsites < 2 &&
		    sscanf(line, "SITE %63s %d %4095s %lx %127s %4095s %d", st->name, &st->expected,
			   st->module, &st->offset, st->function, st->file, &st->line) == 7)
			r->nsites++;
	}
	assert_int_equal(pclose(p), 0);
	assert_int_equal(r->nsites, 2);
	assert_int_equal(r->fds_before, r->fds_after);
}

enum expect { FULL, NAMES, NOTHING };

static void check_run(const struct run *r, const struct run *ref, const char *path, enum expect e)
{
	char real[PATH_MAX];

	assert_non_null(realpath(path, real));
	assert_string_equal(r->exe, real);
	for (int i = 0; i < 2; i++) {
		const struct site *st = &r->site[i];

		assert_string_equal(st->module, real);
		/* strip and objcopy keep the layout: the same offsets. */
		assert_int_equal(st->offset, ref->site[i].offset);
		if (e == FULL && r->debuginfo) {
			assert_string_equal(st->function, st->name);
			assert_true(ends_with(st->file, "/tests/prog_sym_self.c"));
			assert_int_equal(st->line, st->expected);
		} else if (e == NAMES && r->debuginfo) {
			assert_string_equal(st->function, st->name);
			assert_string_equal(st->file, "-");
		} else {
			assert_string_equal(st->function, "-");
			assert_string_equal(st->file, "-");
			assert_int_equal(st->line, 0);
		}
	}
}

static void test_symbolize_stripped(void **state)
{
	char dir[] = "/tmp/pg_symXXXXXX", prog[PATH_MAX], self[PATH_MAX], p[PATH_MAX + 64],
	     root[PATH_MAX + 64], empty[PATH_MAX + 64];
	struct run full, r;
	char *slash;

	(void)state;
	if (sh("command -v strip >/dev/null && command -v objcopy >/dev/null") != 0)
		skip();
	snprintf(self, sizeof(self), "%s", exe_realpath());
	snprintf(prog, sizeof(prog), "%s", self);
	slash = strrchr(prog, '/');
	snprintf(slash + 1, sizeof(prog) - (size_t)(slash + 1 - prog), "prog_sym_self");
	assert_int_equal(access(prog, X_OK), 0);
	assert_non_null(mkdtemp(dir));
	snprintf(empty, sizeof(empty), "%s/empty", dir);
	assert_int_equal(sh("mkdir %s", empty), 0);

	/* A copy as built. */
	snprintf(p, sizeof(p), "%s/full", dir);
	assert_int_equal(sh("cp %s %s", prog, p), 0);
	run_prog(p, empty, &full);
	assert_true(full.build_id[0] != '\0');
	check_run(&full, &full, p, FULL);

	/* Everything stripped: module+offset only. */
	snprintf(p, sizeof(p), "%s/stripped", dir);
	assert_int_equal(sh("strip -o %s %s", p, prog), 0);
	run_prog(p, empty, &r);
	assert_string_equal(r.build_id, full.build_id);
	check_run(&r, &full, p, NOTHING);

	/* The same stripped file, its debug file under ROOT/.build-id/. */
	snprintf(root, sizeof(root), "%s/root", dir);
	assert_int_equal(sh("mkdir -p %s/.build-id/%.2s && objcopy --only-keep-debug %s "
			    "%s/.build-id/%.2s/%s.debug",
			    root, full.build_id, prog, root, full.build_id, full.build_id + 2),
			 0);
	run_prog(p, root, &r);
	check_run(&r, &full, p, FULL);

	/* Debug sections stripped, .symtab kept: names, no lines. */
	snprintf(p, sizeof(p), "%s/nodebug", dir);
	assert_int_equal(sh("strip --strip-debug -o %s %s", p, prog), 0);
	run_prog(p, empty, &r);
	check_run(&r, &full, p, NAMES);

	/* A .gnu_debuglink to a debug file next to it. */
	assert_int_equal(sh("mkdir %s/dl && objcopy --only-keep-debug %s %s/dl/prog.debug && "
			    "strip -o %s/dl/prog %s && cd %s/dl && "
			    "objcopy --add-gnu-debuglink=prog.debug prog",
			    dir, prog, dir, dir, prog, dir),
		 0);
	snprintf(p, sizeof(p), "%s/dl/prog", dir);
	run_prog(p, empty, &r);
	check_run(&r, &full, p, FULL);

	/* In .debug/ beside it. */
	assert_int_equal(sh("mkdir %s/dl/.debug && mv %s/dl/prog.debug %s/dl/.debug/", dir, dir,
			    dir),
			 0);
	run_prog(p, empty, &r);
	check_run(&r, &full, p, FULL);

	/* A debuglink to another program's debug file (its CRC right, its
	 * build ID not): refused, no lines from the wrong build. */
	assert_int_equal(sh("mkdir %s/wrong && objcopy --only-keep-debug %s %s/wrong/prog.debug "
			    "&& strip -o %s/wrong/prog %s && cd %s/wrong && "
			    "objcopy --add-gnu-debuglink=prog.debug prog",
			    dir, self, dir, dir, prog, dir),
			 0);
	snprintf(p, sizeof(p), "%s/wrong/prog", dir);
	run_prog(p, empty, &r);
	check_run(&r, &full, p, NOTHING);

	assert_int_equal(sh("rm -rf %s", dir), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_symbolize_no_libdw_without_debuginfo),
		cmocka_unit_test(test_symbolize_time),
		cmocka_unit_test(test_symbolize_file_line),
		cmocka_unit_test(test_symbolize_static_function),
		cmocka_unit_test(test_symbolize_exported_size_check),
		cmocka_unit_test(test_symbolize_inlined),
		cmocka_unit_test(test_symbolize_nowhere),
		cmocka_unit_test(test_symbolize_loaded_later),
		cmocka_unit_test(test_symbolize_cache),
		cmocka_unit_test(test_symbolize_no_fd_left),
		cmocka_unit_test(test_symbolize_no_debuginfod),
		cmocka_unit_test(test_symbolize_errno_kept),
		cmocka_unit_test(test_symbolize_bad_arguments),
		cmocka_unit_test(test_symbolize_out_of_memory),
		cmocka_unit_test(test_symbolize_stripped),
	};

	/* Before anything loads libdw: were it consulted, libdebuginfod
	 * would be loaded and would try this (closed) port. */
	setenv("DEBUGINFOD_URLS", DEBUGINFOD_URL, 1);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
