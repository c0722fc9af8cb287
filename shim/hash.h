/* uthash, configured for a library inside someone else's process: the
 * arena (no malloc; may fail), and no exit() on out-of-memory. Every file
 * includes uthash through this header, so the settings are the same
 * everywhere. */
#ifndef PG_HASH_H
#define PG_HASH_H

#include "shim/arena.h"
#include "shim/common.h"

#define uthash_malloc(sz) pg_arena_alloc(sz)
#define uthash_free(ptr, sz) pg_arena_free(ptr, sz)
#define HASH_NONFATAL_OOM 1
/* A failed bucket expansion leaves uthash working with longer chains; a
 * failed insert leaves the item out, which the caller sees in pg_hash_oom. */
#define uthash_nonfatal_oom(obj) (pg_hash_oom = 1)
extern __thread int pg_hash_oom __attribute__((tls_model("initial-exec")));

#include <uthash.h>

#endif
