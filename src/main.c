/* beacond: command line, first config load, then the daemon. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <sysexits.h>

#include "config.h"
#include "daemon.h"
#include "log.h"

static void usage(FILE *out)
{
	fprintf(out,
		"usage: beacond [-c FILE] [-t] [-v] [-q] [-V] [-h]\n"
		"\n"
		"  -c, --config FILE  configuration file (default " CONFIG_DEFAULT_PATH ")\n"
		"  -t, --check        validate the configuration and exit (0 or 78)\n"
		"  -v, --verbose      log at debug level, whatever log_level says\n"
		"  -q, --quiet        log warnings and errors only\n"
		"  -V, --version      print the version and exit\n"
		"  -h, --help         print this help and exit\n"
		"\n"
		"Signals: TERM/INT stop gracefully, HUP reloads the configuration and\n"
		"reopens the log file, USR1 logs statistics and ping summaries.\n"
		"See beacond(8) and beacond.ini(5).\n");
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "check", no_argument, NULL, 't' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "version", no_argument, NULL, 'V' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct daemon_options opts = {
		.config_path = CONFIG_DEFAULT_PATH,
		.level_override = -1,
	};
	bool check = false;
	int c;

	while ((c = getopt_long(argc, argv, "c:tvqVh", longopts, NULL)) != -1) {
		switch (c) {
		case 'c':
			opts.config_path = optarg;
			break;
		case 't':
			check = true;
			break;
		case 'v':
			opts.level_override = LOG_DEBUG;
			break;
		case 'q':
			opts.level_override = LOG_WARNING;
			break;
		case 'V':
			printf("beacond %s\n", BEACOND_VERSION);
			return 0;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return EX_USAGE;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "beacond: unexpected argument \"%s\"\n", argv[optind]);
		usage(stderr);
		return EX_USAGE;
	}

	struct config *cfg;
	char err[512];
	if (config_load(opts.config_path, &cfg, err, sizeof err) < 0) {
		fprintf(stderr, "beacond: %s\n", err);
		return EX_CONFIG;
	}
	if (check) {
		printf("beacond: %s: configuration is valid (%zu target%s)\n",
		       opts.config_path, cfg->n_targets, cfg->n_targets == 1 ? "" : "s");
		config_free(cfg);
		return 0;
	}
	return daemon_main(&opts, cfg);
}
