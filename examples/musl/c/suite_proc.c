/*
 * Checks of /proc (uk-vfs's procfs over uk-posix-process), run at the end of the `process`
 * group: what musl, Rust's std and allocators read there, in Linux's formats, and the
 * refusals of a read-only filesystem.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysinfo.h>
#include <sys/utsname.h>
#include <unistd.h>
#include "suite.h"

/* Reads the whole of `path` into `buf` (NUL-terminated); returns the bytes read or -1. */
static ssize_t slurp(const char *path, char *buf, size_t size)
{
	int fd = open(path, O_RDONLY);
	if (fd < 0)
		return -1;
	size_t used = 0;
	ssize_t n;
	while (used + 1 < size && (n = read(fd, buf + used, size - 1 - used)) > 0)
		used += n;
	close(fd);
	buf[used] = 0;
	return used;
}

/* Whether a line of /proc/self/maps covers `addr`. */
static int mapped(const void *addr)
{
	FILE *f = fopen("/proc/self/maps", "r");
	if (!f)
		return -1;
	char line[256];
	int found = 0;
	while (fgets(line, sizeof line, f)) {
		unsigned long start, end;
		if (sscanf(line, "%lx-%lx", &start, &end) == 2 && start <= (unsigned long)addr &&
		    (unsigned long)addr < end)
			found = 1;
	}
	fclose(f);
	return found;
}

void checks_proc(void)
{
	static char buf[8192];
	char path[64];
	pid_t pid = getpid();

	/* /proc/self/stat: the pid first, the thread's name in parentheses, running. */
	CHECK(slurp("/proc/self/stat", buf, sizeof buf) > 0);
	int field = -1;
	char state = 0;
	CHECK(sscanf(buf, "%d", &field) == 1 && field == pid);
	char *paren = strrchr(buf, ')');
	CHECK(paren && sscanf(paren + 2, "%c", &state) == 1 && state == 'R');
	CHECK(strstr(buf, "(suite-process-c)") != NULL);
	snprintf(path, sizeof path, "%d", pid);
	char self[32] = { 0 };
	CHECK(readlink("/proc/self", self, sizeof self - 1) > 0 && strcmp(self, path) == 0);
	CHECK(slurp("/proc/self/status", buf, sizeof buf) > 0);
	snprintf(path, sizeof path, "\nPid:\t%d\n", pid);
	CHECK(strstr(buf, path) != NULL && strstr(buf, "\nThreads:\t") != NULL);
	/* cmdline: the arguments the image started the program with, NUL-separated. */
	CHECK(slurp("/proc/self/cmdline", buf, sizeof buf) > 6 && strcmp(buf, "hello") == 0);

	/* readlink of /proc/self/fd/N: an open file's path; a pipe as Linux names it. */
	int fd = open("/proc-check.txt", O_CREAT | O_RDWR, 0644);
	CHECK(fd >= 0);
	snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
	ssize_t len = readlink(path, buf, sizeof buf);
	CHECK(len == 15 && memcmp(buf, "/proc-check.txt", 15) == 0);
	/* musl's fchmodat with AT_SYMLINK_NOFOLLOW goes through /proc/self/fd. */
	struct stat st;
	CHECK_EQ(fchmodat(AT_FDCWD, "/proc-check.txt", 0600, AT_SYMLINK_NOFOLLOW), 0);
	CHECK(fstat(fd, &st) == 0 && (st.st_mode & 07777) == 0600);
	/* ttyname reads /proc/self/fd too. */
	CHECK(ttyname(0) != NULL && strcmp(ttyname(0), "/dev/console") == 0);
	int p[2];
	CHECK_EQ(pipe(p), 0);
	snprintf(path, sizeof path, "/proc/self/fd/%d", p[0]);
	len = readlink(path, buf, sizeof buf - 1);
	CHECK(len > 7 && memcmp(buf, "pipe:[", 6) == 0 && buf[len - 1] == ']');
	close(p[0]);
	close(p[1]);
	/* The descriptor directory lists the open file; a closed one is gone. */
	close(fd);
	snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
	CHECK(readlink(path, buf, sizeof buf) == -1 && errno == ENOENT);
	unlink("/proc-check.txt");

	/* /proc/self/maps covers a fresh mapping, and no longer once it is unmapped. */
	char *m = mmap(NULL, 3 * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK(m != MAP_FAILED);
	CHECK_EQ(mapped(m + 4096), 1);
	munmap(m, 3 * 4096);
	CHECK_EQ(mapped(m + 4096), 0);

	/* /proc/meminfo: MemTotal is sysinfo's memory. */
	struct sysinfo si;
	unsigned long total = 0;
	CHECK(sysinfo(&si) == 0);
	FILE *f = fopen("/proc/meminfo", "r");
	CHECK(f != NULL);
	if (f) {
		CHECK(fscanf(f, "MemTotal: %lu kB", &total) == 1);
		fclose(f);
	}
	CHECK(total > 0 && total == si.totalram / 1024);
	/* /proc/version agrees with uname; cpuinfo with the processors online. */
	struct utsname u;
	CHECK(uname(&u) == 0 && slurp("/proc/version", buf, sizeof buf) > 0);
	CHECK(strncmp(buf, "Linux version ", 14) == 0 && strstr(buf, u.release) != NULL);
	CHECK(slurp("/proc/cpuinfo", buf, sizeof buf) > 0);
	int cpus = 0;
	for (char *at = buf; (at = strstr(at, "processor\t: ")); at++)
		cpus++;
	CHECK_EQ(cpus, sysconf(_SC_NPROCESSORS_ONLN));

	/* opendir /proc lists the own pid and self. */
	DIR *d = opendir("/proc");
	CHECK(d != NULL);
	int own = 0, selfs = 0;
	struct dirent *e;
	snprintf(path, sizeof path, "%d", pid);
	while (d && (e = readdir(d))) {
		own += strcmp(e->d_name, path) == 0 && e->d_type == DT_DIR;
		selfs += strcmp(e->d_name, "self") == 0 && e->d_type == DT_LNK;
	}
	if (d)
		closedir(d);
	CHECK(own == 1 && selfs == 1);
	/* A process that does not exist. */
	CHECK(stat("/proc/32767/stat", &st) == -1 && errno == ENOENT);

	/* Read-only, with Linux's errors: a write EIO, a new name ENOENT, unlink EPERM. */
	fd = open("/proc/meminfo", O_WRONLY);
	CHECK(fd >= 0);
	CHECK(write(fd, "1", 1) == -1 && errno == EIO);
	close(fd);
	CHECK(open("/proc/new", O_CREAT | O_WRONLY, 0644) == -1 && errno == ENOENT);
	CHECK(mkdir("/proc/dir", 0755) == -1 && errno == ENOENT);
	CHECK(unlink("/proc/meminfo") == -1 && errno == EPERM);
	snprintf(path, sizeof path, "/proc/%d", pid);
	CHECK(rmdir(path) == -1 && errno == EPERM);
}
