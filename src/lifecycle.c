#include "lifecycle.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/log.h"
#include "base/procstate.h"
#include "base/sdnotify.h"
#include "upgrade.h"

static struct {
    uv_loop_t *loop;
    struct worker *workers;
    unsigned nworkers;
    /* copied at start: a reload frees the snapshot they came from, and keeps them (restart) */
    uint32_t drain_delay_ms, drain_timeout_ms;
    char **argv;
    uv_signal_t term, intr, usr2;
    uv_timer_t delay; /* server.drain_delay after SIGTERM */
    struct upgrade *upgrade;
    bool started;
} lc;

/* The one way out: every worker stops accepting and finishes; main.c goes on after uv_run. */
static void drain_now(const char *why)
{
    if (procstate_get() == PROCSTATE_DRAINING) return;
    procstate_set(PROCSTATE_DRAINING);
    uv_timer_stop(&lc.delay);
    log_info("%s: draining (up to server.drain_timeout %u ms), then exiting", why,
             lc.drain_timeout_ms);
    for (unsigned i = 0; i < lc.nworkers; i++)
        worker_drain(&lc.workers[i]);
    uv_stop(lc.loop);
}

static void on_delay_over(uv_timer_t *t)
{
    (void)t;
    drain_now("server.drain_delay over");
}

/* Not ready from now on; the listeners accept for drain_delay ms more. */
static void stop_after(unsigned delay_ms, const char *signame)
{
    procstate_set(PROCSTATE_STOPPING);
    sdnotify("STOPPING=1\nSTATUS=draining");
    if (lc.upgrade) {
        log_warn("%s during an upgrade: stopping the new process too", signame);
        upgrade_abort(lc.upgrade);
    }
    if (delay_ms == 0) {
        drain_now(signame);
        return;
    }
    log_info("%s: /readyz says not ready; still accepting for server.drain_delay (%u ms), then "
             "draining (a second signal drains at once)",
             signame, delay_ms);
    uv_timer_start(&lc.delay, on_delay_over, delay_ms, 0);
}

static void on_stop_signal(uv_signal_t *s, int signum)
{
    (void)s;
    const char *name = signum == SIGINT ? "SIGINT" : "SIGTERM";
    switch (procstate_get()) {
    case PROCSTATE_STOPPING:
        drain_now(signum == SIGINT ? "second signal (SIGINT)" : "second signal (SIGTERM)");
        break;
    case PROCSTATE_DRAINING:
        log_warn("%s while draining: exiting now", name);
        _exit(1);
    default:
        stop_after(signum == SIGINT ? 0 : lc.drain_delay_ms, name);
    }
}

static void on_upgrade_done(void *ud, int pid)
{
    (void)ud;
    if (procstate_get() != PROCSTATE_UPGRADING) return; /* a stop signal came first */
    if (pid <= 0) {
        procstate_set(PROCSTATE_SERVING);
        sdnotify("READY=1\nSTATUS=serving (the upgrade failed)");
        log_error("upgrade: failed; this process (%d) goes on serving", (int)getpid());
        return; /* lc.upgrade stays until the next SIGUSR2 or the exit: its child is reaped */
    }
    /* The sockets are shared: nothing to wait for before this copy stops accepting. */
    sdnotifyf("MAINPID=%d\nREADY=1\nSTATUS=handed over to %d", pid, pid);
    log_info("upgrade: process %d serves on the same sockets; this one (%d) drains", pid,
             (int)getpid());
    drain_now("upgrade");
}

static void on_usr2(uv_signal_t *s, int signum)
{
    (void)s;
    (void)signum;
    enum procstate st = procstate_get();
    if (st != PROCSTATE_SERVING) {
        log_warn("SIGUSR2: no upgrade while %s", procstate_name(st));
        return;
    }
    upgrade_close(lc.upgrade); /* a failed earlier one */
    lc.upgrade = NULL;
    int *fds = calloc(lc.nworkers, sizeof *fds);
    if (!fds) {
        log_error("SIGUSR2: out of memory");
        return;
    }
    for (unsigned i = 0; i < lc.nworkers; i++) {
        uv_os_fd_t fd = -1;
        uv_fileno((uv_handle_t *)&lc.workers[i].server.listener, &fd);
        fds[i] = fd;
    }
    sdnotifyf("RELOADING=1\nMONOTONIC_USEC=%llu\nSTATUS=upgrading", sdnotify_monotonic_usec());
    procstate_set(PROCSTATE_UPGRADING);
    int rc = upgrade_start(lc.loop, lc.argv, fds, lc.nworkers, on_upgrade_done, NULL, &lc.upgrade);
    free(fds);
    if (rc < 0) {
        procstate_set(PROCSTATE_SERVING);
        sdnotify("READY=1\nSTATUS=serving (the upgrade failed)");
        log_error("SIGUSR2: cannot start %s: %s; this process goes on serving", lc.argv[0],
                  uv_strerror(rc));
        lc.upgrade = NULL;
        return;
    }
    log_info("SIGUSR2: upgrade: started %s as process %d with %u listening socket%s", lc.argv[0],
             (int)upgrade_pid_of(lc.upgrade), lc.nworkers, lc.nworkers == 1 ? "" : "s");
}

void lifecycle_start(uv_loop_t *loop, struct worker *workers, unsigned nworkers,
                     const struct cfg_server *srv, char **argv)
{
    lc.loop = loop;
    lc.workers = workers;
    lc.nworkers = nworkers;
    lc.drain_delay_ms = srv->drain_delay_ms;
    lc.drain_timeout_ms = srv->drain_timeout_ms;
    lc.argv = argv;
    uv_signal_init(loop, &lc.term);
    uv_signal_init(loop, &lc.intr);
    uv_signal_init(loop, &lc.usr2);
    uv_signal_start(&lc.term, on_stop_signal, SIGTERM);
    uv_signal_start(&lc.intr, on_stop_signal, SIGINT);
    uv_signal_start(&lc.usr2, on_usr2, SIGUSR2);
    uv_unref((uv_handle_t *)&lc.usr2);
    uv_timer_init(loop, &lc.delay);
    uv_unref((uv_handle_t *)&lc.delay);
    lc.started = true;
}

void lifecycle_serving(void)
{
    procstate_set(PROCSTATE_SERVING);
    /* After an upgrade the old process names this one MAINPID; READY=1 from here would come
       from a process the service manager does not know yet. */
    if (!upgrade_tell_ready()) sdnotify("READY=1\nSTATUS=serving");
}

void lifecycle_close(void)
{
    if (!lc.started) return;
    lc.started = false;
    uv_close((uv_handle_t *)&lc.term, NULL);
    uv_close((uv_handle_t *)&lc.intr, NULL);
    uv_close((uv_handle_t *)&lc.usr2, NULL);
    uv_close((uv_handle_t *)&lc.delay, NULL);
    upgrade_close(lc.upgrade);
    lc.upgrade = NULL;
}
