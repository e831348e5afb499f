/*
 * stream: a response body produced in pieces as the client drains it, so
 * that output for 10 000 targets is never one big buffer built in one
 * callback (STYLE.md 16).  The HTTP listener (web) and the control socket
 * (ctl) both drive a stream the same way: when the peer can take more,
 * they call fill() with the free space of their output buffer.
 *
 * A producer is a resumable state machine: it writes whole records (a
 * metric line, a table row, a JSON object) while they fit, remembers where
 * it stopped, and returns.  Producers are pure: they read the view
 * (view.h) and write bytes, nothing else.
 */
#ifndef BEACOND_STREAM_H
#define BEACOND_STREAM_H

#include <stddef.h>
#include <sys/types.h>

struct stream {
	/* Write up to cap bytes into buf.  Returns the bytes written (> 0),
	 * 0 at the end of the body, or -1 on an error the producer cannot
	 * recover from (the transport then closes the connection).  A
	 * producer must make progress whenever cap is at least
	 * STREAM_MIN_CAP. */
	ssize_t (*fill)(struct stream *s, char *buf, size_t cap);
	/* Release the producer (after the end, an error, or a client gone
	 * mid-body).  May be NULL. */
	void (*free)(struct stream *s);
};

/* The largest single record a producer may need to write at once. */
#define STREAM_MIN_CAP 4096

#endif
