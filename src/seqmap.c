/* PLACEHOLDER: replaced by the module's real implementation. */
/* module seqmap: not yet written */
extern int beacond_placeholder_seqmap;
