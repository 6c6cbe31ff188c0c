/*
 * sdnotify — the service manager's readiness protocol (systemd's sd_notify,
 * Type=notify), written by hand: one datagram of "KEY=VALUE\n" lines to the
 * unix socket named by $NOTIFY_SOCKET (a path, or "@name" in the abstract
 * namespace). No libsystemd.
 *
 * The composition root calls it: READY=1 once the listeners are up,
 * RELOADING=1 when a binary upgrade starts, MAINPID=PID with READY=1 when
 * the new process has taken over, STOPPING=1 when a drain starts. The send
 * never blocks (MSG_DONTWAIT): a full socket loses the message rather than
 * stall an event loop.
 */
#ifndef UNBUSY_SDNOTIFY_H
#define UNBUSY_SDNOTIFY_H

/* Sends state (e.g. "READY=1\nSTATUS=serving") to $NOTIFY_SOCKET. Returns 1 when sent,
   0 when the variable is not set (not run by a service manager), -errno on failure. */
int sdnotify(const char *state);

/* The same with a printf format; the message is cut at 1 KiB. */
int sdnotifyf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* CLOCK_MONOTONIC in microseconds, for "MONOTONIC_USEC=" (Type=notify-reload wants it
   beside RELOADING=1). */
unsigned long long sdnotify_monotonic_usec(void);

#endif
