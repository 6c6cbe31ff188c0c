#include "base/cli.h"

#include <stdio.h>
#include <string.h>

bool cli_option(int argc, char **argv, int *i, const char *opt, const char **value, const char *who)
{
    size_t n = strlen(opt);
    if (strncmp(argv[*i], opt, n) != 0)
        return false;
    if (argv[*i][n] == '=') {
        *value = argv[*i] + n + 1;
        return true;
    }
    if (argv[*i][n] != '\0')
        return false;
    *value = *i + 1 < argc ? argv[++*i] : NULL;
    if (!*value)
        fprintf(stderr, "%s: %s needs a value\n", who, opt);
    return true;
}
