/* kstamp: kernel timestamps in control messages (see kstamp.h). */
#include <string.h>
#include <time.h>
#include <netinet/in.h>

#include "kstamp.h"

static uint64_t ts_ns(const struct timespec *ts)
{
	if (ts->tv_sec < 0 || ts->tv_nsec < 0)
		return 0;
	return (uint64_t)ts->tv_sec * 1000000000u + (uint64_t)ts->tv_nsec;
}

uint64_t kstamp_cmsg_rx_ns(const struct cmsghdr *c)
{
	struct timespec kts;

	if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_TIMESTAMPNS ||
	    c->cmsg_len < CMSG_LEN(sizeof kts))
		return 0;
	memcpy(&kts, CMSG_DATA(c), sizeof kts);
	return ts_ns(&kts);
}

uint64_t kstamp_rx_ns(struct msghdr *msg)
{
	for (struct cmsghdr *c = CMSG_FIRSTHDR(msg); c; c = CMSG_NXTHDR(msg, c)) {
		uint64_t k = kstamp_cmsg_rx_ns(c);
		if (k)
			return k;
	}
	return 0;
}

uint64_t kstamp_tx_ns(struct msghdr *msg)
{
	uint64_t k = 0;

	for (struct cmsghdr *c = CMSG_FIRSTHDR(msg); c; c = CMSG_NXTHDR(msg, c)) {
		if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_TIMESTAMPING &&
		    c->cmsg_len >= CMSG_LEN(sizeof(struct scm_timestamping))) {
			struct timespec ts;
			memcpy(&ts, CMSG_DATA(c), sizeof ts); /* ts[0]: software */
			k = ts_ns(&ts);
		}
	}
	return k;
}

const void *kstamp_ext_err(struct msghdr *msg, struct sock_extended_err *out)
{
	const void *found = NULL;

	for (struct cmsghdr *c = CMSG_FIRSTHDR(msg); c; c = CMSG_NXTHDR(msg, c)) {
		if (((c->cmsg_level == SOL_IP && c->cmsg_type == IP_RECVERR) ||
		     (c->cmsg_level == SOL_IPV6 && c->cmsg_type == IPV6_RECVERR)) &&
		    c->cmsg_len >= CMSG_LEN(sizeof *out)) {
			memcpy(out, CMSG_DATA(c), sizeof *out);
			found = CMSG_DATA(c);
		}
	}
	return found;
}
