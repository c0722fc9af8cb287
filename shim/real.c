#include "shim/real.h"

#include "shim/common.h"

#include <dlfcn.h>

struct pg_real pg_real;
static int bound;

#define PG_BIND(field, name) (*(void **)&pg_real.field = dlsym(RTLD_NEXT, name))

void pg_real_bind(void)
{
	if (PG_LIKELY(__atomic_load_n(&bound, __ATOMIC_ACQUIRE)))
		return;
	/* dlsym may allocate (dlerror state): anything it calls that we wrap
	 * must go straight through. Two threads racing here both store the same
	 * values. */
	pg_inside++;
	PG_BIND(socket, "socket");
	PG_BIND(socketpair, "socketpair");
	PG_BIND(accept, "accept");
	PG_BIND(accept4, "accept4");
	PG_BIND(bind, "bind");
	PG_BIND(listen, "listen");
	PG_BIND(connect, "connect");
	PG_BIND(shutdown, "shutdown");
	PG_BIND(close, "close");
	PG_BIND(dup, "dup");
	PG_BIND(dup2, "dup2");
	PG_BIND(dup3, "dup3");
	PG_BIND(fcntl, "fcntl");
	PG_BIND(fcntl64, "fcntl64");
	PG_BIND(close_range, "close_range");
	PG_BIND(closefrom, "closefrom");
	PG_BIND(syscall, "syscall");
	PG_BIND(recvmsg, "recvmsg");
	PG_BIND(recvmmsg, "recvmmsg");
	PG_BIND(fclose, "fclose");
	PG_BIND(sigaction, "sigaction");
	PG_BIND(signal, "signal");
	PG_BIND(sigset, "sigset");
	PG_BIND(sysv_signal, "sysv_signal");
	PG_BIND(bsd_signal, "bsd_signal");
	PG_BIND(exit, "exit");
	PG_BIND(libc_start_main, "__libc_start_main");
	if (!pg_real.fcntl64)
		pg_real.fcntl64 = pg_real.fcntl;
	pg_inside--;
	__atomic_store_n(&bound, 1, __ATOMIC_RELEASE);
}
