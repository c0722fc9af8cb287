/* Return address -> module+offset, function, file:line, inlined frames.
 *
 * Modules come from dl_iterate_phdr (snapshot at pg_sym_open, dladdr1 for
 * anything loaded later). File:line and inlined frames come from elfutils
 * libdwfl, reached only through dlopen("libdw.so.1") when a report asks for
 * them: the library links nothing but libdl and libpthread, and a program that
 * never reports never maps libdw. Debug information is looked for on the local
 * disk only, by our own find_debuginfo callback: libdwfl's standard callbacks
 * (dwfl_standard_find_debuginfo, dwfl_build_id_find_elf) fall back on
 * libdebuginfod, which follows DEBUGINFOD_URLS onto the network. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "shim/symbolize.h"

#include "shim/locks.h"
#include "shim/common.h"

#include <dlfcn.h>
#include <dwarf.h>
#include <elfutils/libdwelf.h>
#include <elfutils/libdwfl.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <link.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/stat.h>
#include <unistd.h>

#define PG_SYM_CHAIN 32 /* inlined frames kept per address */
#define PG_BUILD_ID_MAX 64
#define PG_ARENA_CHUNK 16384
#define PG_DEBUG_ROOT "/usr/lib/debug"

/* Every libdw/libelf function we call, bound by dlsym: naming one directly
 * would make the linker (-z defs) demand -ldw. */
/* clang-format off */
#define PG_DW_FUNCS(X)                                                          \
	X(dwfl_begin) X(dwfl_end) X(dwfl_report_begin_add) X(dwfl_report_elf)  \
	X(dwfl_report_end) X(dwfl_module_info) X(dwfl_module_build_id)         \
	X(dwfl_module_addrdie) X(dwfl_module_getsrc) X(dwfl_lineinfo)          \
	X(dwfl_line_comp_dir) X(dwfl_module_getsymtab)                         \
	X(dwfl_module_getsym_info) X(dwfl_offline_section_address)             \
	X(dwarf_getscopes) X(dwarf_getscopes_die) X(dwarf_tag)                 \
	X(dwarf_diename) X(dwarf_attr) X(dwarf_attr_integrate)                 \
	X(dwarf_formstring) X(dwarf_formudata) X(dwarf_diecu)                  \
	X(dwarf_getsrcfiles) X(dwarf_filesrc) X(dwelf_elf_gnu_build_id)        \
	X(elf_version) X(elf_begin) X(elf_end)
/* clang-format on */

struct pg_dw {
#define PG_DW_FIELD(name) __typeof__(name) *name;
	PG_DW_FUNCS(PG_DW_FIELD)
#undef PG_DW_FIELD
};

/* libdw stays mapped once loaded: a later report (signal, then exit) would
 * pay the load again, and it holds no descriptor. */
static struct pg_dw dw;
static Dwfl_Callbacks dw_callbacks;
static int dw_loaded;
static pthread_once_t dw_once = PTHREAD_ONCE_INIT;

typedef char *pg_demangle_fn(const char *, char *, size_t *, int *);

/* A function symbol of a module's symbol tables. */
struct pg_sym_fn {
	uintptr_t addr;
	uint64_t size;
	const char *name; /* libdw's, valid until dwfl_end */
	int rank; /* among aliases the lowest wins */
};

struct pg_sym_mod {
	uintptr_t lo, hi; /* [lo, hi): span of the PT_LOAD segments */
	uintptr_t bias; /* dlpi_addr: addresses in the file are addr - bias */
	char *path;
	int has_file; /* 0 for the vDSO */
	int dw_state; /* 0 not tried, 1 reported to libdwfl, -1 unusable */
	Dwfl_Module *dwmod;
	struct pg_sym_fn *fns; /* sorted by addr, then rank */
	size_t nfns;
	int fns_state; /* 0 not loaded, 1 loaded, -1 none */
	struct pg_symbolizer *owner;
	size_t build_id_len;
	unsigned char build_id[PG_BUILD_ID_MAX];
};

struct pg_sym_slot {
	uintptr_t addr;
	unsigned char used, ret;
	unsigned short n;
	struct pg_sym *frames;
};

struct pg_sym_chunk {
	struct pg_sym_chunk *next;
	size_t used, size;
	max_align_t data[];
};

struct pg_symbolizer {
	int use_dw;
	Dwfl *dwfl;
	struct pg_sym_mod *mods;
	size_t nmods, capmods;
	char *debug_root;
	struct pg_sym_slot *slots;
	size_t nslots, used;
	struct pg_sym_chunk *arena;
	pg_demangle_fn *demangle;
};

static void *arena_alloc(struct pg_symbolizer *s, size_t n)
{
	struct pg_sym_chunk *c = s->arena;
	void *p;

	n = (n + 15) & ~(size_t)15;
	if (!c || c->size - c->used < n) {
		size_t size = n > PG_ARENA_CHUNK ? n : PG_ARENA_CHUNK;

		c = pg_alloc(sizeof(*c) + size);
		if (!c)
			return NULL;
		c->next = s->arena;
		c->used = 0;
		c->size = size;
		s->arena = c;
	}
	p = (char *)c->data + c->used;
	c->used += n;
	return p;
}

/* Our own copy: libdw's strings die at dwfl_end, dladdr's at dlclose. */
static const char *intern(struct pg_symbolizer *s, const char *str)
{
	size_t len;
	char *p;

	if (!str || !*str)
		return NULL;
	len = strlen(str) + 1;
	p = arena_alloc(s, len);
	if (p)
		memcpy(p, str, len);
	return p;
}

/* DWARF 5 names files relative to the unit's compilation directory
 * ("tests/x.c"); a report is read elsewhere, so make them absolute, as
 * llvm-symbolizer and addr2line do. */
static const char *source_path(struct pg_symbolizer *s, const char *dir, const char *file)
{
	size_t dlen, flen;
	char *p;

	if (!file || !*file)
		return NULL;
	if (file[0] == '/' || !dir || dir[0] != '/')
		return intern(s, file);
	while (file[0] == '.' && file[1] == '/')
		file += 2;
	dlen = strlen(dir);
	while (dlen > 1 && dir[dlen - 1] == '/')
		dlen--;
	flen = strlen(file);
	p = arena_alloc(s, dlen + 1 + flen + 1);
	if (!p)
		return NULL;
	memcpy(p, dir, dlen);
	p[dlen] = '/';
	memcpy(p + dlen + 1, file, flen + 1);
	return p;
}

static const char *function_name(struct pg_symbolizer *s, const char *name)
{
	const char *r;
	char *d;
	int status = -1;

	if (!name || !*name)
		return NULL;
	if (!s->demangle || strncmp(name, "_Z", 2) != 0)
		return intern(s, name);
	d = s->demangle(name, NULL, NULL, &status);
	if (!d || status != 0) {
		free(d);
		return intern(s, name);
	}
	r = intern(s, d);
	/* __cxa_demangle's buffer comes from malloc, not pg_alloc. */
	free(d);
	return r;
}

/* ---- libdw ---- */

static int find_elf_none(Dwfl_Module *mod, void **userdata, const char *modname, Dwarf_Addr base,
			 char **file_name, Elf **elfp);
static int find_debuginfo_local(Dwfl_Module *mod, void **userdata, const char *modname,
				Dwarf_Addr base, const char *file_name, const char *debuglink,
				GElf_Word crc, char **debuginfo_name);

static void dw_load(void)
{
	void *h;

	/* fork waits for the loader's lock to be free (PG_LOCK_DLOPEN is in
	 * the list its prepare handler takes): a child never finds it held
	 * by a thread it does not have. */
	pg_lock_take(PG_LOCK_DLOPEN, -1);
	h = dlopen("libdw.so.1", RTLD_NOW | RTLD_LOCAL);
	pg_lock_give(PG_LOCK_DLOPEN);

	if (!h) {
		/* The failure stays in the thread's dlerror() state: clear it,
		 * or the program's next dlerror() reports our miss as its own. */
		dlerror();
		return;
	}
	/* dlsym on the handle also searches libdw's dependencies (libelf). */
#define PG_DW_SYM(name)                              \
	if (!(*(void **)&dw.name = dlsym(h, #name))) \
		goto fail;
	PG_DW_FUNCS(PG_DW_SYM)
#undef PG_DW_SYM
	if (dw.elf_version(EV_CURRENT) == EV_NONE)
		goto fail;
	dw_callbacks.find_elf = find_elf_none;
	dw_callbacks.find_debuginfo = find_debuginfo_local;
	dw_callbacks.section_address = dw.dwfl_offline_section_address;
	dw_callbacks.debuginfo_path = NULL;
	dw_loaded = 1;
	return;
fail:
	dlerror();
	memset(&dw, 0, sizeof(dw));
	dlclose(h);
}

/* Every module is reported with its ELF already open, so libdwfl has no file
 * to find; refusing keeps dwfl_build_id_find_elf (and debuginfod) out. */
static int find_elf_none(Dwfl_Module *mod PG_UNUSED, void **userdata PG_UNUSED,
			 const char *modname PG_UNUSED, Dwarf_Addr base PG_UNUSED,
			 char **file_name PG_UNUSED, Elf **elfp)
{
	*elfp = NULL;
	errno = ENOENT;
	return -1;
}

static int file_crc32(int fd, uint32_t *out)
{
	uint32_t table[256], crc = 0xffffffffu;
	unsigned char *buf;
	off_t pos = 0;
	ssize_t n;

	for (uint32_t i = 0; i < 256; i++) {
		uint32_t c = i;

		for (int k = 0; k < 8; k++)
			c = (c & 1) ? 0xedb88320u ^ (c >> 1) : c >> 1;
		table[i] = c;
	}
	buf = pg_alloc(65536);
	if (!buf)
		return -ENOMEM;
	for (;;) {
		n = pread(fd, buf, 65536, pos);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		for (ssize_t i = 0; i < n; i++)
			crc = table[(crc ^ buf[i]) & 0xff] ^ (crc >> 8);
		pos += n;
	}
	pg_free(buf);
	if (n < 0)
		return -EIO;
	*out = crc ^ 0xffffffffu;
	return 0;
}

/* A debug file of another build would put every line in the wrong place:
 * take it only when its build ID is the module's, or, for a module without
 * one, when the .gnu_debuglink CRC matches. */
static int debug_file_matches(const struct pg_sym_mod *m, int fd, uint32_t crc, int have_crc)
{
	if (m->build_id_len > 0) {
		Elf *elf = dw.elf_begin(fd, ELF_C_READ_MMAP, NULL);
		const void *id = NULL;
		ssize_t len;
		int ok;

		if (!elf)
			return 0;
		len = dw.dwelf_elf_gnu_build_id(elf, &id);
		ok = len == (ssize_t)m->build_id_len &&
		     memcmp(id, m->build_id, m->build_id_len) == 0;
		dw.elf_end(elf);
		return ok;
	}
	if (have_crc) {
		uint32_t got = 0;

		return file_crc32(fd, &got) == 0 && got == crc;
	}
	return 0;
}

static int try_debug_file(const struct pg_sym_mod *m, const char *path, const struct stat *main_st,
			  uint32_t crc, int have_crc, char **name)
{
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);

	if (fd < 0)
		return -1;
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) ||
	    (main_st && st.st_dev == main_st->st_dev && st.st_ino == main_st->st_ino) ||
	    !debug_file_matches(m, fd, crc, have_crc)) {
		close(fd);
		return -1;
	}
	/* libdwfl frees the name with free(). */
	*name = strdup(path);
	return fd;
}

/* GDB's order: DIR/LINK, DIR/.debug/LINK, ROOT/DIR/LINK. */
static int try_debuglink(const struct pg_sym_mod *m, const char *file, const char *link,
			 const struct stat *main_st, uint32_t crc, int have_crc, char **name)
{
	const char *root = m->owner->debug_root;
	const char *slash = strrchr(file, '/');
	char path[PATH_MAX];
	int dirlen, fd, n;

	if (!slash)
		return -1;
	dirlen = (int)(slash - file);
	n = snprintf(path, sizeof(path), "%.*s/%s", dirlen, file, link);
	if (n > 0 && (size_t)n < sizeof(path) &&
	    (fd = try_debug_file(m, path, main_st, crc, have_crc, name)) >= 0)
		return fd;
	n = snprintf(path, sizeof(path), "%.*s/.debug/%s", dirlen, file, link);
	if (n > 0 && (size_t)n < sizeof(path) &&
	    (fd = try_debug_file(m, path, main_st, crc, have_crc, name)) >= 0)
		return fd;
	if (file[0] != '/')
		return -1;
	n = snprintf(path, sizeof(path), "%s%.*s/%s", root, dirlen, file, link);
	if (n > 0 && (size_t)n < sizeof(path) &&
	    (fd = try_debug_file(m, path, main_st, crc, have_crc, name)) >= 0)
		return fd;
	return -1;
}

/* Local disk only, never libdebuginfod: ROOT/.build-id/xx/yyyy.debug, then
 * the .gnu_debuglink name next to the file, in .debug/, under ROOT (also for
 * the file's real path when it is reached through a symbolic link). */
static int find_debuginfo_local(Dwfl_Module *mod PG_UNUSED, void **userdata,
				const char *modname PG_UNUSED, Dwarf_Addr base PG_UNUSED,
				const char *file_name, const char *debuglink, GElf_Word crc,
				char **debuginfo_name)
{
	const struct pg_sym_mod *m = userdata ? *userdata : NULL;
	char path[PATH_MAX], link[NAME_MAX + 1];
	struct stat main_st;
	const struct stat *mst = NULL;
	char *real;
	int fd = -1;

	if (!m || !file_name)
		return -1;
	/* An alternate (dwz) file is asked for with its link name and no CRC;
	 * libdw's dwarf_getalt looks for it itself, on the local disk only. */
	if (debuglink && crc == 0)
		return -1;
	if (m->build_id_len > 0) {
		int n = snprintf(path, sizeof(path), "%s/.build-id/%02x/", m->owner->debug_root,
				 m->build_id[0]);

		for (size_t i = 1; i < m->build_id_len && n > 0 && (size_t)n + 3 < sizeof(path);
		     i++)
			n += snprintf(path + n, sizeof(path) - (size_t)n, "%02x", m->build_id[i]);
		if (n > 0 && (size_t)n + sizeof(".debug") <= sizeof(path)) {
			memcpy(path + n, ".debug", sizeof(".debug"));
			fd = try_debug_file(m, path, NULL, 0, 0, debuginfo_name);
			if (fd >= 0)
				return fd;
		}
	}
	if (stat(file_name, &main_st) == 0)
		mst = &main_st;
	if (debuglink) {
		if (snprintf(link, sizeof(link), "%s", debuglink) >= (int)sizeof(link))
			return -1;
	} else {
		const char *b = strrchr(file_name, '/');

		b = b ? b + 1 : file_name;
		if (snprintf(link, sizeof(link), "%s.debug", b) >= (int)sizeof(link))
			return -1;
	}
	fd = try_debuglink(m, file_name, link, mst, crc, debuglink != NULL, debuginfo_name);
	if (fd >= 0)
		return fd;
	real = realpath(file_name, NULL);
	if (real && strcmp(real, file_name) != 0)
		fd = try_debuglink(m, real, link, mst, crc, debuglink != NULL, debuginfo_name);
	free(real);
	return fd;
}

/* Reports one module to libdwfl on its first lookup: a report touches a few
 * of the process's modules, and opening all of them would cost more. */
static int module_dwfl(struct pg_symbolizer *s, struct pg_sym_mod *m)
{
	const unsigned char *bits = NULL;
	GElf_Addr vaddr;
	Dwfl_Module *dm;
	void **userdata = NULL;
	int fd, n;

	if (m->dw_state)
		return m->dw_state > 0;
	m->dw_state = -1;
	if (!s->use_dw || !m->has_file)
		return 0;
	if (!s->dwfl) {
		s->dwfl = dw.dwfl_begin(&dw_callbacks);
		if (!s->dwfl)
			return 0;
	}
	/* libdwfl's own open() lacks O_CLOEXEC: a fork+exec on another thread
	 * while the report runs would carry the descriptor into the child. */
	fd = open(m->path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
	if (fd < 0)
		return 0;
	dw.dwfl_report_begin_add(s->dwfl);
	/* The module takes the descriptor; dwfl_end closes it. */
	dm = dw.dwfl_report_elf(s->dwfl, m->path, m->path, fd, m->bias, true);
	dw.dwfl_report_end(s->dwfl, NULL, NULL);
	if (!dm) {
		close(fd);
		return 0;
	}
	n = dw.dwfl_module_build_id(dm, &bits, &vaddr);
	if (m->build_id_len > 0) {
		/* The file was replaced since it was loaded (an upgrade):
		 * its lines would be another build's. */
		if (n != (int)m->build_id_len || memcmp(bits, m->build_id, m->build_id_len) != 0)
			return 0;
	} else if (n > 0 && n <= PG_BUILD_ID_MAX) {
		memcpy(m->build_id, bits, (size_t)n);
		m->build_id_len = (size_t)n;
	}
	dw.dwfl_module_info(dm, &userdata, NULL, NULL, NULL, NULL, NULL, NULL);
	if (userdata)
		*userdata = m;
	m->dwmod = dm;
	m->dw_state = 1;
	return 1;
}

static const char *die_name(struct pg_symbolizer *s, Dwarf_Die *die)
{
	Dwarf_Attribute attr;
	const char *name;

	/* C++: the linkage name demangled says which overload and class. */
	if (s->demangle) {
		name = dw.dwarf_formstring(dw.dwarf_attr_integrate(die, DW_AT_linkage_name, &attr));
		if (!name)
			name = dw.dwarf_formstring(
			    dw.dwarf_attr_integrate(die, DW_AT_MIPS_linkage_name, &attr));
		if (name)
			return function_name(s, name);
	}
	/* dwarf_diename follows DW_AT_abstract_origin of inlined instances. */
	return intern(s, dw.dwarf_diename(die));
}

/* Where an inlined instance was called: the location of the next frame out. */
static void call_site(struct pg_symbolizer *s, Dwarf_Die *die, struct pg_sym *f)
{
	Dwarf_Attribute attr;
	Dwarf_Word v, idx;
	Dwarf_Die cu;
	Dwarf_Files *files;
	size_t nfiles;

	if (dw.dwarf_formudata(dw.dwarf_attr(die, DW_AT_call_line, &attr), &v) != 0 ||
	    dw.dwarf_formudata(dw.dwarf_attr(die, DW_AT_call_file, &attr), &idx) != 0)
		return;
	/* call_file indexes the file table of the unit holding this DIE. */
	if (!dw.dwarf_diecu(die, &cu, NULL, NULL) ||
	    dw.dwarf_getsrcfiles(&cu, &files, &nfiles) != 0 || idx >= nfiles)
		return;
	f->file = source_path(s, dw.dwarf_formstring(dw.dwarf_attr(&cu, DW_AT_comp_dir, &attr)),
			      dw.dwarf_filesrc(files, idx, NULL, NULL));
	f->line = f->file ? (int)v : 0;
}

/* Innermost frame first, as addr2line -i: the line table gives the innermost
 * location; each inlined_subroutine up the DIE tree names its function and
 * gives, through DW_AT_call_file/line, the location of the next frame out. */
static int dwarf_frames(struct pg_symbolizer *s, struct pg_sym_mod *m, uintptr_t a,
			struct pg_sym *f)
{
	Dwarf_Addr bias = 0, line_addr;
	Dwarf_Die *cudie, *scopes = NULL;
	Dwfl_Line *line;
	int nscopes, k = 0, lineno = 0;

	line = dw.dwfl_module_getsrc(m->dwmod, a);
	if (line) {
		const char *file = dw.dwfl_lineinfo(line, &line_addr, &lineno, NULL, NULL, NULL);

		f[0].file = source_path(s, dw.dwfl_line_comp_dir(line), file);
		f[0].line = f[0].file ? lineno : 0;
	}
	cudie = dw.dwfl_module_addrdie(m->dwmod, a, &bias);
	if (!cudie)
		return 1;
	nscopes = dw.dwarf_getscopes(cudie, a - bias, &scopes);
	if (nscopes > 0) {
		/* dwarf_getscopes goes on from an inlined instance into its
		 * abstract origin's parents; the callers are the instance's own
		 * parents in the tree. */
		Dwarf_Die inner = scopes[0];

		free(scopes);
		scopes = NULL;
		nscopes = dw.dwarf_getscopes_die(&inner, &scopes);
	}
	for (int i = 0; i < nscopes; i++) {
		int tag = dw.dwarf_tag(&scopes[i]);

		if (tag != DW_TAG_subprogram && tag != DW_TAG_inlined_subroutine &&
		    tag != DW_TAG_entry_point)
			continue;
		f[k].function = die_name(s, &scopes[i]);
		if (tag != DW_TAG_inlined_subroutine || k + 1 == PG_SYM_CHAIN)
			break;
		f[k].inlined = 1;
		call_site(s, &scopes[i], &f[k + 1]);
		k++;
	}
	/* libdw's array comes from malloc. */
	free(scopes);
	return k + 1;
}

/* ---- symbol tables ---- */

/* The nearest symbol below an address is not the function holding it unless
 * the address lies within the symbol's size: static functions are absent
 * from .dynsym, and dladdr names whatever exported symbol precedes them. */
static int sym_holds(unsigned char info, uint64_t size, uint64_t off)
{
	int type = ELF64_ST_TYPE(info);

	if (type != STT_FUNC && type != STT_GNU_IFUNC && type != STT_NOTYPE)
		return 0;
	return off < size || off == 0;
}

static int fn_cmp(const void *a, const void *b)
{
	const struct pg_sym_fn *x = a, *y = b;

	if (x->addr != y->addr)
		return x->addr < y->addr ? -1 : 1;
	return x->rank - y->rank;
}

/* Aliases share an address (socket and __socket): prefer what the program
 * calls, a global name with the fewest leading underscores. */
static int fn_rank(const GElf_Sym *sym, const char *name)
{
	int rank = GELF_ST_BIND(sym->st_info) == STB_LOCAL ? 64 : 0;

	while (*name == '_' && rank % 64 < 63) {
		rank++;
		name++;
	}
	return rank;
}

/* .symtab (when the file or its debug file has one) or .dynsym, sorted once:
 * dwfl_module_addrinfo scans every symbol on every call, some 10000 for
 * libc with its debug file. */
static void load_fns(struct pg_sym_mod *m)
{
	int n = dw.dwfl_module_getsymtab(m->dwmod);

	m->fns_state = -1;
	if (n <= 1)
		return;
	m->fns = pg_alloc((size_t)n * sizeof(*m->fns));
	if (!m->fns)
		return;
	for (int i = 1; i < n; i++) {
		GElf_Sym sym;
		GElf_Addr addr;
		GElf_Word shndx;
		const char *name;
		int type;

		name = dw.dwfl_module_getsym_info(m->dwmod, i, &sym, &addr, &shndx, NULL, NULL);
		type = GELF_ST_TYPE(sym.st_info);
		if (!name || !*name || sym.st_size == 0 || shndx == SHN_UNDEF ||
		    (type != STT_FUNC && type != STT_GNU_IFUNC && type != STT_NOTYPE))
			continue;
		m->fns[m->nfns].addr = addr;
		m->fns[m->nfns].size = sym.st_size;
		m->fns[m->nfns].name = name;
		m->fns[m->nfns].rank = fn_rank(&sym, name);
		m->nfns++;
	}
	qsort(m->fns, m->nfns, sizeof(*m->fns), fn_cmp);
	m->fns_state = 1;
}

static const char *symtab_name(struct pg_symbolizer *s, struct pg_sym_mod *m, uintptr_t a)
{
	size_t lo = 0, hi;
	ptrdiff_t best = -1;

	if (m->fns_state == 0)
		load_fns(m);
	if (m->fns_state < 0)
		return NULL;
	hi = m->nfns;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (m->fns[mid].addr <= a)
			lo = mid + 1;
		else
			hi = mid;
	}
	/* fns[lo - 1] is the last symbol starting at or below a; one that
	 * starts lower may still hold a (a local function inside a bigger
	 * one is rare, but look a little way back). */
	for (ptrdiff_t j = (ptrdiff_t)lo - 1; j >= 0 && (ptrdiff_t)lo - j <= 32; j--) {
		if (a - m->fns[j].addr >= m->fns[j].size)
			continue;
		if (best < 0 || m->fns[j].addr == m->fns[best].addr)
			best = j;
		else
			break;
	}
	return best < 0 ? NULL : function_name(s, m->fns[best].name);
}

static const char *dladdr_name(struct pg_symbolizer *s, uintptr_t a)
{
	Dl_info info;
	const ElfW(Sym) *sym = NULL;

	int found;

	/* The loader's lock, inside: fork waits (PG_LOCK_DLOPEN). */
	pg_lock_take(PG_LOCK_DLOPEN, -1);
	found = dladdr1((void *)a, &info, (void **)&sym, RTLD_DL_SYMENT);
	pg_lock_give(PG_LOCK_DLOPEN);
	if (!found || !info.dli_sname || !sym || !info.dli_saddr || a < (uintptr_t)info.dli_saddr)
		return NULL;
	if (!sym_holds(sym->st_info, sym->st_size, a - (uintptr_t)info.dli_saddr))
		return NULL;
	return function_name(s, info.dli_sname);
}

/* ---- modules ---- */

static void read_build_id(struct pg_sym_mod *m, const struct dl_phdr_info *info)
{
	for (int i = 0; i < info->dlpi_phnum; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
		const char *p, *end;
		size_t align;

		if (ph->p_type != PT_NOTE)
			continue;
		p = (const char *)(info->dlpi_addr + ph->p_vaddr);
		end = p + ph->p_memsz;
		align = ph->p_align == 8 ? 8 : 4;
		while ((size_t)(end - p) >= sizeof(ElfW(Nhdr))) {
			const ElfW(Nhdr) *n = (const void *)p;
			size_t namesz = (n->n_namesz + align - 1) & ~(align - 1);
			size_t descsz = (n->n_descsz + align - 1) & ~(align - 1);
			const char *name = p + sizeof(*n);

			if (namesz > (size_t)(end - name) || descsz > (size_t)(end - name) - namesz)
				break;
			if (n->n_type == NT_GNU_BUILD_ID && n->n_namesz == 4 &&
			    memcmp(name, "GNU", 4) == 0 && n->n_descsz > 0 &&
			    n->n_descsz <= PG_BUILD_ID_MAX) {
				memcpy(m->build_id, name + namesz, n->n_descsz);
				m->build_id_len = n->n_descsz;
				return;
			}
			p = name + namesz + descsz;
		}
	}
}

static char *exe_path(void)
{
	char buf[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", buf, sizeof(buf) - 1);
	const char *name = buf;
	char *p;
	size_t len;

	if (n > 0) {
		buf[n] = '\0';
	} else {
		name = (const char *)getauxval(AT_EXECFN);
		if (!name)
			name = "?";
	}
	len = strlen(name) + 1;
	p = pg_alloc(len);
	if (p)
		memcpy(p, name, len);
	return p;
}

struct pg_collect {
	struct pg_symbolizer *s;
	int first, failed;
};

static int collect_module(struct dl_phdr_info *info, size_t size PG_UNUSED, void *arg)
{
	struct pg_collect *c = arg;
	struct pg_symbolizer *s = c->s;
	struct pg_sym_mod *m;
	uintptr_t lo = UINTPTR_MAX, hi = 0;
	int first = c->first;
	size_t len;

	c->first = 0;
	for (int i = 0; i < info->dlpi_phnum; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
		uintptr_t start = info->dlpi_addr + ph->p_vaddr;

		if (ph->p_type != PT_LOAD)
			continue;
		if (start < lo)
			lo = start;
		if (start + ph->p_memsz > hi)
			hi = start + ph->p_memsz;
	}
	if (hi <= lo || (!first && (!info->dlpi_name || !info->dlpi_name[0])))
		return 0;
	if (s->nmods == s->capmods) {
		size_t cap = s->capmods ? s->capmods * 2 : 32;
		struct pg_sym_mod *n = pg_realloc(s->mods, cap * sizeof(*n));

		if (!n) {
			c->failed = 1;
			return 1;
		}
		s->mods = n;
		s->capmods = cap;
	}
	m = &s->mods[s->nmods];
	memset(m, 0, sizeof(*m));
	m->lo = lo;
	m->hi = hi;
	m->bias = info->dlpi_addr;
	m->owner = s;
	/* dladdr and dl_iterate_phdr name the executable "" (or as argv
	 * said); /proc/self/exe is the file that really runs. */
	if (first && (!info->dlpi_name || !info->dlpi_name[0])) {
		m->path = exe_path();
		m->has_file = 1;
	} else {
		len = strlen(info->dlpi_name) + 1;
		m->path = pg_alloc(len);
		if (m->path)
			memcpy(m->path, info->dlpi_name, len);
		/* The vDSO ("linux-vdso.so.1") has no file behind it. */
		m->has_file = strchr(info->dlpi_name, '/') != NULL;
	}
	if (!m->path) {
		c->failed = 1;
		return 1;
	}
	read_build_id(m, info);
	s->nmods++;
	return 0;
}

static int mod_cmp(const void *a, const void *b)
{
	const struct pg_sym_mod *x = a, *y = b;

	return x->lo < y->lo ? -1 : x->lo > y->lo;
}

static struct pg_sym_mod *find_module(struct pg_symbolizer *s, uintptr_t a)
{
	size_t lo = 0, hi = s->nmods;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		struct pg_sym_mod *m = &s->mods[mid];

		if (a < m->lo)
			hi = mid;
		else if (a >= m->hi)
			lo = mid + 1;
		else
			return m;
	}
	return NULL;
}

/* ---- the cache ---- */

static size_t slot_hash(uintptr_t addr, int ret, size_t mask)
{
	uint64_t h = ((uint64_t)addr ^ (uint64_t)ret) * 0x9e3779b97f4a7c15ull;

	return (size_t)(h >> 17) & mask;
}

static struct pg_sym_slot *slot_find(struct pg_symbolizer *s, uintptr_t addr, int ret)
{
	size_t mask, i;

	if (!s->slots)
		return NULL;
	mask = s->nslots - 1;
	for (i = slot_hash(addr, ret, mask); s->slots[i].used; i = (i + 1) & mask)
		if (s->slots[i].addr == addr && s->slots[i].ret == ret)
			return &s->slots[i];
	return NULL;
}

static int slots_grow(struct pg_symbolizer *s)
{
	size_t n = s->nslots ? s->nslots * 2 : 256, mask = n - 1;
	struct pg_sym_slot *t = pg_calloc(n, sizeof(*t));

	if (!t)
		return -ENOMEM;
	for (size_t i = 0; i < s->nslots; i++) {
		size_t j;

		if (!s->slots[i].used)
			continue;
		for (j = slot_hash(s->slots[i].addr, s->slots[i].ret, mask); t[j].used;
		     j = (j + 1) & mask)
			;
		t[j] = s->slots[i];
	}
	pg_free(s->slots);
	s->slots = t;
	s->nslots = n;
	return 0;
}

static void slot_add(struct pg_symbolizer *s, uintptr_t addr, int ret, const struct pg_sym *f,
		     int n)
{
	struct pg_sym *copy;
	size_t mask, i;

	if ((s->used + 1) * 10 >= s->nslots * 7 && slots_grow(s) != 0)
		return;
	copy = arena_alloc(s, (size_t)n * sizeof(*copy));
	if (!copy)
		return;
	memcpy(copy, f, (size_t)n * sizeof(*copy));
	mask = s->nslots - 1;
	for (i = slot_hash(addr, ret, mask); s->slots[i].used; i = (i + 1) & mask)
		;
	s->slots[i].addr = addr;
	s->slots[i].ret = (unsigned char)ret;
	s->slots[i].n = (unsigned short)n;
	s->slots[i].frames = copy;
	s->slots[i].used = 1;
	s->used++;
}

static int copy_out(const struct pg_sym *f, int n, struct pg_sym *out, int max)
{
	if (n <= max) {
		memcpy(out, f, (size_t)n * sizeof(*f));
		return n;
	}
	memcpy(out, f, (size_t)(max - 1) * sizeof(*f));
	out[max - 1] = f[n - 1];
	return max;
}

static int symbolize(struct pg_symbolizer *s, uintptr_t addr, int ret, struct pg_sym *f)
{
	uintptr_t a = ret && addr ? addr - 1 : addr;
	struct pg_sym_mod *m = find_module(s, a);
	const char *module = "?";
	uintptr_t offset = addr;
	int n = 1;

	memset(f, 0, sizeof(*f));
	if (m) {
		module = m->path;
		offset = addr - m->bias;
		if (module_dwfl(s, m)) {
			n = dwarf_frames(s, m, a, f);
			if (!f[n - 1].function)
				f[n - 1].function = symtab_name(s, m, a);
		}
	} else {
		/* Loaded after pg_sym_open: the loader still knows it. The
		 * link map's l_addr is the bias, as dlpi_addr is. */
		Dl_info info;
		struct link_map *map = NULL;

		int found;

		pg_lock_take(PG_LOCK_DLOPEN, -1);
		found = dladdr1((void *)a, &info, (void **)&map, RTLD_DL_LINKMAP);
		pg_lock_give(PG_LOCK_DLOPEN);
		if (found && map && info.dli_fname && info.dli_fname[0]) {
			module = intern(s, info.dli_fname);
			offset = addr - (uintptr_t)map->l_addr;
			if (!module) {
				module = "?";
				offset = addr;
			}
		}
	}
	if (!f[n - 1].function && strcmp(module, "?") != 0)
		f[n - 1].function = dladdr_name(s, a);
	for (int i = 0; i < n; i++) {
		f[i].module = module;
		f[i].offset = offset;
	}
	return n;
}

/* ---- API ---- */

struct pg_symbolizer *pg_sym_open(int debuginfo)
{
	int saved_errno = errno, saved_inside = pg_inside;
	struct pg_symbolizer *s;
	struct pg_collect c;

	/* libdw opens and closes files: the shim's own close() must let them
	 * pass as it does for any call the shim makes. */
	pg_inside = 1;
	s = pg_calloc(1, sizeof(*s));
	if (!s)
		goto out;
	s->debug_root = pg_alloc(sizeof(PG_DEBUG_ROOT));
	if (!s->debug_root)
		goto fail;
	memcpy(s->debug_root, PG_DEBUG_ROOT, sizeof(PG_DEBUG_ROOT));
	c.s = s;
	c.first = 1;
	c.failed = 0;
	/* The loader's locks are taken inside these: a fork meanwhile would
	 * leave them held in the child, so fork waits (PG_LOCK_DLOPEN is in
	 * the list its prepare handler takes). */
	pg_lock_take(PG_LOCK_DLOPEN, -1);
	dl_iterate_phdr(collect_module, &c);
	/* Only a C++ program has it, and only a C++ program needs it. */
	*(void **)&s->demangle = dlsym(RTLD_DEFAULT, "__cxa_demangle");
	if (!s->demangle)
		dlerror();
	pg_lock_give(PG_LOCK_DLOPEN);
	if (c.failed)
		goto fail;
	qsort(s->mods, s->nmods, sizeof(*s->mods), mod_cmp);
	if (debuginfo) {
		pthread_once(&dw_once, dw_load);
		s->use_dw = dw_loaded;
	}
	goto out;
fail:
	pg_sym_close(s);
	s = NULL;
out:
	pg_inside = saved_inside;
	errno = saved_errno;
	return s;
}

int pg_sym_lookup(struct pg_symbolizer *s, uintptr_t addr, int return_address, struct pg_sym *out,
		  int max)
{
	int saved_errno = errno, saved_inside = pg_inside;
	struct pg_sym f[PG_SYM_CHAIN];
	struct pg_sym_slot *slot;
	int ret = return_address ? 1 : 0, n;

	if (!out || max < 1)
		return 0;
	if (!s) {
		memset(out, 0, sizeof(*out));
		out->module = "?";
		out->offset = addr;
		return 1;
	}
	slot = slot_find(s, addr, ret);
	if (slot)
		return copy_out(slot->frames, slot->n, out, max);
	pg_inside = 1;
	memset(f, 0, sizeof(f));
	n = symbolize(s, addr, ret, f);
	slot_add(s, addr, ret, f, n);
	pg_inside = saved_inside;
	errno = saved_errno;
	return copy_out(f, n, out, max);
}

void pg_sym_close(struct pg_symbolizer *s)
{
	int saved_errno = errno, saved_inside = pg_inside;

	if (!s)
		return;
	pg_inside = 1;
	/* Closes every descriptor libdwfl and libdw opened for us. */
	if (s->dwfl)
		dw.dwfl_end(s->dwfl);
	for (size_t i = 0; i < s->nmods; i++) {
		pg_free(s->mods[i].path);
		pg_free(s->mods[i].fns);
	}
	pg_free(s->mods);
	pg_free(s->slots);
	while (s->arena) {
		struct pg_sym_chunk *next = s->arena->next;

		pg_free(s->arena);
		s->arena = next;
	}
	pg_free(s->debug_root);
	pg_free(s);
	pg_inside = saved_inside;
	errno = saved_errno;
}

int pg_sym_has_debuginfo(const struct pg_symbolizer *s)
{
	return s && s->use_dw;
}

int pg_sym_set_debug_root(struct pg_symbolizer *s, const char *dir)
{
	size_t len;
	char *p;

	if (!s || !dir)
		return -EINVAL;
	len = strlen(dir);
	while (len > 1 && dir[len - 1] == '/')
		len--;
	p = pg_alloc(len + 1);
	if (!p)
		return -ENOMEM;
	memcpy(p, dir, len);
	p[len] = '\0';
	pg_free(s->debug_root);
	s->debug_root = p;
	return 0;
}
