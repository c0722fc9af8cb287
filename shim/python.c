/* Python frames read from CPython's memory (see shim/python.h). The layout
 * is CPython 3.11's (Include/internal/pycore_frame.h, cpython/code.h,
 * cpython/unicodeobject.h), the same from 3.11.0 to 3.11.x; offsets checked
 * against pyenv's 3.11.7 headers and run against Debian's 3.11.2. Only this
 * thread's frames are read, while this thread is inside a call of ours: no
 * other thread changes them meanwhile, and the objects they name are alive.
 * Every pointer is still checked (type objects, bounds) before it is used. */

#include "shim/python.h"

#include "shim/arena.h"

#include <dlfcn.h>
#include <link.h>
#include <stdio.h>
#include <string.h>

int pg_python_on;

/* CPython 3.11, x86-64 and other LP64 targets. */
#define RT_FINALIZING 24 /* _PyRuntimeState._finalizing */
#define TS_CFRAME 56 /* PyThreadState.cframe */
#define CF_CURRENT 8 /* _PyCFrame.current_frame */
#define FR_CODE 32 /* _PyInterpreterFrame.f_code */
#define FR_PREVIOUS 48
#define FR_PREV_INSTR 56
#define FR_IS_ENTRY 68
#define FR_OWNER 69
#define OWNED_BY_GENERATOR 1
#define CO_FIRSTLINENO 72
#define CO_FIRSTTRACEABLE 168
#define CO_FILENAME 112
#define CO_QUALNAME 128
#define CO_LINETABLE 136
#define CO_CODE 184 /* co_code_adaptive: the instructions */
#define OB_TYPE 8
#define VAR_SIZE 16 /* PyVarObject.ob_size */
#define BYTES_DATA 32 /* PyBytesObject.ob_sval */
#define STR_LENGTH 16
#define STR_STATE 32
#define STR_ASCII_DATA 48 /* sizeof(PyASCIIObject) */
#define STR_COMPACT_DATA 72 /* sizeof(PyCompactUnicodeObject) */
#define MAX_WALK 4096 /* frames walked at most (a cycle is a bug of ours) */

static void *(*this_thread_state)(void);
static const char *runtime; /* _PyRuntime */
static uintptr_t code_type, unicode_type, bytes_type;
static uintptr_t eval_lo, eval_hi;
static char version[32];

#define AT(p, off, type) (*(const type *)((uintptr_t)(p) + (off)))

void pg_python_init(void)
{
	const unsigned long *v = dlsym(RTLD_DEFAULT, "Py_Version");
	void *eval = dlsym(RTLD_DEFAULT, "_PyEval_EvalFrameDefault");
	const ElfW(Sym) *sym = NULL;
	Dl_info info;

	if (!v || !eval || ((*v >> 24) & 0xff) != 3 || ((*v >> 16) & 0xff) != 11)
		return;
	this_thread_state = (void *(*)(void))dlsym(RTLD_DEFAULT, "PyGILState_GetThisThreadState");
	code_type = (uintptr_t)dlsym(RTLD_DEFAULT, "PyCode_Type");
	unicode_type = (uintptr_t)dlsym(RTLD_DEFAULT, "PyUnicode_Type");
	bytes_type = (uintptr_t)dlsym(RTLD_DEFAULT, "PyBytes_Type");
	runtime = dlsym(RTLD_DEFAULT, "_PyRuntime");
	if (!this_thread_state || !code_type || !unicode_type || !bytes_type || !runtime)
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

int pg_python_is_eval(uintptr_t pc)
{
	/* A return address is one past its call: pc - 1 is in the caller. */
	return pg_python_on && pc - 1 >= eval_lo && pc - 1 < eval_hi;
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
	fin = __atomic_load_n((const void *const *)(runtime + RT_FINALIZING), __ATOMIC_ACQUIRE);
	if (fin && fin != ts)
		return 0;
	cf = AT(ts, TS_CFRAME, const void *);
	f = cf ? AT(cf, CF_CURRENT, const void *) : NULL;
	for (int walked = 0; f && n < max && walked < MAX_WALK; walked++) {
		uintptr_t code = AT(f, FR_CODE, uintptr_t), start, prev;
		int entry = AT(f, FR_IS_ENTRY, unsigned char) != 0;
		if (!code || AT(code, OB_TYPE, uintptr_t) != code_type)
			break;
		start = code + CO_CODE;
		prev = AT(f, FR_PREV_INSTR, uintptr_t);
		/* An incomplete frame (its code not started yet) is not shown,
		 * as CPython's own tracebacks leave it out. */
		if (AT(f, FR_OWNER, unsigned char) != OWNED_BY_GENERATOR &&
		    prev < start + 2 * (uintptr_t)AT(code, CO_FIRSTTRACEABLE, int)) {
			if (entry && n > 0)
				out[n - 1].instr |= PG_PY_ENTRY;
		} else {
			out[n].code = code;
			out[n].instr =
			    (prev >= start ? (prev - start) / 2 : 0) | (entry ? PG_PY_ENTRY : 0);
			n++;
		}
		f = AT(f, FR_PREVIOUS, const void *);
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
		const unsigned char *d = (const unsigned char *)(o + STR_ASCII_DATA);
		for (long i = 0; i < len && at + 1 < sizeof(buf); i++)
			buf[at++] = (char)d[i];
	} else {
		const unsigned char *d = (const unsigned char *)(o + STR_COMPACT_DATA);
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
	uintptr_t table = AT(code, CO_LINETABLE, uintptr_t);
	const unsigned char *p, *end;
	int line = AT(code, CO_FIRSTLINENO, int);
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
		out[i].function = str_copy(AT(code, CO_QUALNAME, uintptr_t));
		out[i].file = str_copy(AT(code, CO_FILENAME, uintptr_t));
		out[i].line = line_of(code, unit);
	}
}
