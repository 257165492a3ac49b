/*
 * Checks of mmap of files: private copies (contents, zeros past the end of file, privacy),
 * shared mappings of ramfs files (coherent with read and write, kept after munmap and
 * close), msync, /dev/zero, POSIX named semaphores and shm_open (which map a file in
 * /dev/shm shared), and Linux's errors. Kept in a file of their own (called at the end of
 * the `memory` group) so that other additions to the suite merge apart.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <semaphore.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "suite.h"

#define PAGE 4096

static unsigned char pattern_at(size_t i)
{
	return (unsigned char)(i * 7 + i / PAGE + 1);
}

static void private_mappings(void)
{
	enum { SIZE = PAGE + 904 };
	unsigned char data[SIZE];
	for (size_t i = 0; i < SIZE; i++)
		data[i] = pattern_at(i);
	int fd = open("/mmap-private", O_CREAT | O_RDWR | O_TRUNC, 0644);
	CHECK(fd >= 0);
	CHECK_EQ(write(fd, data, SIZE), SIZE);

	unsigned char *m = mmap(NULL, 2 * PAGE, PROT_READ, MAP_PRIVATE, fd, 0);
	CHECK(m != MAP_FAILED);
	if (m != MAP_FAILED) {
		CHECK_EQ((uintptr_t)m % PAGE, 0);
		CHECK_EQ(memcmp(m, data, SIZE), 0);
		int zero = 1;
		for (size_t i = SIZE; i < 2 * PAGE; i++)
			zero &= m[i] == 0;
		CHECK(zero); /* past the end of file */
		CHECK_EQ(munmap(m, 2 * PAGE), 0);
	}

	/* At an offset, written: the stores stay private. */
	m = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, PAGE);
	CHECK(m != MAP_FAILED);
	if (m != MAP_FAILED) {
		CHECK_EQ(memcmp(m, data + PAGE, SIZE - PAGE), 0);
		memcpy(m, "private", 7);
		unsigned char back[7];
		CHECK_EQ(pread(fd, back, 7, PAGE), 7);
		CHECK_EQ(memcmp(back, data + PAGE, 7), 0);
		CHECK_EQ(mprotect(m, PAGE, PROT_READ), 0);
		CHECK_EQ(munmap(m, PAGE), 0);
	}
	close(fd);
	CHECK_EQ(unlink("/mmap-private"), 0);

	/* /dev/zero maps as anonymous memory. */
	int zfd = open("/dev/zero", O_RDWR);
	CHECK(zfd >= 0);
	unsigned char *z = mmap(NULL, 3 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE, zfd, 0);
	CHECK(z != MAP_FAILED);
	if (z != MAP_FAILED) {
		CHECK(z[0] == 0 && z[3 * PAGE - 1] == 0);
		z[5] = 1;
		CHECK_EQ(munmap(z, 3 * PAGE), 0);
	}
	close(zfd);
}

static void shared_mappings(void)
{
	int fd = open("/mmap-shared", O_CREAT | O_RDWR | O_TRUNC, 0644);
	CHECK(fd >= 0);
	CHECK_EQ(write(fd, "hello", 5), 5);
	char *m = mmap(NULL, 2 * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	CHECK(m != MAP_FAILED);
	if (m == MAP_FAILED) {
		close(fd);
		return;
	}
	CHECK(!memcmp(m, "hello\0", 6));
	/* A store through the mapping is what read sees... */
	m[0] = 'J';
	char buf[16] = { 0 };
	CHECK_EQ(pread(fd, buf, sizeof buf, 0), 5);
	CHECK(!memcmp(buf, "Jello", 5));
	/* ...and a write what the mapping sees, on any of its pages. */
	CHECK_EQ(pwrite(fd, "two", 3, PAGE + 10), 3);
	CHECK(!memcmp(m + PAGE + 10, "two", 3));
	CHECK_EQ(lseek(fd, 0, SEEK_END), PAGE + 13);
	CHECK_EQ(msync(m, 2 * PAGE, MS_SYNC), 0);
	CHECK_EQ(msync(m, PAGE, MS_SYNC | MS_ASYNC), -1);
	CHECK_EQ(errno, EINVAL);
	memcpy(m + 1, "ELLO", 4);
	CHECK_EQ(munmap(m, 2 * PAGE), 0);
	close(fd);
	/* The file keeps what the mapping stored. */
	fd = open("/mmap-shared", O_RDONLY);
	CHECK(fd >= 0);
	memset(buf, 0, sizeof buf);
	CHECK_EQ(read(fd, buf, 5), 5);
	CHECK(!memcmp(buf, "JELLO", 5));
	close(fd);
	CHECK_EQ(unlink("/mmap-shared"), 0);

	/* shm_open, ftruncate, a shared mapping and shm_unlink, as POSIX shared memory. */
	int shm = shm_open("/uk-suite-shm", O_CREAT | O_EXCL | O_RDWR, 0600);
	CHECK(shm >= 0);
	CHECK_EQ(ftruncate(shm, 100), 0);
	int *word = mmap(NULL, 100, PROT_READ | PROT_WRITE, MAP_SHARED, shm, 0);
	CHECK(word != MAP_FAILED);
	if (word != MAP_FAILED) {
		*word = 0x1234;
		int got = 0;
		CHECK_EQ(pread(shm, &got, sizeof got, 0), sizeof got);
		CHECK_EQ(got, 0x1234);
		CHECK_EQ(munmap(word, 100), 0);
	}
	close(shm);
	CHECK_EQ(shm_unlink("/uk-suite-shm"), 0);
}

static void *post_later(void *arg)
{
	sem_t *sem = arg;
	sched_yield();
	return (void *)(intptr_t)sem_post(sem);
}

static void named_semaphores(void)
{
	sem_unlink("/uk-suite-sem");
	sem_t *sem = sem_open("/uk-suite-sem", O_CREAT | O_EXCL, 0600, 1);
	CHECK(sem != SEM_FAILED);
	if (sem == SEM_FAILED)
		return;
	CHECK_EQ(sem_wait(sem), 0);
	CHECK_EQ(sem_trywait(sem), -1);
	CHECK_EQ(errno, EAGAIN);
	/* A waiter woken by a post from another thread. */
	pthread_t t;
	CHECK_EQ(pthread_create(&t, NULL, post_later, sem), 0);
	CHECK_EQ(sem_wait(sem), 0);
	void *ret = (void *)1;
	CHECK_EQ(pthread_join(t, &ret), 0);
	CHECK(ret == NULL);
	CHECK_EQ(sem_post(sem), 0);
	int value = -1;
	CHECK_EQ(sem_getvalue(sem, &value), 0);
	CHECK_EQ(value, 1);
	/* Opening it again in the process gives the same semaphore. */
	sem_t *again = sem_open("/uk-suite-sem", 0);
	CHECK(again == sem);
	CHECK(sem_open("/uk-suite-sem", O_CREAT | O_EXCL, 0600, 0) == SEM_FAILED);
	CHECK_EQ(errno, EEXIST);
	CHECK_EQ(sem_close(again), 0);
	CHECK_EQ(sem_close(sem), 0);
	CHECK_EQ(sem_unlink("/uk-suite-sem"), 0);
	CHECK(sem_open("/uk-suite-sem", 0) == SEM_FAILED);
	CHECK_EQ(errno, ENOENT);
	CHECK_EQ(sem_unlink("/uk-suite-sem"), -1);
	CHECK_EQ(errno, ENOENT);
}

/* mmap(...) fails with `want`. */
static void fails(int fd, size_t len, int prot, int flags, off_t off, int want, int line)
{
	errno = 0;
	void *m = mmap(NULL, len, prot, flags, fd, off);
	suite_check(m == MAP_FAILED, "mmap fails", __FILE__, line);
	suite_check_eq(errno, want, "errno", __FILE__, line);
	if (m != MAP_FAILED)
		munmap(m, len);
}

static void errors(void)
{
	int fd = open("/mmap-errors", O_CREAT | O_RDWR | O_TRUNC, 0644);
	CHECK(fd >= 0);
	CHECK_EQ(write(fd, "x", 1), 1);
	int ro = open("/mmap-errors", O_RDONLY);
	int wo = open("/mmap-errors", O_WRONLY);
	int dir = open("/", O_RDONLY | O_DIRECTORY);
	int p[2] = { -1, -1 };
	CHECK_EQ(pipe(p), 0);
	fails(99, PAGE, PROT_READ, MAP_PRIVATE, 0, EBADF, __LINE__);
	fails(wo, PAGE, PROT_READ, MAP_PRIVATE, 0, EACCES, __LINE__);
	fails(ro, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, 0, EACCES, __LINE__);
	fails(dir, PAGE, PROT_READ, MAP_PRIVATE, 0, ENODEV, __LINE__);
	fails(p[0], PAGE, PROT_READ, MAP_PRIVATE, 0, ENODEV, __LINE__);
	fails(fd, PAGE, PROT_READ, MAP_PRIVATE, 100, EINVAL, __LINE__);
	fails(fd, 0, PROT_READ, MAP_PRIVATE, 0, EINVAL, __LINE__);
	fails(fd, PAGE, PROT_READ, 0, 0, EINVAL, __LINE__);
	/* A read-only shared mapping of a read-only descriptor is fine. */
	void *m = mmap(NULL, PAGE, PROT_READ, MAP_SHARED, ro, 0);
	CHECK(m != MAP_FAILED && *(char *)m == 'x');
	if (m != MAP_FAILED)
		CHECK_EQ(munmap(m, PAGE), 0);
	/* The refusals changed nothing. */
	struct stat st;
	CHECK_EQ(fstat(fd, &st), 0);
	CHECK_EQ(st.st_size, 1);
	close(p[0]);
	close(p[1]);
	close(dir);
	close(wo);
	close(ro);
	close(fd);
	CHECK_EQ(unlink("/mmap-errors"), 0);
}

/* mremap: shrinking keeps the address, growing moves with MREMAP_MAYMOVE only, and a
 * large realloc (musl maps blocks this big and grows them with mremap) keeps its bytes. */
static void remapping(void)
{
	unsigned char *m = mmap(NULL, 3 * PAGE, PROT_READ | PROT_WRITE,
				MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK(m != MAP_FAILED);
	for (size_t i = 0; i < 3 * PAGE; i++)
		m[i] = pattern_at(i);
	errno = 0;
	CHECK(mremap(m, 3 * PAGE, 8 * PAGE, 0) == MAP_FAILED && errno == ENOMEM);
	errno = 0;
	CHECK(mremap(m + 1, PAGE, 2 * PAGE, MREMAP_MAYMOVE) == MAP_FAILED && errno == EINVAL);
	CHECK(mremap(m, 3 * PAGE, 2 * PAGE, 0) == m);
	unsigned char *g = mremap(m, 2 * PAGE, 8 * PAGE, MREMAP_MAYMOVE);
	CHECK(g != MAP_FAILED);
	if (g != MAP_FAILED) {
		size_t same = 0, zero = 0;
		for (size_t i = 0; i < 2 * PAGE; i++)
			same += g[i] == pattern_at(i);
		for (size_t i = 2 * PAGE; i < 8 * PAGE; i++)
			zero += g[i] == 0;
		CHECK_EQ(same, 2 * PAGE);
		CHECK_EQ(zero, 6 * PAGE);
		CHECK_EQ(munmap(g, 8 * PAGE), 0);
	}

	enum { BIG = 300 * 1024, BIGGER = 2 * 1024 * 1024 };
	unsigned char *b = malloc(BIG);
	CHECK(b != NULL);
	if (b) {
		for (size_t i = 0; i < BIG; i++)
			b[i] = pattern_at(i);
		unsigned char *c = realloc(b, BIGGER);
		CHECK(c != NULL);
		if (c) {
			size_t same = 0;
			for (size_t i = 0; i < BIG; i++)
				same += c[i] == pattern_at(i);
			CHECK_EQ(same, BIG);
			b = c;
		}
		free(b);
	}
}

/* A partial munmap (and a shrinking mremap) gives its pages back at once, as on Linux:
 * 48 mappings of 2 MiB, each cut down to its first page, fit in the image's 64 MiB only
 * because the rest of each goes back before the next is made. */
static void partial_unmaps_give_memory_back(void)
{
	enum { COUNT = 48, SIZE = 2 * 1024 * 1024 };
	unsigned char *heads[COUNT];
	int made = 0, cut = 1;
	for (int i = 0; i < COUNT; i++) {
		unsigned char *m = mmap(NULL, SIZE, PROT_READ | PROT_WRITE,
					MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (m == MAP_FAILED)
			break;
		m[0] = (unsigned char)i;
		m[SIZE - 1] = (unsigned char)i;
		if (i % 2)
			cut &= munmap(m + PAGE, SIZE - PAGE) == 0;
		else
			cut &= mremap(m, SIZE, PAGE, 0) == m;
		heads[made++] = m;
	}
	CHECK_EQ(made, COUNT);
	CHECK(cut);
	int kept = 1;
	for (int i = 0; i < made; i++) {
		kept &= heads[i][0] == (unsigned char)i;
		kept &= munmap(heads[i], PAGE) == 0;
	}
	CHECK(kept);
	/* The page pool gave the chunks it emptied back to the heap: one mapping of a quarter
	 * of the machine is contiguous memory again. */
	unsigned char *whole = mmap(NULL, 16 << 20, PROT_READ | PROT_WRITE,
				    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK(whole != MAP_FAILED);
	if (whole != MAP_FAILED)
		CHECK_EQ(munmap(whole, 16 << 20), 0);
}

/* memfd_create: an anonymous file shared with a mapping of it, and seals that fix its size
 * and then its contents (a write seal waits for the shared mapping to go). */
static void memfds(void)
{
	int fd = memfd_create("suite", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	CHECK(fd >= 0);
	if (fd < 0)
		return;
	CHECK_EQ(fcntl(fd, F_GETFD), FD_CLOEXEC);
	CHECK_EQ(ftruncate(fd, PAGE), 0);
	char *m = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	CHECK(m != MAP_FAILED);
	if (m == MAP_FAILED)
		return;
	memcpy(m, "through the mapping", 20);
	char buf[20] = { 0 };
	CHECK(pread(fd, buf, 20, 0) == 20 && strcmp(buf, "through the mapping") == 0);
	CHECK_EQ(fcntl(fd, F_GET_SEALS), 0);
	CHECK_EQ(fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW), 0);
	CHECK(ftruncate(fd, 0) == -1 && errno == EPERM);
	CHECK(pwrite(fd, "x", 1, PAGE) == -1 && errno == EPERM);
	CHECK(fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE) == -1 && errno == EBUSY);
	CHECK_EQ(munmap(m, PAGE), 0);
	CHECK_EQ(fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE | F_SEAL_SEAL), 0);
	CHECK(write(fd, "x", 1) == -1 && errno == EPERM);
	CHECK(mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0) == MAP_FAILED &&
	      errno == EPERM);
	CHECK(fcntl(fd, F_ADD_SEALS, F_SEAL_FUTURE_WRITE) == -1 && errno == EPERM);
	CHECK_EQ(fcntl(fd, F_GET_SEALS), F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL);
	CHECK_EQ(close(fd), 0);
	errno = 0;
	CHECK(memfd_create("x", MFD_HUGETLB) == -1 && errno == EINVAL);
}

void checks_mmap_files(void)
{
	private_mappings();
	shared_mappings();
	named_semaphores();
	errors();
	remapping();
	partial_unmaps_give_memory_back();
	memfds();
}
