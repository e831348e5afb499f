/* PLACEHOLDER */
extern int beacond_placeholder_daemon;
