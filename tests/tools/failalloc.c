/*
 * failalloc: an LD_PRELOAD shim that makes one allocation of a reload fail,
 * for the allocation-failure reload test (tests/integration/test_failalloc.py).
 *
 * A "window" opens when the process reads SIGHUP from its signalfd (the
 * reload starts) and closes when it writes its reload outcome log line
 * (event=reloaded or event=reload_failed, logfmt or JSON).  Inside a
 * window, allocations (malloc, calloc, realloc, reallocarray,
 * posix_memalign, aligned_alloc, memalign) are counted, and the Nth one
 * fails with ENOMEM.  N is read from the file FAILALLOC_CONTROL when the
 * window opens (decimal; 0 or a missing file: fail nothing), so one process
 * serves a whole series of reloads.  When the window closes, the count and
 * whether the failure was injected are written to FAILALLOC_REPORT as
 * "count injected\n" (rewritten each time).
 *
 * The real allocator is the next one in the lookup order (RTLD_NEXT), so
 * this works over glibc's malloc and over AddressSanitizer's (run with
 * ASAN_OPTIONS=verify_asan_link_order=0).  dlsym() may itself call calloc
 * before the real one is known: those few calls get memory from a static
 * arena, which free() recognises and ignores.
 *
 * Built without sanitizer instrumentation (its malloc runs before
 * AddressSanitizer has set up its shadow memory).  Only raw system calls
 * on the paths that run inside a window's bookkeeping
 * (no stdio, no allocation): the shim must not perturb what it counts.
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>

static void *(*real_malloc)(size_t);
static void *(*real_calloc)(size_t, size_t);
static void *(*real_realloc)(void *, size_t);
static void (*real_free)(void *);
static int (*real_posix_memalign)(void **, size_t, size_t);
static void *(*real_aligned_alloc)(size_t, size_t);
static void *(*real_memalign)(size_t, size_t);
static ssize_t (*real_read)(int, void *, size_t);
static ssize_t (*real_write)(int, const void *, size_t);
static int (*real_signalfd)(int, const sigset_t *, int);

/* For the allocations made by dlsym() (and by AddressSanitizer's start-up,
 * which runs before ours) while the real functions are being resolved. */
static _Alignas(16) unsigned char arena[65536];
static size_t arena_used;
static bool resolving;

static int sigfd = -1;          /* the daemon's signalfd */
static bool window;             /* a reload is running */
static unsigned long fail_at;   /* N: the allocation to fail, 0 = none */
static unsigned long count;     /* allocations in the current window */
static bool injected;

static void resolve(void)
{
	if (real_malloc || resolving)
		return;
	resolving = true;
	real_calloc = (void *(*)(size_t, size_t))dlsym(RTLD_NEXT, "calloc");
	real_malloc = (void *(*)(size_t))dlsym(RTLD_NEXT, "malloc");
	real_realloc = (void *(*)(void *, size_t))dlsym(RTLD_NEXT, "realloc");
	real_free = (void (*)(void *))dlsym(RTLD_NEXT, "free");
	real_posix_memalign = (int (*)(void **, size_t, size_t))dlsym(RTLD_NEXT,
								   "posix_memalign");
	real_aligned_alloc = (void *(*)(size_t, size_t))dlsym(RTLD_NEXT, "aligned_alloc");
	real_memalign = (void *(*)(size_t, size_t))dlsym(RTLD_NEXT, "memalign");
	real_read = (ssize_t (*)(int, void *, size_t))dlsym(RTLD_NEXT, "read");
	real_write = (ssize_t (*)(int, const void *, size_t))dlsym(RTLD_NEXT, "write");
	real_signalfd = (int (*)(int, const sigset_t *, int))dlsym(RTLD_NEXT, "signalfd");
	resolving = false;
}

static void *arena_alloc(size_t want)
{
	want = (want + 15) & ~(size_t)15;
	if (want > sizeof arena - arena_used)
		return NULL;
	void *p = arena + arena_used;
	arena_used += want;
	return p;   /* static storage: already zero */
}

static bool in_arena(const void *p)
{
	return (const unsigned char *)p >= arena && (const unsigned char *)p < arena + sizeof arena;
}

/* Whether this allocation is the one to fail. */
static bool should_fail(void)
{
	if (!window)
		return false;
	count++;
	if (fail_at && count == fail_at) {
		injected = true;
		return true;
	}
	return false;
}

static unsigned long parse_ulong(const char *s, size_t n)
{
	unsigned long v = 0;

	for (size_t i = 0; i < n && s[i] >= '0' && s[i] <= '9'; i++)
		v = v * 10 + (unsigned long)(s[i] - '0');
	return v;
}

static void window_open(void)
{
	const char *path = getenv("FAILALLOC_CONTROL");
	char buf[32];
	long n = 0;

	fail_at = 0;
	if (path) {
		int fd = (int)syscall(SYS_openat, AT_FDCWD, path, O_RDONLY | O_CLOEXEC);
		if (fd >= 0) {
			n = syscall(SYS_read, fd, buf, sizeof buf);
			syscall(SYS_close, fd);
		}
		if (n > 0)
			fail_at = parse_ulong(buf, (size_t)n);
	}
	count = 0;
	injected = false;
	window = true;
}

static void put_ulong(char *buf, size_t *len, unsigned long v)
{
	char tmp[24];
	size_t n = 0;

	do
		tmp[n++] = (char)('0' + v % 10);
	while ((v /= 10) != 0);
	while (n)
		buf[(*len)++] = tmp[--n];
}

static void window_close(void)
{
	const char *path = getenv("FAILALLOC_REPORT");
	char buf[64];
	size_t len = 0;

	window = false;
	if (!path)
		return;
	put_ulong(buf, &len, count);
	buf[len++] = ' ';
	buf[len++] = injected ? '1' : '0';
	buf[len++] = '\n';
	int fd = (int)syscall(SYS_openat, AT_FDCWD, path,
			      O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd >= 0) {
		syscall(SYS_write, fd, buf, len);
		syscall(SYS_close, fd);
	}
}

/* ---- allocators ---- */

void *malloc(size_t n)
{
	resolve();
	if (!real_malloc)
		return arena_alloc(n);
	if (should_fail()) {
		errno = ENOMEM;
		return NULL;
	}
	return real_malloc(n);
}

void *calloc(size_t n, size_t size)
{
	resolve();
	if (!real_calloc) {
		/* dlsym asking for memory before calloc is known. */
		if (size && n > SIZE_MAX / size)
			return NULL;
		return arena_alloc(n * size);
	}
	if (should_fail()) {
		errno = ENOMEM;
		return NULL;
	}
	return real_calloc(n, size);
}

void *realloc(void *p, size_t n)
{
	resolve();
	if (!real_realloc && !p)
		return arena_alloc(n);
	if (!real_realloc || in_arena(p)) {
		errno = ENOMEM;
		return NULL;
	}
	if (should_fail()) {
		errno = ENOMEM;
		return NULL;
	}
	return real_realloc(p, n);
}

void *reallocarray(void *p, size_t n, size_t size)
{
	if (size && n > SIZE_MAX / size) {
		errno = ENOMEM;
		return NULL;
	}
	return realloc(p, n * size);
}

void free(void *p)
{
	if (p == NULL || in_arena(p))
		return;
	resolve();
	real_free(p);
}

int posix_memalign(void **out, size_t align, size_t n)
{
	resolve();
	if (should_fail())
		return ENOMEM;
	return real_posix_memalign(out, align, n);
}

void *aligned_alloc(size_t align, size_t n)
{
	resolve();
	if (should_fail()) {
		errno = ENOMEM;
		return NULL;
	}
	return real_aligned_alloc(align, n);
}

void *memalign(size_t align, size_t n)
{
	resolve();
	if (should_fail()) {
		errno = ENOMEM;
		return NULL;
	}
	return real_memalign(align, n);
}

/* ---- the window's edges ---- */

int signalfd(int fd, const sigset_t *mask, int flags)
{
	resolve();
	int r = real_signalfd(fd, mask, flags);
	if (r >= 0)
		sigfd = r;
	return r;
}

ssize_t read(int fd, void *buf, size_t n)
{
	resolve();
	ssize_t r = real_read(fd, buf, n);

	if (fd == sigfd && sigfd >= 0 && r >= (ssize_t)sizeof(struct signalfd_siginfo)) {
		const struct signalfd_siginfo *si = buf;
		for (size_t i = 0; i < (size_t)r / sizeof *si; i++)
			if (si[i].ssi_signo == SIGHUP)
				window_open();
	}
	return r;
}

static bool is_outcome(const void *buf, size_t n)
{
	static const char *const marks[] = {
		"event=reloaded", "event=reload_failed",
		"\"event\":\"reloaded\"", "\"event\":\"reload_failed\"",
	};

	for (size_t i = 0; i < sizeof marks / sizeof marks[0]; i++)
		if (memmem(buf, n, marks[i], strlen(marks[i])))
			return true;
	return false;
}

ssize_t write(int fd, const void *buf, size_t n)
{
	resolve();
	if (window && is_outcome(buf, n))
		window_close();
	return real_write(fd, buf, n);
}
