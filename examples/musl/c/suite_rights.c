/*
 * Checks of page rights: PROT_NONE and PROT_READ mappings, mprotect back to read-write,
 * system calls handed such pages (EFAULT for what the pages refuse, as on Linux), the
 * rights in /proc/self/maps, and the guard page musl puts below a thread's stack. The
 * boards fault on access against the rights; what the hardware does is checked by the
 * example's `-- segv` and `-- stack-overflow` runs, which must end in a fault report.
 * Run at the end of the `memory` group.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "suite.h"

#define PAGE 4096

/* The rights /proc/self/maps gives the line covering `addr` ("rw-p", "---p"...), or "". */
static const char *maps_rights(void *addr, char out[5])
{
	out[0] = 0;
	FILE *f = fopen("/proc/self/maps", "r");
	if (!f)
		return out;
	char line[256];
	while (fgets(line, sizeof line, f)) {
		unsigned long lo, hi;
		char perms[5];
		if (sscanf(line, "%lx-%lx %4s", &lo, &hi, perms) == 3 && lo <= (uintptr_t)addr &&
		    (uintptr_t)addr < hi) {
			memcpy(out, perms, 5);
			break;
		}
	}
	fclose(f);
	return out;
}

static void *guard_of_own_stack(void *arg)
{
	(void)arg;
	pthread_attr_t attr;
	void *stack = NULL;
	size_t size = 0, guard = 0;
	if (pthread_getattr_np(pthread_self(), &attr))
		return (void *)1;
	pthread_attr_getstack(&attr, &stack, &size);
	pthread_attr_getguardsize(&attr, &guard);
	pthread_attr_destroy(&attr);
	CHECK(guard >= PAGE);
	/* The page below the stack is musl's guard: PROT_NONE, so a write from it fails. */
	int p[2];
	CHECK_EQ(pipe(p), 0);
	CHECK_EQ(write(p[1], (char *)stack - PAGE, 1), -1);
	CHECK_EQ(errno, EFAULT);
	char rights[5];
	CHECK(!strcmp(maps_rights((char *)stack - PAGE, rights), "---p"));
	CHECK(!strcmp(maps_rights((char *)stack + size - 16, rights), "rw-p"));
	close(p[0]);
	close(p[1]);
	return NULL;
}

void checks_page_rights(void)
{
	int p[2];
	CHECK_EQ(pipe(p), 0);
	CHECK_EQ(write(p[1], "0123456789", 10), 10);

	char *m = mmap(NULL, 3 * PAGE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK(m != MAP_FAILED);
	if (m == MAP_FAILED)
		return;
	char rights[5];
	CHECK(!strcmp(maps_rights(m, rights), "---p"));
	/* Neither read into nor written from. */
	CHECK_EQ(read(p[0], m + PAGE, 1), -1);
	CHECK_EQ(errno, EFAULT);
	CHECK_EQ(write(p[1], m, 1), -1);
	CHECK_EQ(errno, EFAULT);

	/* Read-only: written from, not read into; a buffer crossing into a PROT_NONE page
	 * fails whole. */
	CHECK_EQ(mprotect(m + PAGE, PAGE, PROT_READ), 0);
	CHECK(!strcmp(maps_rights(m + PAGE, rights), "r--p"));
	CHECK(!strcmp(maps_rights(m, rights), "---p"));
	CHECK_EQ(m[PAGE + 5], 0);
	CHECK_EQ(write(p[1], m + PAGE, 4), 4);
	CHECK_EQ(read(p[0], m + PAGE, 1), -1);
	CHECK_EQ(errno, EFAULT);
	CHECK_EQ(write(p[1], m + 2 * PAGE - 2, 4), -1);
	CHECK_EQ(errno, EFAULT);

	/* Back to read-write: everything works, and the pipe still holds its 14 bytes. */
	CHECK_EQ(mprotect(m, 3 * PAGE, PROT_READ | PROT_WRITE), 0);
	CHECK(!strcmp(maps_rights(m + PAGE, rights), "rw-p"));
	memset(m, 'a', 3 * PAGE);
	char got[16] = { 0 };
	CHECK_EQ(read(p[0], got, sizeof got), 14);
	CHECK(!memcmp(got, "0123456789\0\0\0\0", 14));

	/* MADV_DONTNEED on a read-only page zeroes it and keeps it read-only; munmap of
	 * protected pages gives them back (a later mapping may reuse them read-write). */
	CHECK_EQ(mprotect(m, PAGE, PROT_READ), 0);
	CHECK_EQ(madvise(m, PAGE, MADV_DONTNEED), 0);
	CHECK_EQ(m[0], 0);
	CHECK(!strcmp(maps_rights(m, rights), "r--p"));
	CHECK_EQ(munmap(m, 3 * PAGE), 0);
	char *again = mmap(NULL, 3 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK(again != MAP_FAILED);
	if (again != MAP_FAILED) {
		memset(again, 'b', 3 * PAGE);
		CHECK_EQ(read(p[0], again, 0), 0);
		CHECK_EQ(munmap(again, 3 * PAGE), 0);
	}
	close(p[0]);
	close(p[1]);

	/* Bad arguments change nothing. */
	char *n = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK(n != MAP_FAILED);
	if (n != MAP_FAILED) {
		/* (musl's mprotect rounds the address down: the system call itself.) */
		CHECK_EQ(syscall(SYS_mprotect, n + 1, PAGE, PROT_NONE), -1);
		CHECK_EQ(errno, EINVAL);
		CHECK_EQ(mprotect(n, PAGE, 0x40), -1);
		CHECK_EQ(errno, EINVAL);
		n[0] = 1;
		CHECK_EQ(munmap(n, PAGE), 0);
	}

	/* musl's thread stacks have a real guard page. */
	pthread_t t;
	void *ret = (void *)2;
	CHECK_EQ(pthread_create(&t, NULL, guard_of_own_stack, NULL), 0);
	CHECK_EQ(pthread_join(t, &ret), 0);
	CHECK(ret == NULL);
}
