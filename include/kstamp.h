/*
 * kstamp: the kernel's software timestamps in control messages, shared by
 * the pinger and the STAMP reflector.  Pure functions over a received
 * msghdr; the sockets ask for them with SO_TIMESTAMPNS (receive) and
 * SO_TIMESTAMPING (transmit, read back from the error queue).
 */
#ifndef BEACOND_KSTAMP_H
#define BEACOND_KSTAMP_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <linux/errqueue.h>

/* The SCM_TIMESTAMPNS receive stamp (CLOCK_REALTIME ns); 0 when absent. */
uint64_t kstamp_rx_ns(struct msghdr *msg);
/* The same from one control message (0 unless it is SCM_TIMESTAMPNS), for
 * callers that walk the control messages themselves. */
uint64_t kstamp_cmsg_rx_ns(const struct cmsghdr *c);
/* The software stamp of an SCM_TIMESTAMPING message (ts[0], CLOCK_REALTIME
 * ns); 0 when absent. */
uint64_t kstamp_tx_ns(struct msghdr *msg);
/* The sock_extended_err of an error-queue message (IP_RECVERR or
 * IPV6_RECVERR, the last one), copied to *out (the control data need not
 * be aligned for it).  Returns where it sits in the control data (the
 * offender address, SO_EE_OFFENDER, follows it there), or NULL when there
 * is none. */
const void *kstamp_ext_err(struct msghdr *msg, struct sock_extended_err *out);

#endif
