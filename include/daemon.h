/*
 * daemon: the one struct that owns everything (loop, config, services) and
 * the lifecycle around them: start, reload on SIGHUP, statistics on SIGUSR1
 * and on a timer, graceful stop on SIGTERM/SIGINT, systemd notifications.
 */
#ifndef BEACOND_DAEMON_H
#define BEACOND_DAEMON_H

#include "config.h"

struct daemon_options {
	const char *config_path;
	int level_override;      /* -1, or the enum log_level forced by -v/-q */
};

/* Takes ownership of cfg.  Returns the process exit status. */
int daemon_main(const struct daemon_options *opts, struct config *cfg);

#endif
