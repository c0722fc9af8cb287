#include "shim/forking.h"

#include "shim/core.h"
#include "shim/enforce.h"
#include "shim/events.h"
#include "shim/fdtab.h"
#include "shim/locks.h"
#include "shim/progfd.h"
#include "shim/reporter.h"
#include "shim/signals.h"
#include "shim/sites.h"

#include <pthread.h>

static void prepare(void)
{
	pg_locks_fork_prepare();
}

static void parent(void)
{
	pg_locks_fork_parent();
}

static void child(void)
{
	pg_core_fork_child();
	pg_fdtab_fork_child();
	pg_sites_fork_child();
	pg_enforce_fork_child();
	pg_events_fork_child();
	pg_signals_fork_child();
	pg_progfd_fork_child();
	pg_reporter_fork_child();
	pg_locks_fork_child();
}

void pg_forking_init(void)
{
	pthread_atfork(prepare, parent, child);
}
