/* fork: the handlers (pthread_atfork) that keep the library whole across
 * it. prepare takes every lock of shim/locks.h in its order (so the child
 * never finds a table another thread was changing); the parent gives them
 * back; the child, whose only thread is the one that forked, makes every
 * module its own process's (pid, counts, no thread of ours), then gives the
 * locks back. */
#ifndef PG_FORKING_H
#define PG_FORKING_H

void pg_forking_init(void);

#endif
