/*
 * cli — what the subcommands (unbusy keys, unbusy usage) share in reading
 * their arguments.
 */
#ifndef UNBUSY_CLI_H
#define UNBUSY_CLI_H

#include <stdbool.h>

/*
 * "--opt VALUE" or "--opt=VALUE": true when argv[*i] is opt, moving *i past
 * VALUE. *value is NULL when the value is missing (said on stderr, prefixed
 * with who, e.g. "unbusy keys").
 */
bool cli_option(int argc, char **argv, int *i, const char *opt, const char **value, const char *who);

#endif
