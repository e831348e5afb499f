/* PLACEHOLDER: replaced by the module's real implementation. */
/* module icmp: not yet written */
extern int beacond_placeholder_icmp;
