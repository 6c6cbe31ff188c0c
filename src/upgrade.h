/*
 * upgrade — a binary upgrade without a refused connection: the running
 * process hands its listening sockets themselves to a new process (the same
 * argv, so the binary now at that path with the config now in that file),
 * and drains once the new one says it serves.
 *
 *   old, on SIGUSR2                      new (the same argv)
 *   ---------------                      -------------------
 *   pipe; spawn with the listeners as    UNBUSY_LISTEN_FDS=N: fds 3..3+N-1 are
 *   fds 3..3+N-1, the pipe's write end   the listeners (the same sockets, so the
 *   as fd 3+N (UNBUSY_READY_FD)          same accept queues: nothing queued is
 *                                        lost when the old process closes its copy)
 *   waits (UPGRADE_READY_TIMEOUT_MS)     loads the config, starts its workers on
 *                                        them, writes one byte to UNBUSY_READY_FD
 *   reads the byte: tells the service
 *   manager MAINPID=new, drains, exits   serves
 *
 * If the new process exits, closes the pipe without the byte or does not
 * answer in time, the old one goes on serving (and stops it, in the last
 * case). A new process started by hand, by a service manager or by an old
 * version without these variables binds its own sockets (SO_REUSEPORT) as
 * before.
 *
 * The new side (upgrade_inherit_*) is called by main.c before the workers
 * listen; the old side (upgrade_start) by lifecycle.c on SIGUSR2.
 */
#ifndef UNBUSY_UPGRADE_H
#define UNBUSY_UPGRADE_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#define UPGRADE_MAX_FDS 1024 /* server.workers' own bound */
#define UPGRADE_READY_TIMEOUT_MS 60000
#define UPGRADE_ENV_FDS "UNBUSY_LISTEN_FDS"
#define UPGRADE_ENV_READY "UNBUSY_READY_FD"

/* ---- the new process ---- */

/* Parses a decimal count in 1..max ("3"); -1 when it is anything else. Pure. */
long upgrade_parse_count(const char *s, long max);

/* Takes the listeners a previous process handed over: reads and removes the
   variables, checks every fd is a listening TCP socket, marks them close-on-exec.
   Returns how many (0: none were handed over), or -1 after writing why into err. */
int upgrade_inherit(char *err, size_t errlen);
/* The i-th inherited listener (i < the count upgrade_inherit returned). */
int upgrade_inherited_fd(unsigned i);
/* Whether fd is bound to host:port (port 0: any port). */
bool upgrade_fd_matches(int fd, const char *host, uint16_t port);
/* The port fd is bound to, into *port. */
void upgrade_fd_port(int fd, uint16_t *port);
/* Closes the inherited listeners from the i-th on (those not given to a worker). */
void upgrade_inherited_close_from(unsigned i);
/* Tells the old process this one serves (one byte on UNBUSY_READY_FD, then closed).
   Returns true when there was an old process to tell. */
bool upgrade_tell_ready(void);

/* ---- the old process ---- */

struct upgrade;
/* Called once: pid > 0 when the new process is ready (its pid), 0 when it failed. */
typedef void (*upgrade_done_fn)(void *ud, int pid);

/* Spawns argv (argv[0] looked up as execvp does) with the nfds listeners fds. done
   is called later, from loop, never from inside this call. Returns 0 and *out, or a
   libuv error (nothing started). */
int upgrade_start(uv_loop_t *loop, char *const *argv, const int *fds, unsigned nfds,
                  upgrade_done_fn done, void *ud, struct upgrade **out);
/* The new process's pid. */
int upgrade_pid_of(const struct upgrade *u);
/* Stops the new process (SIGTERM) if it has not said it is ready. */
void upgrade_abort(struct upgrade *u);
/* Closes the handles (a ready new process keeps running); frees u once they are closed. */
void upgrade_close(struct upgrade *u);

#endif
