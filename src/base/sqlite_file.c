#include "base/sqlite_file.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

int64_t sqlite_file_int(sqlite3 *db, const char *sql, bool *ok)
{
    sqlite3_stmt *st = NULL;
    int64_t v = 0;
    *ok = sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW;
    if (*ok) v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

sqlite3 *sqlite_file_open(const char *path, int extra_flags, int64_t max_version,
                          int64_t *version, const char **why)
{
    /* Created here, so the file (and its -wal and -shm, which SQLite gives the
       same mode) is its owner's only. */
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
        *why = strerror(errno);
        return NULL;
    }
    close(fd);
    sqlite3 *db = NULL;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | extra_flags, NULL) != SQLITE_OK) {
        *why = db ? sqlite3_errmsg(db) : "out of memory";
        goto fail;
    }
    /* another process's transaction (the command line, a manual cleanup) */
    sqlite3_busy_timeout(db, 5000);
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db, "PRAGMA journal_mode=WAL", -1, &st, NULL) != SQLITE_OK ||
        sqlite3_step(st) != SQLITE_ROW ||
        strcmp((const char *)sqlite3_column_text(st, 0), "wal") != 0) {
        sqlite3_finalize(st);
        *why = "cannot switch to WAL mode (a read-only directory? not a local disk?)";
        goto fail;
    }
    sqlite3_finalize(st);
    bool ok;
    *version = sqlite_file_int(db, "PRAGMA user_version", &ok);
    if (!ok) {
        *why = sqlite3_errmsg(db);
        goto fail;
    }
    if (*version > max_version) {
        *why = "written by a newer unbusy (unknown schema version)";
        goto fail;
    }
    return db;
fail:
    /* the message may be SQLite's: keep a copy before the connection goes */
    if (db && *why == sqlite3_errmsg(db)) {
        static __thread char msg[160];
        strncpy(msg, *why, sizeof msg - 1);
        msg[sizeof msg - 1] = '\0';
        *why = msg;
    }
    sqlite3_close(db);
    return NULL;
}
