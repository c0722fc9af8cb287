/* portguard: the command-line tool. Dispatches to one subcommand per file
 * (run.c, dump.c, ports.c, report.c); it never links the shim, it only reads
 * what the shim writes and what the kernel shows. */
#include "tools/cli.h"
#include "tools/cmd.h"

#include <string.h>

#define PG_VERSION "0.1"

struct pg_subcmd {
	const char *name;
	int (*fn)(int argc, char **argv);
	const char *prog;
};

static const struct pg_subcmd subcmds[] = {
	{ "run", pg_cmd_run, "portguard run" },
	{ "dump", pg_cmd_dump, "portguard dump" },
	{ "ports", pg_cmd_ports, "portguard ports" },
	{ "report", pg_cmd_report, "portguard report" },
};

static const char usage[] =
    "usage: portguard COMMAND [ARG]...\n"
    "\n"
    "Finds socket-handle leaks and the causes of ephemeral-port exhaustion.\n"
    "\n"
    "commands:\n"
    "  run [-o PATH] [--json] [--exitcode N] [--policy FILE] [--option K=V]... -- CMD [ARG]...\n"
    "        run CMD with libportguard preloaded; exits with CMD's status\n"
    "  dump [--json] [--timeout S] PID\n"
    "        ask a running process that has loaded libportguard for a report now\n"
    "  ports [--json | --openmetrics | --watch [S]] [--warn PCT] [--crit PCT] [--pid PID]\n"
    "        who holds the ephemeral ports, and which processes near RLIMIT_NOFILE\n"
    "  report [--text | --json | --folded | --html] [--diff OLD] FILE...\n"
    "        merge JSON reports by call site (--html: a page with a flame graph);\n"
    "        compare with an earlier dump\n"
    "\n"
    "'portguard COMMAND --help' describes each command; 'portguard --version'.\n";

static const struct pg_subcmd *find(const char *name)
{
	for (size_t i = 0; i < sizeof(subcmds) / sizeof(subcmds[0]); i++)
		if (strcmp(subcmds[i].name, name) == 0)
			return &subcmds[i];
	return NULL;
}

int main(int argc, char **argv)
{
	const struct pg_subcmd *c;

	if (argc < 2)
		return pg_cli_usage_error(usage, "no command given");
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
		fputs(usage, stdout);
		return 0;
	}
	if (strcmp(argv[1], "--version") == 0) {
		printf("portguard %s\n", PG_VERSION);
		return 0;
	}
	/* "portguard help ports" reads like git's; it is "ports --help". */
	if (strcmp(argv[1], "help") == 0) {
		if (argc == 2) {
			fputs(usage, stdout);
			return 0;
		}
		c = find(argv[2]);
		if (!c)
			return pg_cli_usage_error(usage, "unknown command '%s'", argv[2]);
		pg_cli_prog = c->prog;
		char *hargv[] = { argv[2], (char *)"--help", NULL };
		return c->fn(2, hargv);
	}
	c = find(argv[1]);
	if (!c)
		return pg_cli_usage_error(usage, "unknown command '%s'", argv[1]);
	pg_cli_prog = c->prog;
	return c->fn(argc - 1, argv + 1);
}
