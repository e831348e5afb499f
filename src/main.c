/* PLACEHOLDER main: replaced by the daemon's real entry point. */
int main(void) { return 0; }
