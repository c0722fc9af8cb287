/* portguard run: preload the library that belongs to this tool, pass the
 * options through PORTGUARD_OPTIONS, and become CMD. */
#include "tools/cli.h"
#include "tools/cmd.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char usage[] =
    "usage: portguard run [-o PATH] [--json] [--exitcode N] [--policy FILE]\n"
    "                     [--option KEY=VALUE]... [--] CMD [ARG]...\n"
    "\n"
    "Runs CMD with libportguard preloaded (LD_PRELOAD, appended to any already\n"
    "set) and exits with CMD's status; 127 when CMD is not found, 126 when it\n"
    "cannot be executed.\n"
    "\n"
    "  -o, --output PATH    log_path: reports go to PATH.PID (or PATH with %p\n"
    "                       replaced by the pid); 'stderr' and 'stdout' as is\n"
    "  --json               format=json: one JSON object per report and line\n"
    "  --exitcode N         exitcode=N: exit status when the exit report finds leaks\n"
    "  --policy FILE        policy=FILE: a reuse/pooling policy file\n"
    "  --option KEY=VALUE   any PORTGUARD_OPTIONS key, verbatim (repeatable)\n"
    "  -h, --help           this text\n"
    "\n"
    "Options are added after any PORTGUARD_OPTIONS already in the environment,\n"
    "so these win; later ones win over earlier ones.\n";

enum { OPT_JSON = 256, OPT_EXITCODE, OPT_POLICY, OPT_OPTION };

static const struct option longopts[] = {
	{ "output", required_argument, NULL, 'o' },
	{ "json", no_argument, NULL, OPT_JSON },
	{ "exitcode", required_argument, NULL, OPT_EXITCODE },
	{ "policy", required_argument, NULL, OPT_POLICY },
	{ "option", required_argument, NULL, OPT_OPTION },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

struct pg_optbuf {
	char *s;
	size_t len;
};

static void optbuf_add(struct pg_optbuf *b, const char *key, const char *val)
{
	size_t add = strlen(key) + (val ? strlen(val) + 1 : 0) + 1;

	b->s = pg_cli_realloc(b->s, b->len + add + 1);
	b->len += (size_t)sprintf(b->s + b->len, "%s%s%s%s", b->len ? ":" : "", key, val ? "=" : "",
				  val ? val : "");
}

static char *absolute(const char *p)
{
	char cwd[PATH_MAX];

	if (p[0] == '/')
		return pg_cli_strdup(p);
	if (!getcwd(cwd, sizeof(cwd))) {
		pg_cli_warn("cannot find the current directory: %s", strerror(errno));
		exit(125);
	}
	while (p[0] == '.' && p[1] == '/')
		p += 2;
	return pg_cli_asprintf("%s%s%s", cwd, strcmp(cwd, "/") ? "/" : "", p);
}

/* PORTGUARD_OPTIONS separates pairs with ':' or blanks; a value holding
 * one of those is quoted, as in ASAN_OPTIONS. NULL when it cannot be (it
 * holds both kinds of quote, or a newline). */
static char *option_value(const char *p)
{
	if (!*p || strchr(p, '\n'))
		return NULL;
	if (!strpbrk(p, ": \t\r\v\f\"'"))
		return pg_cli_strdup(p);
	if (!strchr(p, '"'))
		return pg_cli_asprintf("\"%s\"", p);
	if (!strchr(p, '\''))
		return pg_cli_asprintf("'%s'", p);
	return NULL;
}

static int add_path(struct pg_optbuf *b, const char *key, const char *path)
{
	char *abs = absolute(path), *val = option_value(abs);

	free(abs);
	if (!val)
		return -1;
	optbuf_add(b, key, val);
	free(val);
	return 0;
}

/* The library that belongs to this binary: next to it (the build tree), then
 * ../lib (an installed prefix), else the bare name for ld.so's search path.
 * /proc/self/exe is resolved, so a symlink to the tool finds its own tree. */
static char *find_library(void)
{
	char exe[PATH_MAX], cand[PATH_MAX + 32], real[PATH_MAX];
	ssize_t n;
	char *slash;

	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n <= 0)
		return pg_cli_strdup("libportguard.so");
	exe[n] = '\0';
	slash = strrchr(exe, '/');
	if (!slash)
		return pg_cli_strdup("libportguard.so");
	*slash = '\0';
	snprintf(cand, sizeof(cand), "%s/libportguard.so", exe);
	if (access(cand, R_OK) == 0)
		return pg_cli_strdup(cand);
	snprintf(cand, sizeof(cand), "%s/../lib/libportguard.so", exe);
	if (access(cand, R_OK) == 0 && realpath(cand, real))
		return pg_cli_strdup(real);
	return pg_cli_strdup("libportguard.so");
}

/* ld.so splits LD_PRELOAD at blanks and colons. */
static int preload_has(const char *list, const char *lib)
{
	size_t n = strlen(lib);
	const char *p = list;

	while (*p) {
		size_t w = strcspn(p, ": \t");
		if (w == n && strncmp(p, lib, n) == 0)
			return 1;
		p += w;
		p += strspn(p, ": \t");
	}
	return 0;
}

int pg_cmd_run(int argc, char **argv)
{
	struct pg_optbuf opts = { NULL, 0 };
	const char *old;
	char *lib, *env;
	long code;
	int c;

	opterr = 0;
	/* '+': stop at CMD, so that CMD's own options stay CMD's. */
	while ((c = getopt_long(argc, argv, "+:o:h", longopts, NULL)) != -1) {
		switch (c) {
		case 'o':
			if (strcmp(optarg, "stderr") == 0 || strcmp(optarg, "stdout") == 0) {
				optbuf_add(&opts, "log_path", optarg);
				break;
			}
			if (add_path(&opts, "log_path", optarg))
				return pg_cli_usage_error(usage,
							  "-o: PORTGUARD_OPTIONS cannot carry the "
							  "path '%s'",
							  optarg);
			break;
		case OPT_JSON: optbuf_add(&opts, "format", "json"); break;
		case OPT_EXITCODE:
			if (pg_cli_parse_long(optarg, 0, 255, &code))
				return pg_cli_usage_error(
				    usage, "--exitcode '%s': not a status 0..255", optarg);
			env = pg_cli_asprintf("%ld", code);
			optbuf_add(&opts, "exitcode", env);
			free(env);
			break;
		case OPT_POLICY:
			if (add_path(&opts, "policy", optarg))
				return pg_cli_usage_error(
				    usage,
				    "--policy: PORTGUARD_OPTIONS cannot carry "
				    "the path '%s'",
				    optarg);
			break;
		case OPT_OPTION:
			if (!strchr(optarg, '=') || optarg[0] == '=')
				return pg_cli_usage_error(
				    usage, "--option '%s': expected KEY=VALUE", optarg);
			optbuf_add(&opts, optarg, NULL);
			break;
		case 'h': fputs(usage, stdout); return 0;
		case ':':
			return pg_cli_usage_error(usage, "option '%s' needs an argument",
						  argv[optind - 1]);
		default: return pg_cli_usage_error(usage, "unknown option '%s'", argv[optind - 1]);
		}
	}
	if (optind >= argc)
		return pg_cli_usage_error(usage, "no command to run");

	lib = find_library();
	/* ld.so splits LD_PRELOAD at blanks and colons, with no quoting. */
	if (strpbrk(lib, ": \t")) {
		pg_cli_warn("the library path '%s' holds a blank or ':', which LD_PRELOAD cannot "
			    "carry",
			    lib);
		return 125;
	}
	old = getenv("LD_PRELOAD");
	if (old && *old && !preload_has(old, lib))
		env = pg_cli_asprintf("%s %s", old, lib);
	else
		env = pg_cli_strdup(old && *old ? old : lib);
	if (setenv("LD_PRELOAD", env, 1)) {
		pg_cli_warn("cannot set LD_PRELOAD: %s", strerror(errno));
		return 125;
	}
	free(env);
	free(lib);

	if (opts.len) {
		old = getenv("PORTGUARD_OPTIONS");
		if (old && *old)
			env = pg_cli_asprintf("%s:%s", old, opts.s);
		else
			env = pg_cli_strdup(opts.s);
		if (setenv("PORTGUARD_OPTIONS", env, 1)) {
			pg_cli_warn("cannot set PORTGUARD_OPTIONS: %s", strerror(errno));
			return 125;
		}
		free(env);
		free(opts.s);
	}

	execvp(argv[optind], argv + optind);
	/* As a shell reports it: 127 not found, 126 found but not executable. */
	c = errno;
	if (c == ENOENT && !strchr(argv[optind], '/'))
		pg_cli_warn("%s: command not found", argv[optind]);
	else
		pg_cli_warn("%s: %s", argv[optind], strerror(c));
	return c == ENOENT || c == ENOTDIR ? 127 : 126;
}
