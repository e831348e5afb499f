/* PLACEHOLDER: replaced by the module's real implementation. */
/* module ratelimit: not yet written */
extern int beacond_placeholder_ratelimit;
