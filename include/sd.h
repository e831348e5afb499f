/*
 * sd: the systemd service protocols, implemented directly (no libsystemd):
 * sd_notify datagrams over NOTIFY_SOCKET, the watchdog period, and socket
 * activation through LISTEN_FDS / LISTEN_PID / LISTEN_FDNAMES.
 */
#ifndef BEACOND_SD_H
#define BEACOND_SD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "util.h"

/* Send one notification ("READY=1", "STATUS=...\nMONOTONIC_USEC=...").
 * Returns 1 if sent, 0 when NOTIFY_SOCKET is unset, -1 with errno. */
int sd_notify(const char *state);
int sd_notifyf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* The watchdog period in microseconds from WATCHDOG_USEC when WATCHDOG_PID is
 * unset or ours; 0 when there is no watchdog. */
uint64_t sd_watchdog_usec(void);

struct sd_listen_fd {
	int fd;
	int type;                /* SOCK_STREAM, SOCK_DGRAM, ... from SO_TYPE */
	struct endpoint addr;    /* from getsockname */
	char name[64];           /* LISTEN_FDNAMES entry or "" */
	bool taken;
	bool listening;          /* SO_ACCEPTCONN: a stream socket in listen() */
};

struct sd_listen_set {
	struct sd_listen_fd *v;
	size_t n;
	bool named;              /* LISTEN_FDNAMES was set */
};

/* Collect sockets passed by systemd (only when LISTEN_PID is ours), set them
 * CLOEXEC and nonblocking, and unset the LISTEN_* variables.  n = 0 when
 * there are none.  Returns 0 or -1 with err. */
int sd_listen_collect(struct sd_listen_set *set, char *err, size_t errlen);
/* Find an untaken socket of this type bound to ep, mark it taken and return
 * its fd; -1 when none.  Stream sockets are only returned when listening. */
int sd_listen_take(struct sd_listen_set *set, int type, const struct endpoint *ep);
/* The socket for a configured endpoint: an untaken inherited one of this
 * type bound to ep (then *from_sd = true), else a new one from net_listen().
 * Returns the fd, or -1 with errno. */
int sd_listen_open(struct sd_listen_set *set, int type, const struct endpoint *ep,
		   int backlog, bool *from_sd);
/* The one adoption filter, for every service: take the next untaken IPv4
 * or IPv6 socket of this type, named `only` (when not NULL) and not named
 * `except` (when not NULL); -1 when none.  An AF_UNIX (or any other family)
 * socket is not ours to serve and is left for sd_listen_release(). */
int sd_listen_adopt(struct sd_listen_set *set, int type, const char *only,
		    const char *except);
/* Take any untaken socket of this type, of any family (named `name` if
 * name is non-NULL and the set has names); -1 when none.  For a socket
 * that is not a service's listener (the AF_UNIX control socket). */
int sd_listen_take_any(struct sd_listen_set *set, int type, const char *name);
/* Close the sockets nobody took, free the set. */
void sd_listen_release(struct sd_listen_set *set);

#endif
