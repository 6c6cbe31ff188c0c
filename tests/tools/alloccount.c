/*
 * alloccount — an LD_PRELOAD shim that counts a process's heap allocations,
 * for tests that hold the gateway's per-request allocations to a bound
 * (tests/integration/hotpath.test.mjs).
 *
 * malloc, calloc, realloc (of NULL or to a new size), posix_memalign,
 * aligned_alloc and memalign each add one to a counter; free of non-NULL
 * adds one to another. The counters live in the file named by
 * ALLOCCOUNT_FILE (created, 16 bytes: two little-endian uint64, allocations
 * then frees), mapped shared, so the test reads them while the process runs.
 * Without the variable nothing is counted. The calls go on to glibc's own
 * implementations (__libc_malloc and friends).
 */
#include <fcntl.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void __libc_free(void *);
extern void *__libc_memalign(size_t, size_t);

static volatile uint64_t *counters;

__attribute__((constructor)) static void alloccount_init(void)
{
    const char *path = getenv("ALLOCCOUNT_FILE");
    if (!path)
        return;
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0)
        return;
    if (ftruncate(fd, 16) == 0) {
        void *p = mmap(NULL, 16, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (p != MAP_FAILED)
            counters = p;
    }
    close(fd);
}

static void count(int which)
{
    if (counters)
        __atomic_add_fetch(&counters[which], 1, __ATOMIC_RELAXED);
}

void *malloc(size_t n)
{
    count(0);
    return __libc_malloc(n);
}

void *calloc(size_t n, size_t size)
{
    count(0);
    return __libc_calloc(n, size);
}

void *realloc(void *p, size_t n)
{
    count(0);
    return __libc_realloc(p, n);
}

void free(void *p)
{
    if (p)
        count(1);
    __libc_free(p);
}

int posix_memalign(void **out, size_t align, size_t n)
{
    count(0);
    void *p = __libc_memalign(align, n);
    if (!p)
        return 12; /* ENOMEM */
    *out = p;
    return 0;
}

void *aligned_alloc(size_t align, size_t n)
{
    count(0);
    return __libc_memalign(align, n);
}

void *memalign(size_t align, size_t n)
{
    count(0);
    return __libc_memalign(align, n);
}
