/*
 * sqlite_file — opening one of unbusy's own SQLite files (the usage ledger,
 * the key store) the same way: created by us with mode 0600 (its -wal and
 * -shm get the same mode from SQLite), a busy timeout for another process's
 * transaction, WAL mode, and the schema version (PRAGMA user_version) read
 * and checked against the newest this binary knows. What each file does next
 * (synchronous level, schema, statements) is its owner's.
 */
#ifndef UNBUSY_SQLITE_FILE_H
#define UNBUSY_SQLITE_FILE_H

#include <sqlite3.h>
#include <stdbool.h>
#include <stdint.h>

/*
 * Opens path (created if missing) with SQLITE_OPEN_READWRITE | extra_flags.
 * Returns the connection with *version set (0: a new file), or NULL with *why
 * pointing at the reason (a static string or SQLite's message, valid until the
 * next call on this thread). A file newer than max_version is refused.
 */
sqlite3 *sqlite_file_open(const char *path, int extra_flags, int64_t max_version,
                          int64_t *version, const char **why);

/* The integer a one-row query (a PRAGMA) answers; *ok false when it failed. */
int64_t sqlite_file_int(sqlite3 *db, const char *sql, bool *ok);

#endif
