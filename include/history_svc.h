/*
 * history_svc: the history in the daemon.  It listens to every probe's
 * outcomes (pinger_set_hooks), keeps one struct history per probe whose
 * target has `history = yes`, saves them under [daemon] state_directory
 * and loads them back at start, and serves them: `/`, `/target/NAME`,
 * `/graph/NAME.svg` and `/style.css` on the [web] listener, `history` and
 * `graph` on the control socket.
 *
 * Files: one per probe, STATE/history/NAME.F.hist (F is 4 or 6), the
 * format of history.h.  Saving forks (as Redis's BGSAVE): the child writes
 * every file to NAME.F.hist.tmp, makes them all durable with one syncfs,
 * renames each over the old one, fsyncs the directory, deletes *.hist
 * files untouched for
 * history_retention (targets removed from the configuration), and exits;
 * the parent goes on pinging and reaps the child through a pidfd in the
 * loop.  Saves happen every save_interval, after every reload, and at stop
 * (then in the process itself, after any child finished).  At start (and
 * for targets a reload adds) the files of configured targets are loaded;
 * one that is truncated, corrupt, of another format, or of another host or
 * step is logged and set aside as NAME.F.hist.bad-UNIXTIME (never
 * deleted) and the probe starts afresh.
 */
#ifndef BEACOND_HISTORY_SVC_H
#define BEACOND_HISTORY_SVC_H

#include <stdbool.h>
#include <stdint.h>

struct config;
struct ctl;
struct history;
struct loop;
struct pinger;
struct web;

struct history_svc;

struct history_svc *history_svc_new(struct loop *loop, struct pinger *p);
/* Register the pages and the control commands. -1 on ENOMEM. */
int history_svc_register(struct history_svc *hs, struct web *w, struct ctl *c);
/* Take the settings of cfg (at start and after each successful reload,
 * while cfg still has its targets) and load the files of targets that
 * have no history in memory yet. */
void history_svc_configure(struct history_svc *hs, const struct config *cfg);
/* Save in the background now (after a reload). */
void history_svc_save(struct history_svc *hs, const char *why);
/* At stop: close the open rounds, wait for a running save, save in the
 * process.  Blocks (the loop is finishing). */
void history_svc_stop(struct history_svc *hs);
/* The history of the probe (target, family), for readers that show it
 * (`beaconctl target NAME`): false when the target keeps none (`history =
 * no`, or no such target); true with *out the history, or NULL while the
 * probe has had no outcome yet.  *out is valid until the next return to
 * the loop. */
bool history_svc_lookup(const struct history_svc *hs, const char *target, uint8_t family,
			const struct history **out);
/* After pinger_free (which calls the hooks' on_gone). */
void history_svc_free(struct history_svc *hs);

#endif
