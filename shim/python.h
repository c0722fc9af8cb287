/* Python frames: when the host program is CPython, the Python frames of the
 * calling thread, read from the interpreter's memory without calling into
 * it and without the GIL (CPython releases it around socket() and the
 * like), as py-spy and austin read them from outside. CPython 3.11 for now
 * (Debian 12's /usr/bin/python3.11, stripped, and pyenv's): found by
 * Py_Version and PyGILState_GetThisThreadState among the dynamic symbols,
 * which both have. */
#ifndef PG_PYTHON_H
#define PG_PYTHON_H

#include <stdint.h>

/* A frame as captured: what identifies it (the code object, the
 * instruction), and whether it is the first one its evaluation loop ran
 * (the innermost Python frame above a _PyEval_EvalFrameDefault C frame). */
struct pg_pyraw {
	uintptr_t code;
	uintptr_t instr; /* code units from the start; bit 62: entry frame */
};
#define PG_PY_ENTRY ((uintptr_t)1 << 62)

/* A frame resolved, once per call site, while its code is alive. Strings
 * in the library's arena; function or file NULL, line 0 when unknown. */
struct pg_pyframe {
	const char *function;
	const char *file;
	int line;
	int entry;
};

/* At load: whether the program is a CPython this file can read. */
void pg_python_init(void);
/* 1 when pg_python_init found one. */
extern int pg_python_on;

/* This thread's Python frames, innermost first, at most max; 0 when it has
 * none (a thread CPython does not know, or the interpreter not running). */
int pg_python_capture(struct pg_pyraw *out, int max);

/* Names of n captured frames into out (strings from the arena). */
void pg_python_resolve(const struct pg_pyraw *raw, int n, struct pg_pyframe *out);

/* Whether pc (a return address) lies in the interpreter's evaluation
 * loop, the C frame that Python frames stand in for. */
int pg_python_is_eval(uintptr_t pc);

/* The socket type's finalizer (_socket.socket's tp_finalize, sock_finalize
 * in Modules/socketmodule.c): a close() that returns into it closes a
 * socket that the program never closed (garbage collection, shutdown:
 * Python's ResourceWarning "unclosed socket"). Its code, in up to three
 * pieces (a compiler's hot/cold split puts the close in the cold one);
 * sizes 0 until found. */
struct pg_python_code {
	uintptr_t lo, size;
};
#define PG_PY_FIN_PIECES 3
extern struct pg_python_code pg_python_fin[PG_PY_FIN_PIECES];
static inline int pg_python_finalizer_call(uintptr_t ret)
{
	uintptr_t pc = ret - 1;

	if (__builtin_expect(!pg_python_fin[0].size, 1))
		return 0;
	for (int i = 0; i < PG_PY_FIN_PIECES; i++)
		if (pc - pg_python_fin[i].lo < pg_python_fin[i].size)
			return 1;
	return 0;
}
/* pc, a return address in the C frames of a Python thread's socket call:
 * if the module holding it defines the socket type, learns its finalizer.
 * Cheap once done or given up. */
void pg_python_learn(uintptr_t pc);
/* fork child: a learning the parent's threads had under way is off. */
void pg_python_fork_child(void);

/* native_frames (shim/config.h): set before pg_python_init. */
extern int pg_python_native;
/* A return address that stands for any in the evaluation loop. */
uintptr_t pg_python_eval_pc(void);

/* "CPython 3.11.2" or NULL. */
const char *pg_python_version(void);

#endif
