/* Python frames read from CPython's memory (see shim/python.h). The layouts
 * are CPython 3.11's, 3.12's and 3.13's (Include/internal/pycore_frame.h,
 * cpython/code.h, cpython/unicodeobject.h); offsets checked against pyenv's
 * 3.11.7, 3.12.1 and 3.13.0 headers, run against those and Debian's 3.11.2. Only this
 * thread's frames are read, while this thread is inside a call of ours: no
 * other thread changes them meanwhile, and the objects they name are alive.
 * Every pointer is still checked (type objects, bounds) before it is used. */

#include "shim/python.h"

#include "shim/arena.h"
#include "shim/unwind.h"

#include <dlfcn.h>
#include <link.h>
#include <stdio.h>
#include <string.h>

int pg_python_on;
int pg_python_native;

/* The layouts read, x86-64 and other LP64 targets: offsets from pyenv's
 * 3.11.7, 3.12.1 and 3.13.0 headers (offsetof, Py_BUILD_CORE), the same
 * within each minor version. 3.13 also publishes them in _Py_DebugOffsets
 * at the start of _PyRuntime, for tools like this one: what it has is read
 * from there. */
struct layout {
	int minor;
	int rt_finalizing; /* _PyRuntimeState._finalizing */
	int ts_cframe; /* PyThreadState.cframe; -1: the frame is in the thread state */
	int ts_frame; /* _PyCFrame.current_frame, or PyThreadState.current_frame */
	int fr_code, fr_previous, fr_instr, fr_owner; /* _PyInterpreterFrame */
	int fr_is_entry; /* 3.11; -1: entry frames are owned by the C stack */
	int co_firstlineno, co_firsttraceable, co_filename, co_qualname, co_linetable;
	int co_code; /* co_code_adaptive: the instructions */
	int str_ascii_data, str_compact_data; /* sizeof(PyASCIIObject), compact's */
};
static const struct layout layouts[] = {
	{ 11, 24, 56, 8, 32, 48, 56, 69, 68, 72, 168, 112, 128, 136, 184, 48, 72 },
	{ 12, 24, 56, 0, 0, 8, 56, 70, -1, 68, 176, 112, 128, 136, 192, 40, 56 },
	{ 13, 608, -1, 72, 0, 8, 56, 70, -1, 68, 184, 112, 128, 136, 200, 40, 56 },
};
static struct layout L;
#define OWNED_BY_GENERATOR 1
#define OWNED_BY_CSTACK 3 /* 3.12 and later: the evaluation loop's entry frame */
#define OB_TYPE 8
#define TP_NAME 24 /* PyTypeObject.tp_name (3.11 to 3.13) */
#define TP_FINALIZE 392
#define SPEC_SLOTS 24 /* PyType_Spec.slots */
#define SLOT_TP_FINALIZE 80 /* Py_tp_finalize */
#define VAR_SIZE 16 /* PyVarObject.ob_size */
#define BYTES_DATA 32 /* PyBytesObject.ob_sval */
#define STR_LENGTH 16
#define STR_STATE 32
#define MAX_WALK 4096 /* frames walked at most (a cycle is a bug of ours) */

static void *(*this_thread_state)(void);
static const char *runtime; /* _PyRuntime */
static uintptr_t code_type, unicode_type, bytes_type, type_type;
static uintptr_t eval_lo, eval_hi;
static char version[32];

#define AT(p, off, type) (*(const type *)((uintptr_t)(p) + (off)))

/* 3.13's _Py_DebugOffsets (Include/internal/pycore_runtime.h), where it
 * has what we read; 0 when it is not there or is not what we can read (a
 * free-threaded build). Offsets of its fields from 3.13.0's header. */
static int debug_offsets(struct layout *l)
{
	const char *d = runtime;
	const struct layout *base = l;
	struct layout o = *base;
	uint64_t v;

	if (memcmp(d, "xdebugpy", 8) || AT(d, 16, uint64_t) != 0)
		return 0;
#define DO(field, at)                    \
	do {                             \
		v = AT(d, at, uint64_t); \
		if (v > 4096)            \
			return 0;        \
		o.field = (int)v;        \
	} while (0)
	DO(rt_finalizing, 32);
	DO(ts_frame, 184);
	DO(fr_previous, 232);
	DO(fr_code, 240);
	DO(fr_instr, 248);
	DO(fr_owner, 264);
	DO(co_filename, 280);
	DO(co_qualname, 296);
	DO(co_linetable, 304);
	DO(co_firstlineno, 312);
	DO(co_code, 344);
	DO(str_ascii_data, 560);
#undef DO
	o.str_compact_data = o.str_ascii_data + 16; /* utf8_length, utf8 */
	/* Not published: right only when the code object is laid out as in
	 * the headers we know; else incomplete frames are not told apart. */
	if (o.co_code != base->co_code || o.co_firstlineno != base->co_firstlineno)
		o.co_firsttraceable = -1;
	*l = o;
	return 1;
}

void pg_python_init(void)
{
	const unsigned long *v = dlsym(RTLD_DEFAULT, "Py_Version");
	void *eval = dlsym(RTLD_DEFAULT, "_PyEval_EvalFrameDefault");
	const ElfW(Sym) *sym = NULL;
	Dl_info info;
	int minor = -1;

	if (!v || !eval || ((*v >> 24) & 0xff) != 3)
		return;
	for (size_t i = 0; i < sizeof(layouts) / sizeof(layouts[0]); i++)
		if (layouts[i].minor == (int)((*v >> 16) & 0xff))
			L = layouts[i], minor = L.minor;
	if (minor < 0)
		return;
	this_thread_state = (void *(*)(void))dlsym(RTLD_DEFAULT, "PyGILState_GetThisThreadState");
	code_type = (uintptr_t)dlsym(RTLD_DEFAULT, "PyCode_Type");
	unicode_type = (uintptr_t)dlsym(RTLD_DEFAULT, "PyUnicode_Type");
	bytes_type = (uintptr_t)dlsym(RTLD_DEFAULT, "PyBytes_Type");
	type_type = (uintptr_t)dlsym(RTLD_DEFAULT, "PyType_Type");
	runtime = dlsym(RTLD_DEFAULT, "_PyRuntime");
	if (!this_thread_state || !code_type || !unicode_type || !bytes_type || !type_type ||
	    !runtime)
		return;
	if (minor >= 13 && !debug_offsets(&L))
		return;
	if (!dladdr1(eval, &info, (void **)&sym, RTLD_DL_SYMENT) || !sym || !sym->st_size)
		return;
	eval_lo = (uintptr_t)eval;
	eval_hi = eval_lo + sym->st_size;
	snprintf(version, sizeof(version), "CPython %lu.%lu.%lu", (*v >> 24) & 0xff,
		 (*v >> 16) & 0xff, (*v >> 8) & 0xff);
	__atomic_store_n(&pg_python_on, 1, __ATOMIC_RELEASE);
}

const char *pg_python_version(void)
{
	return pg_python_on ? version : NULL;
}

uintptr_t pg_python_eval_pc(void)
{
	return eval_lo + 1;
}

int pg_python_is_eval(uintptr_t pc)
{
	/* A return address is one past its call: pc - 1 is in the caller. */
	return pg_python_on && pc - 1 >= eval_lo && pc - 1 < eval_hi;
}

/* ---- the socket type's finalizer ---- */

struct pg_python_code pg_python_fin[PG_PY_FIN_PIECES];

struct seg {
	uintptr_t lo, hi;
	unsigned flags; /* PF_* */
};

/* The loaded segments of the object mapped from start: its ELF header
 * and program headers are at start (the first PT_LOAD maps offset 0). */
static int segments(uintptr_t start, uintptr_t bias, struct seg *out, int max)
{
	const ElfW(Ehdr) *eh = (const ElfW(Ehdr) *)start;
	int n = 0;

	if (memcmp(eh->e_ident, ELFMAG, SELFMAG) ||
	    eh->e_ident[EI_CLASS] != (__ELF_NATIVE_CLASS == 64 ? ELFCLASS64 : ELFCLASS32) ||
	    eh->e_phentsize != sizeof(ElfW(Phdr)) ||
	    eh->e_phoff + (size_t)eh->e_phnum * sizeof(ElfW(Phdr)) > 4096)
		return 0;
	for (int i = 0; i < eh->e_phnum && n < max; i++) {
		const ElfW(Phdr) *ph = (const ElfW(Phdr) *)(start + eh->e_phoff) + i;
		if (ph->p_type == PT_LOAD && ph->p_memsz && (ph->p_flags & PF_R))
			out[n++] = (struct seg){ bias + ph->p_vaddr,
						 bias + ph->p_vaddr + ph->p_memsz, ph->p_flags };
	}
	return n;
}

static int in_segment(const struct seg *sg, int n, uintptr_t lo, uintptr_t size, unsigned flag)
{
	for (int j = 0; j < n; j++)
		if ((sg[j].flags & flag) && lo >= sg[j].lo && lo <= sg[j].hi &&
		    size <= sg[j].hi - lo)
			return 1;
	return 0;
}

/* What the pointer at w to the name "_socket.socket" belongs to, if it is
 * the socket type: its finalizer, else 0. 3.11 makes the type static (a
 * PyTypeObject in the data: tp_name, then tp_finalize); 3.12 and 3.13 make
 * it from a PyType_Spec (name first, then the slots, Py_tp_finalize among
 * them). */
static uintptr_t finalizer_at(const struct seg *sg, int n, const uintptr_t *w)
{
	uintptr_t type = (uintptr_t)w - TP_NAME, fin = 0, slots;

	if (AT(type, OB_TYPE, uintptr_t) == type_type)
		fin = AT(type, TP_FINALIZE, uintptr_t);
	else if (in_segment(sg, n, slots = AT(w, SPEC_SLOTS, uintptr_t), 16, PF_R))
		for (int k = 0; k < 96 && in_segment(sg, n, slots + 16 * (uintptr_t)k, 16, PF_R);
		     k++) {
			int id = AT(slots + 16 * (uintptr_t)k, 0, int);
			if (id == 0)
				break;
			if (id == SLOT_TP_FINALIZE) {
				fin = AT(slots + 16 * (uintptr_t)k, 8, uintptr_t);
				break;
			}
		}
	return fin && in_segment(sg, n, fin, 1, PF_X) ? fin : 0;
}

/* The socket type's finalizer, found in the object's data by its name. */
static uintptr_t socket_finalizer(const struct seg *sg, int n)
{
	static const char name[] = "_socket.socket";
	uintptr_t names[8];
	int nn = 0;

	for (int i = 0; i < n && nn < 8; i++) {
		const char *p = (const char *)sg[i].lo, *end = (const char *)sg[i].hi;
		if (sg[i].flags & (PF_W | PF_X))
			continue;
		while (nn < 8 && (p = memmem(p, (size_t)(end - p), name, sizeof(name)))) {
			names[nn++] = (uintptr_t)p;
			p += sizeof(name);
		}
	}
	for (int i = 0; i < n && nn; i++) {
		const uintptr_t *w, *end;
		if (!(sg[i].flags & PF_W) || sg[i].hi - sg[i].lo < TP_FINALIZE + 8)
			continue;
		/* The word scanned is at least TP_NAME into the segment and
		 * leaves room for what finalizer_at reads after it. */
		w = (const uintptr_t *)((sg[i].lo + TP_NAME + 7) & ~(uintptr_t)7);
		end = (const uintptr_t *)(sg[i].hi - (TP_FINALIZE + 8 - TP_NAME));
		for (; w < end; w++) {
			int k = 0;
			uintptr_t fin;
			while (k < nn && *w != names[k])
				k++;
			if (k < nn && (fin = finalizer_at(sg, n, w)))
				return fin;
		}
	}
	return 0;
}

/* The pieces a compiler split off the function at [lo, lo + size) (GCC's
 * hot/cold partitioning: Debian's sock_finalize jumps to its cold part,
 * where the close is): targets of its near jumps (jcc rel32, jmp rel32)
 * outside it that begin a function of their own in the CFI. A byte pattern
 * read by mistake would have to land exactly on such a start. */
static int cold_pieces(uintptr_t lo, uintptr_t size, struct pg_python_code *out, int max)
{
	const unsigned char *b = (const unsigned char *)lo;
	int n = 0;

	for (uintptr_t i = 0; i + 5 <= size && n < max; i++) {
		uintptr_t len, at, begin, fsize;
		int32_t rel;
		if (b[i] == 0x0f && i + 6 <= size && (b[i + 1] & 0xf0) == 0x80)
			len = 6;
		else if (b[i] == 0xe9)
			len = 5;
		else
			continue;
		memcpy(&rel, b + i + len - 4, 4);
		at = lo + i + len + (uintptr_t)(intptr_t)rel;
		if (at - lo < size || pg_unwind_function(at, &begin, &fsize) || begin != at)
			continue;
		for (int k = 0; k <= n; k++) {
			if (k == n) {
				out[n++] = (struct pg_python_code){ begin, fsize };
				break;
			}
			if (out[k].lo == begin)
				break;
		}
	}
	return n;
}

static int learn_busy;

void pg_python_fork_child(void)
{
	learn_busy = 0; /* a thread of the parent's may have been learning */
}

/* Only the objects that can hold the socket module are scanned: the
 * interpreter's executable (Debian builds _socket in), libpython, and
 * _socket's extension module; not any library that makes the first socket. */
static int may_hold_socket_module(const struct link_map *m)
{
	const char *name = m->l_name, *base;

	if (!name || !name[0])
		return 1; /* the main program */
	base = strrchr(name, '/');
	base = base ? base + 1 : name;
	return strncmp(base, "_socket", 7) == 0 || strncmp(base, "libpython", 9) == 0;
}

void pg_python_learn(uintptr_t pc)
{
#ifdef DLFO_EH_SEGMENT_TYPE
	static uintptr_t scanned[8];
	static int nscanned, done, tries;
	struct dl_find_object o;
	struct seg sg[16];
	uintptr_t fin, begin, size;
	int n;

	if (__atomic_load_n(&done, __ATOMIC_RELAXED) || !pg_python_on ||
	    __atomic_exchange_n(&learn_busy, 1, __ATOMIC_ACQUIRE))
		return;
	if (++tries > 64) {
		__atomic_store_n(&done, 1, __ATOMIC_RELAXED); /* given up */
		goto out;
	}
	if (_dl_find_object((void *)(pc - 1), &o) != 0 || !o.dlfo_link_map ||
	    !may_hold_socket_module(o.dlfo_link_map))
		goto out;
	for (int i = 0; i < nscanned; i++)
		if (scanned[i] == (uintptr_t)o.dlfo_map_start)
			goto out;
	if (nscanned == (int)(sizeof(scanned) / sizeof(scanned[0]))) {
		__atomic_store_n(&done, 1, __ATOMIC_RELAXED); /* given up */
		goto out;
	}
	scanned[nscanned++] = (uintptr_t)o.dlfo_map_start;
	n = segments((uintptr_t)o.dlfo_map_start, o.dlfo_link_map->l_addr, sg, 16);
	fin = n ? socket_finalizer(sg, n) : 0;
	if (fin && pg_unwind_function(fin, &begin, &size) == 0 && begin == fin) {
		struct pg_python_code pieces[PG_PY_FIN_PIECES] = { { begin, size } };
		int np = 1 + cold_pieces(begin, size, pieces + 1, PG_PY_FIN_PIECES - 1);
		/* Published piece 0 last: its size says the others are set. */
		for (int i = np - 1; i >= 0; i--) {
			__atomic_store_n(&pg_python_fin[i].lo, pieces[i].lo, __ATOMIC_RELAXED);
			__atomic_store_n(&pg_python_fin[i].size, pieces[i].size, __ATOMIC_RELEASE);
		}
		__atomic_store_n(&done, 1, __ATOMIC_RELAXED);
	}
out:
	__atomic_store_n(&learn_busy, 0, __ATOMIC_RELEASE);
#else
	(void)pc; /* glibc < 2.35: no lock-free lookup; finalized sockets are not told apart */
#endif
}

int pg_python_capture(struct pg_pyraw *out, int max)
{
	const void *ts, *cf, *f, *fin;
	int n = 0;

	if (!pg_python_on || max <= 0 || !(ts = this_thread_state()))
		return 0;
	/* While the interpreter finalizes, every other thread's state is
	 * freed (a daemon thread returning from accept() still has its
	 * pointer): only the finalizing thread's is read then. */
	fin = __atomic_load_n((const void *const *)(runtime + L.rt_finalizing), __ATOMIC_ACQUIRE);
	if (fin && fin != ts)
		return 0;
	if (L.ts_cframe >= 0) {
		cf = AT(ts, L.ts_cframe, const void *);
		f = cf ? AT(cf, L.ts_frame, const void *) : NULL;
	} else {
		f = AT(ts, L.ts_frame, const void *);
	}
	for (int walked = 0; f && n < max && walked < MAX_WALK; walked++) {
		uintptr_t code = AT(f, L.fr_code, uintptr_t), start, prev;
		int owner = AT(f, L.fr_owner, unsigned char), entry = 0;
		if (L.fr_is_entry >= 0) {
			entry = AT(f, L.fr_is_entry, unsigned char) != 0;
		} else if (owner == OWNED_BY_CSTACK) {
			/* 3.12+: the evaluation loop's own frame, outside the
			 * frames it ran: the one before it was its first. */
			if (n > 0)
				out[n - 1].instr |= PG_PY_ENTRY;
			f = AT(f, L.fr_previous, const void *);
			continue;
		}
		if (!code || AT(code, OB_TYPE, uintptr_t) != code_type)
			break;
		start = code + (uintptr_t)L.co_code;
		prev = AT(f, L.fr_instr, uintptr_t);
		/* An incomplete frame (its code not started yet) is not shown,
		 * as CPython's own tracebacks leave it out. */
		if (owner != OWNED_BY_GENERATOR && L.co_firsttraceable >= 0 &&
		    prev < start + 2 * (uintptr_t)AT(code, L.co_firsttraceable, int)) {
			if (entry && n > 0)
				out[n - 1].instr |= PG_PY_ENTRY;
		} else {
			out[n].code = code;
			out[n].instr =
			    (prev >= start ? (prev - start) / 2 : 0) | (entry ? PG_PY_ENTRY : 0);
			n++;
		}
		f = AT(f, L.fr_previous, const void *);
	}
	return n;
}

/* ---- names, once per call site ---- */

static size_t put_utf8(char *buf, size_t at, size_t size, uint32_t cp)
{
	unsigned char b[4];
	size_t n;

	if (cp < 0x80) {
		b[0] = (unsigned char)cp, n = 1;
	} else if (cp < 0x800) {
		b[0] = (unsigned char)(0xc0 | cp >> 6), b[1] = (unsigned char)(0x80 | (cp & 63)),
		n = 2;
	} else if (cp < 0x10000) {
		b[0] = (unsigned char)(0xe0 | cp >> 12);
		b[1] = (unsigned char)(0x80 | ((cp >> 6) & 63));
		b[2] = (unsigned char)(0x80 | (cp & 63)), n = 3;
	} else {
		b[0] = (unsigned char)(0xf0 | cp >> 18);
		b[1] = (unsigned char)(0x80 | ((cp >> 12) & 63));
		b[2] = (unsigned char)(0x80 | ((cp >> 6) & 63));
		b[3] = (unsigned char)(0x80 | (cp & 63)), n = 4;
	}
	if (at + n >= size)
		return at;
	memcpy(buf + at, b, n);
	return at + n;
}

/* A str object as UTF-8, in the arena; NULL when it is not one we read. */
static const char *str_copy(uintptr_t o)
{
	char buf[1024];
	size_t at = 0;
	uint32_t state;
	long len;
	int kind;
	char *copy;

	if (!o || AT(o, OB_TYPE, uintptr_t) != unicode_type)
		return NULL;
	state = AT(o, STR_STATE, uint32_t);
	kind = (state >> 2) & 7;
	len = AT(o, STR_LENGTH, long);
	if (!((state >> 5) & 1) || len < 0) /* not compact: a legacy string */
		return NULL;
	if ((state >> 6) & 1) {
		const unsigned char *d = (const unsigned char *)(o + (uintptr_t)L.str_ascii_data);
		for (long i = 0; i < len && at + 1 < sizeof(buf); i++)
			buf[at++] = (char)d[i];
	} else {
		const unsigned char *d = (const unsigned char *)(o + (uintptr_t)L.str_compact_data);
		for (long i = 0; i < len && at + 4 < sizeof(buf); i++) {
			uint32_t cp = kind == 1   ? d[i]
				      : kind == 2 ? ((const uint16_t *)d)[i]
						  : ((const uint32_t *)d)[i];
			at = put_utf8(buf, at, sizeof(buf), cp);
		}
	}
	buf[at] = 0;
	copy = pg_arena_alloc(at + 1);
	if (copy)
		memcpy(copy, buf, at + 1);
	return copy;
}

static unsigned read_varint(const unsigned char **p, const unsigned char *end)
{
	unsigned v, shift = 0, b;

	if (*p >= end)
		return 0;
	b = *(*p)++;
	v = b & 63;
	while ((b & 64) && *p < end && shift < 24) {
		b = *(*p)++;
		shift += 6;
		v |= (b & 63) << shift;
	}
	return v;
}

static int read_svarint(const unsigned char **p, const unsigned char *end)
{
	unsigned v = read_varint(p, end);

	return v & 1 ? -(int)(v >> 1) : (int)(v >> 1);
}

/* 3.11's location table (Objects/locations.md): the line of the
 * instruction at unit, 0 when it has none. */
static int line_of(uintptr_t code, uintptr_t unit)
{
	uintptr_t table = AT(code, L.co_linetable, uintptr_t);
	const unsigned char *p, *end;
	int line = AT(code, L.co_firstlineno, int);
	uintptr_t addr = 0;
	long size;

	if (!table || AT(table, OB_TYPE, uintptr_t) != bytes_type)
		return 0;
	size = AT(table, VAR_SIZE, long);
	p = (const unsigned char *)(table + BYTES_DATA);
	end = p + (size > 0 ? size : 0);
	while (p < end) {
		unsigned b = *p++, code_ = (b >> 3) & 15, len = (b & 7) + 1;
		int has_line = 1;
		if (!(b & 0x80))
			return 0; /* not the start of an entry: lost */
		switch (code_) {
		case 15: /* no location */ has_line = 0; break;
		case 14: /* long form */
			line += read_svarint(&p, end);
			read_varint(&p, end);
			read_varint(&p, end);
			read_varint(&p, end);
			break;
		case 13: /* no column */ line += read_svarint(&p, end); break;
		case 12:
		case 11:
		case 10: /* one line form */
			line += (int)code_ - 10;
			p += 2;
			break;
		default: /* short form */ p += 1; break;
		}
		if (unit >= addr && unit < addr + len)
			return has_line && line > 0 ? line : 0;
		addr += len;
	}
	return 0;
}

void pg_python_resolve(const struct pg_pyraw *raw, int n, struct pg_pyframe *out)
{
	for (int i = 0; i < n; i++) {
		uintptr_t code = raw[i].code, unit = raw[i].instr & ~PG_PY_ENTRY;
		memset(&out[i], 0, sizeof(out[i]));
		out[i].entry = (raw[i].instr & PG_PY_ENTRY) != 0;
		if (!code || AT(code, OB_TYPE, uintptr_t) != code_type)
			continue;
		out[i].function = str_copy(AT(code, L.co_qualname, uintptr_t));
		out[i].file = str_copy(AT(code, L.co_filename, uintptr_t));
		out[i].line = line_of(code, unit);
	}
}
