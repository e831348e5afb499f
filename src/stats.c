/* PLACEHOLDER: replaced by the module's real implementation. */
/* module stats: not yet written */
extern int beacond_placeholder_stats;
