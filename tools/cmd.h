/* The subcommands of the portguard tool. Each gets argv with argv[0] set to
 * its own name and returns the process exit status. */
#ifndef PG_CMD_H
#define PG_CMD_H

int pg_cmd_run(int argc, char **argv);
int pg_cmd_dump(int argc, char **argv);
int pg_cmd_ports(int argc, char **argv);
int pg_cmd_report(int argc, char **argv);

#endif
