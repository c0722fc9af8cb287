/* Prints what `portguard run` hands to the program it runs:
 *
 *   prog_tool_env STATUS [ARG]...
 *
 * prints "LD_PRELOAD=..." and "PORTGUARD_OPTIONS=..." (or "NAME unset"),
 * then "argv[N]=..." for each argument after STATUS, and exits with STATUS
 * (a number, or "kill" to die of SIGTERM). */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv)
{
	static const char *const vars[] = { "LD_PRELOAD", "PORTGUARD_OPTIONS" };

	for (size_t i = 0; i < sizeof(vars) / sizeof(vars[0]); i++) {
		const char *v = getenv(vars[i]);
		if (v)
			printf("%s=%s\n", vars[i], v);
		else
			printf("%s unset\n", vars[i]);
	}
	for (int i = 2; i < argc; i++)
		printf("argv[%d]=%s\n", i - 1, argv[i]);
	fflush(stdout);
	if (argc > 1 && strcmp(argv[1], "kill") == 0)
		raise(SIGTERM);
	return argc > 1 ? atoi(argv[1]) : 0;
}
