/*
 * cmd — the subcommands of the unbusy binary, called by main.c with the
 * arguments after the subcommand's name. Each returns the exit status.
 */
#ifndef UNBUSY_CMD_H
#define UNBUSY_CMD_H

/* `unbusy keys create|list|disable|enable|delete ...` (keys_cli.c). */
int keys_cli_main(int argc, char **argv);
/* `unbusy usage ...`: the ledger's rollups and rows (usage_cli.c). */
int usage_cli_main(int argc, char **argv);

#endif
