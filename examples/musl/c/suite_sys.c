/*
 * The suite's groups that go through the kernel: clocks and sleeps, files and directories
 * on the image's ramfs, pipes, memory mappings and the process's identity and limits.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <pthread.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/timerfd.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/select.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysinfo.h>
#include <sys/time.h>
#include <sys/times.h>
#include <sys/uio.h>
#include <sys/utsname.h>
#include <sched.h>
#include <time.h>
#include <unistd.h>

#include "suite.h"

static long long ns_between(struct timespec a, struct timespec b)
{
	return (b.tv_sec - a.tv_sec) * 1000000000LL + (b.tv_nsec - a.tv_nsec);
}

void group_time(void)
{
	struct timespec a, b, res;
	CHECK_EQ(clock_gettime(CLOCK_MONOTONIC, &a), 0);
	CHECK_EQ(clock_gettime(CLOCK_MONOTONIC, &b), 0);
	CHECK(ns_between(a, b) >= 0);
	CHECK_EQ(clock_getres(CLOCK_MONOTONIC, &res), 0);
	CHECK(res.tv_sec == 0 && res.tv_nsec > 0 && res.tv_nsec <= 1000000);
	struct timespec real;
	CHECK_EQ(clock_gettime(CLOCK_REALTIME, &real), 0);
	struct timeval tv;
	CHECK_EQ(gettimeofday(&tv, NULL), 0);
	CHECK(tv.tv_sec >= real.tv_sec && tv.tv_sec - real.tv_sec < 5);
	CHECK(time(NULL) >= real.tv_sec);
	CHECK_EQ(clock_gettime((clockid_t)1000, &a), -1);
	CHECK_EQ(errno, EINVAL);

	/* Sleeps last at least as long as asked. */
	struct timespec nap = { 0, 3000000 };
	clock_gettime(CLOCK_MONOTONIC, &a);
	CHECK_EQ(nanosleep(&nap, NULL), 0);
	clock_gettime(CLOCK_MONOTONIC, &b);
	CHECK(ns_between(a, b) >= 3000000);
	clock_gettime(CLOCK_MONOTONIC, &a);
	CHECK_EQ(usleep(2000), 0);
	clock_gettime(CLOCK_MONOTONIC, &b);
	CHECK(ns_between(a, b) >= 2000000);
	struct timespec until = b;
	until.tv_nsec += 2000000;
	if (until.tv_nsec >= 1000000000) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000;
	}
	CHECK_EQ(clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &until, NULL), 0);
	clock_gettime(CLOCK_MONOTONIC, &a);
	CHECK(ns_between(until, a) >= 0);
	struct timespec bad = { 0, 1000000000 };
	CHECK_EQ(nanosleep(&bad, NULL), -1);
	CHECK_EQ(errno, EINVAL);

	/* Calendar conversions need no kernel, but are part of every program. */
	time_t t = 86400 * 365 + 3600 + 61; /* 1971-01-01 01:01:01 UTC */
	struct tm tm;
	CHECK(gmtime_r(&t, &tm) != NULL);
	CHECK(tm.tm_year == 71 && tm.tm_mon == 0 && tm.tm_mday == 1 && tm.tm_hour == 1 &&
	      tm.tm_min == 1 && tm.tm_sec == 1 && tm.tm_wday == 5);
	char when[64];
	CHECK_EQ(strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S %a", &tm), 23);
	CHECK(!strcmp(when, "1971-01-01 01:01:01 Fri"));
	CHECK_EQ(timegm(&tm), t);

	/* CPU time: spinning 10 ms uses about 10 ms of it, sleeping 200 ms almost none (the
	   thread is charged about 1 ms for entering and leaving the sleep, and whatever time
	   the host stalls the machine meanwhile, which the guest's clocks count: up to 10 ms
	   seen with three machines on two host cores, hence the 100 ms bound). */
	struct timespec cpu0, cpu1, cpu2, proc;
	clock_t c0 = clock();
	CHECK(c0 != (clock_t)-1);
	CHECK_EQ(clock_gettime(CLOCK_THREAD_CPUTIME_ID, &cpu0), 0);
	clock_gettime(CLOCK_MONOTONIC, &a);
	do
		clock_gettime(CLOCK_MONOTONIC, &b);
	while (ns_between(a, b) < 10000000);
	CHECK_EQ(clock_gettime(CLOCK_THREAD_CPUTIME_ID, &cpu1), 0);
	CHECK(ns_between(cpu0, cpu1) >= 10000000);
	clock_gettime(CLOCK_MONOTONIC, &a);
	CHECK(ns_between(cpu0, cpu1) <= ns_between(cpu0, a) + 1000000);
	CHECK(clock() - c0 >= 10000 * (CLOCKS_PER_SEC / 1000000));
	struct timespec fifth = { 0, 200000000 };
	nanosleep(&fifth, NULL);
	CHECK_EQ(clock_gettime(CLOCK_THREAD_CPUTIME_ID, &cpu2), 0);
	CHECK(ns_between(cpu1, cpu2) >= 0 && ns_between(cpu1, cpu2) < 100000000);
	CHECK_EQ(clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &proc), 0);
	CHECK(ns_between(cpu2, proc) >= 0);
	clockid_t mine;
	CHECK_EQ(clock_getcpuclockid(0, &mine), 0);
	CHECK_EQ(clock_gettime(mine, &a), 0);
	CHECK(ns_between(proc, a) >= 0);
	CHECK_EQ(pthread_getcpuclockid(pthread_self(), &mine), 0);
	CHECK_EQ(clock_gettime(mine, &a), 0);
	CHECK(ns_between(cpu2, a) >= 0);
	CHECK_EQ(clock_getres(CLOCK_THREAD_CPUTIME_ID, &res), 0);
	struct rusage ru;
	CHECK_EQ(getrusage(RUSAGE_SELF, &ru), 0);
	CHECK(ru.ru_utime.tv_sec * 1000000LL + ru.ru_utime.tv_usec >= 10000);
	CHECK_EQ(getrusage(RUSAGE_THREAD, &ru), 0);
	CHECK(ru.ru_utime.tv_sec * 1000000LL + ru.ru_utime.tv_usec >= 10000);
	CHECK_EQ(getrusage(RUSAGE_CHILDREN, &ru), 0);
	CHECK(ru.ru_utime.tv_sec == 0 && ru.ru_utime.tv_usec == 0);
	CHECK_EQ(getrusage(5, &ru), -1);
	CHECK_EQ(errno, EINVAL);
	struct tms tms;
	CHECK(times(&tms) != (clock_t)-1);
	CHECK(tms.tms_utime >= 1 && tms.tms_stime == 0);
	CHECK_EQ(sysconf(_SC_CLK_TCK), 100);
	checks_rusage();
}

/* Writes `text` to a new file `path`; returns 0 on success. */
static int write_file(const char *path, const char *text)
{
	int fd = open(path, O_CREAT | O_WRONLY | O_TRUNC, 0644);
	if (fd < 0)
		return -1;
	ssize_t n = write(fd, text, strlen(text));
	close(fd);
	return n == (ssize_t)strlen(text) ? 0 : -1;
}

/* Takes an open file description write lock on byte 0 of the file `arg` points at,
 * waiting while another description holds it. */
static void *ofd_lock_waiting(void *arg)
{
	struct flock l = { .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 1 };
	return (void *)(intptr_t)fcntl(*(int *)arg, F_OFD_SETLKW, &l);
}

/* Record locks on "locked" in the working directory: POSIX locks (the process's, lockf's),
 * open file description locks between two opens, the two kinds conflicting, a close of any
 * descriptor releasing the process's POSIX locks, a waiting F_OFD_SETLKW. */
static void record_locks(void)
{
	CHECK_EQ(write_file("locked", "0123456789abcdefghijklmnopqrstuvwxyz"), 0);
	int a = open("locked", O_RDWR), b = open("locked", O_RDWR);
	CHECK(a >= 0 && b >= 0);
	CHECK_EQ(lockf(a, F_TLOCK, 0), 0);
	CHECK_EQ(lockf(b, F_TEST, 0), 0); /* the process's own lock is no conflict */
	CHECK_EQ(lockf(a, F_ULOCK, 0), 0);
	struct flock w = { .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 10 };
	CHECK_EQ(fcntl(a, F_OFD_SETLK, &w), 0);
	struct flock r = { .l_type = F_RDLCK, .l_whence = SEEK_SET, .l_start = 5, .l_len = 1 };
	CHECK(fcntl(b, F_OFD_SETLK, &r) == -1 && errno == EAGAIN);
	struct flock q = { .l_type = F_RDLCK, .l_whence = SEEK_SET };
	CHECK_EQ(fcntl(b, F_OFD_GETLK, &q), 0);
	CHECK(q.l_type == F_WRLCK && q.l_start == 0 && q.l_len == 10 && q.l_pid == -1);
	/* A POSIX lock of this process beside it, and the two kinds conflicting. */
	struct flock p = { .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 20, .l_len = 5 };
	CHECK_EQ(fcntl(b, F_SETLK, &p), 0);
	struct flock one = { .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 22, .l_len = 1 };
	CHECK(fcntl(a, F_OFD_SETLK, &one) == -1 && errno == EAGAIN);
	q = (struct flock){ .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 20 };
	CHECK_EQ(fcntl(a, F_OFD_GETLK, &q), 0);
	CHECK(q.l_type == F_WRLCK && q.l_start == 20 && q.l_len == 5 && q.l_pid == getpid());
	/* Closing any descriptor of the file releases the process's POSIX locks on it. */
	close(open("locked", O_RDONLY));
	CHECK_EQ(fcntl(a, F_OFD_SETLK, &one), 0);
	/* F_OFD_SETLKW waits while the other description holds the byte. */
	pthread_t waiter;
	void *got = (void *)1;
	CHECK_EQ(pthread_create(&waiter, NULL, ofd_lock_waiting, &b), 0);
	usleep(20000);
	struct flock un = { .l_type = F_UNLCK, .l_whence = SEEK_SET };
	CHECK_EQ(fcntl(a, F_OFD_SETLK, &un), 0);
	pthread_join(waiter, &got);
	CHECK(got == NULL);
	CHECK(fcntl(a, F_OFD_SETLK, &w) == -1 && errno == EAGAIN);
	/* Refusals. */
	struct flock bad = { .l_type = 7, .l_whence = SEEK_SET };
	CHECK(fcntl(a, F_SETLK, &bad) == -1 && errno == EINVAL);
	bad = (struct flock){ .l_type = F_RDLCK, .l_whence = SEEK_SET, .l_pid = 1 };
	CHECK(fcntl(a, F_OFD_SETLK, &bad) == -1 && errno == EINVAL);
	close(a);
	close(b);
	CHECK_EQ(unlink("locked"), 0);
}

void group_files(void)
{
	char buf[256];
	CHECK_EQ(mkdir("/suite", 0755), 0);
	CHECK_EQ(mkdir("/suite", 0755), -1);
	CHECK_EQ(errno, EEXIST);
	CHECK_EQ(chdir("/suite"), 0);
	CHECK(getcwd(buf, sizeof buf) && !strcmp(buf, "/suite"));

	/* open, write, lseek, read, pread/pwrite, ftruncate, fstat. */
	int fd = open("data", O_CREAT | O_RDWR | O_EXCL, 0600);
	CHECK(fd >= 3);
	CHECK_EQ(open("data", O_CREAT | O_RDWR | O_EXCL, 0600), -1);
	CHECK_EQ(errno, EEXIST);
	CHECK_EQ(write(fd, "0123456789", 10), 10);
	CHECK_EQ(lseek(fd, 0, SEEK_CUR), 10);
	CHECK_EQ(lseek(fd, 2, SEEK_SET), 2);
	CHECK_EQ(read(fd, buf, 3), 3);
	CHECK(!memcmp(buf, "234", 3));
	CHECK_EQ(pwrite(fd, "ab", 2, 8), 2);
	CHECK_EQ(pread(fd, buf, 4, 6), 4);
	CHECK(!memcmp(buf, "67ab", 4));
	CHECK_EQ(lseek(fd, 0, SEEK_CUR), 5);
	CHECK_EQ(lseek(fd, -1, SEEK_SET), -1);
	CHECK_EQ(errno, EINVAL);
	struct iovec iov[2] = { { "xy", 2 }, { "z", 1 } };
	CHECK_EQ(lseek(fd, 0, SEEK_END), 10);
	CHECK_EQ(writev(fd, iov, 2), 3);
	struct stat st;
	CHECK_EQ(fstat(fd, &st), 0);
	CHECK(st.st_size == 13 && S_ISREG(st.st_mode) && (st.st_mode & 0777) == 0600);
	CHECK_EQ(ftruncate(fd, 4), 0);
	CHECK_EQ(fstat(fd, &st), 0);
	CHECK_EQ(st.st_size, 4);
	/* Reading past the end gives 0; a hole reads as zeroes. */
	CHECK_EQ(pread(fd, buf, 10, 4), 0);
	CHECK_EQ(pwrite(fd, "!", 1, 7), 1);
	CHECK_EQ(pread(fd, buf, 8, 0), 8);
	CHECK(!memcmp(buf, "0123\0\0\0!", 8));

	/* Descriptors: dup, dup2, fcntl flags, the lowest free number first, EBADF. */
	int copy = dup(fd);
	CHECK(copy > fd);
	CHECK_EQ(lseek(copy, 1, SEEK_SET), 1);
	CHECK_EQ(lseek(fd, 0, SEEK_CUR), 1); /* shared file offset */
	CHECK_EQ(dup2(fd, 40), 40);
	CHECK_EQ(fcntl(40, F_GETFD), 0);
	CHECK_EQ(fcntl(40, F_SETFD, FD_CLOEXEC), 0);
	CHECK_EQ(fcntl(40, F_GETFD), FD_CLOEXEC);
	CHECK_EQ(fcntl(fd, F_GETFL) & O_ACCMODE, O_RDWR);
	CHECK_EQ(close(40), 0);
	CHECK_EQ(close(40), -1);
	CHECK_EQ(errno, EBADF);
	CHECK_EQ(close(copy), 0);
	int again = open("data", O_RDONLY);
	CHECK_EQ(again, copy);
	close(again);
	CHECK_EQ(write(again, "x", 1), -1);
	CHECK_EQ(errno, EBADF);
	CHECK_EQ(close(fd), 0);
	fd = open("data", O_WRONLY | O_APPEND);
	CHECK_EQ(write(fd, "++", 2), 2);
	CHECK_EQ(lseek(fd, 0, SEEK_CUR), 10);
	close(fd);
	fd = open("data", O_RDONLY);
	CHECK_EQ(write(fd, "x", 1), -1);
	CHECK_EQ(errno, EBADF);
	close(fd);

	/* stdio over a file: buffered writes, fseek/ftell, ungetc. */
	FILE *f = fopen("lines.txt", "w+");
	CHECK(f != NULL);
	if (f) {
		for (int i = 0; i < 500; i++)
			fprintf(f, "line %d\n", i);
		CHECK_EQ(ftell(f), 4390);
		CHECK_EQ(fseek(f, 0, SEEK_SET), 0);
		int last = -1, lines = 0;
		while (fgets(buf, sizeof buf, f) && sscanf(buf, "line %d", &last) == 1)
			lines++;
		CHECK(lines == 500 && last == 499);
		rewind(f);
		CHECK_EQ(fgetc(f), 'l');
		CHECK_EQ(ungetc('L', f), 'L');
		CHECK_EQ(fgetc(f), 'L');
		CHECK_EQ(fclose(f), 0);
	}

	/* stat, access, rename, links, unlink, directories and their listing. */
	CHECK_EQ(stat("/suite/lines.txt", &st), 0);
	CHECK_EQ(st.st_size, 4390);
	CHECK_EQ(access("lines.txt", R_OK | W_OK), 0);
	CHECK_EQ(access("missing", F_OK), -1);
	CHECK_EQ(errno, ENOENT);
	CHECK_EQ(stat("", &st), -1);
	CHECK_EQ(errno, ENOENT);
	CHECK_EQ(rename("lines.txt", "renamed.txt"), 0);
	CHECK_EQ(stat("lines.txt", &st), -1);
	CHECK_EQ(link("renamed.txt", "hard.txt"), 0);
	CHECK_EQ(stat("hard.txt", &st), 0);
	CHECK_EQ(st.st_nlink, 2);
	CHECK_EQ(symlink("renamed.txt", "soft"), 0);
	ssize_t n = readlink("soft", buf, sizeof buf);
	CHECK(n == 11 && !memcmp(buf, "renamed.txt", 11));
	CHECK_EQ(lstat("soft", &st), 0);
	CHECK(S_ISLNK(st.st_mode));
	CHECK_EQ(stat("soft", &st), 0);
	CHECK(S_ISREG(st.st_mode) && st.st_size == 4390);
	CHECK_EQ(mkdir("sub", 0700), 0);
	CHECK_EQ(write_file("sub/inner", "in"), 0);
	CHECK_EQ(rmdir("sub"), -1);
	CHECK_EQ(errno, ENOTEMPTY);
	CHECK_EQ(unlink("sub"), -1);
	CHECK_EQ(errno, EISDIR);
	CHECK_EQ(open("renamed.txt/x", O_RDONLY), -1);
	CHECK_EQ(errno, ENOTDIR);
	char long_name[300];
	memset(long_name, 'n', sizeof long_name - 1);
	long_name[sizeof long_name - 1] = 0;
	CHECK_EQ(open(long_name, O_CREAT | O_WRONLY, 0644), -1);
	CHECK_EQ(errno, ENAMETOOLONG);

	DIR *d = opendir(".");
	CHECK(d != NULL);
	int seen = 0, dots = 0;
	struct dirent *e;
	while (d && (e = readdir(d))) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			dots++;
		else if (!strcmp(e->d_name, "sub"))
			seen += e->d_type == DT_DIR ? 1 : 100;
		else if (!strcmp(e->d_name, "soft"))
			seen += e->d_type == DT_LNK ? 1 : 100;
		else
			seen++;
	}
	if (d)
		closedir(d);
	/* data, renamed.txt, hard.txt, soft, sub */
	CHECK_EQ(seen, 5);
	CHECK_EQ(dots, 2);
	CHECK_EQ(unlink("sub/inner"), 0);
	CHECK_EQ(rmdir("sub"), 0);
	CHECK_EQ(unlink("hard.txt"), 0);
	CHECK_EQ(unlink("soft"), 0);
	CHECK_EQ(stat("renamed.txt", &st), 0);
	CHECK_EQ(st.st_nlink, 1);

	/* An open file outlives its name. */
	fd = open("renamed.txt", O_RDONLY);
	CHECK_EQ(unlink("renamed.txt"), 0);
	CHECK_EQ(read(fd, buf, 5), 5);
	CHECK(!memcmp(buf, "line ", 5));
	close(fd);

	/* mkstemp: a fresh name each time, opened exclusively. */
	char tmpl1[] = "/suite/tmpXXXXXX", tmpl2[] = "/suite/tmpXXXXXX";
	int t1 = mkstemp(tmpl1), t2 = mkstemp(tmpl2);
	CHECK(t1 >= 0 && t2 >= 0 && strcmp(tmpl1, tmpl2));
	close(t1);
	close(t2);
	unlink(tmpl1);
	unlink(tmpl2);

	/* The devices. */
	fd = open("/dev/zero", O_RDONLY);
	memset(buf, 1, 16);
	CHECK(fd >= 0 && read(fd, buf, 16) == 16 && buf[0] == 0 && buf[15] == 0);
	close(fd);
	fd = open("/dev/null", O_RDWR);
	CHECK(fd >= 0 && write(fd, "gone", 4) == 4 && read(fd, buf, 4) == 0);
	close(fd);
	unsigned char r1[16] = { 0 }, r2[16] = { 0 };
	fd = open("/dev/urandom", O_RDONLY);
	CHECK(fd >= 0 && read(fd, r1, 16) == 16 && read(fd, r2, 16) == 16 && memcmp(r1, r2, 16));
	close(fd);

	record_locks();
	CHECK_EQ(unlink("data"), 0);
	CHECK_EQ(chdir("/"), 0);
	CHECK_EQ(rmdir("/suite"), 0);
}

/* Writes one byte to the pipe whose write end `arg` points at, after a short sleep. */
static void *write_later(void *arg)
{
	usleep(2000);
	write(*(int *)arg, "!", 1);
	return NULL;
}

/* Set by the SIGALRM handler of the pipe checks: the signal it saw. */
static volatile sig_atomic_t pipe_alarm;

static void note_pipe_alarm(int sig)
{
	pipe_alarm = sig;
}

/* Writes one byte to the pipe whose write end `arg` points at, after 20 ms. */
/* The descriptor a handler makes non-blocking, for the restart check of group_pipes. */
static volatile int restart_fd = -1;

static void make_restart_fd_nonblocking(int sig)
{
	pipe_alarm = sig;
	fcntl(restart_fd, F_SETFL, O_NONBLOCK);
}

static void *write_much_later(void *arg)
{
	usleep(20000);
	write(*(int *)arg, "!", 1);
	return NULL;
}

void group_pipes(void)
{
	int p[2];
	char buf[8192];
	CHECK_EQ(pipe(p), 0);
	CHECK_EQ(write(p[1], "ping", 4), 4);
	CHECK_EQ(read(p[0], buf, sizeof buf), 4);
	CHECK(!memcmp(buf, "ping", 4));
	/* A non-blocking read of an empty pipe. */
	CHECK_EQ(fcntl(p[0], F_SETFL, O_NONBLOCK), 0);
	CHECK_EQ(read(p[0], buf, 1), -1);
	CHECK_EQ(errno, EAGAIN);
	/* Fill it without blocking until it is full. */
	CHECK_EQ(fcntl(p[1], F_SETFL, O_NONBLOCK), 0);
	long total = 0;
	ssize_t n;
	memset(buf, 'p', sizeof buf);
	while ((n = write(p[1], buf, sizeof buf)) > 0)
		total += n;
	CHECK_EQ(errno, EAGAIN);
	CHECK(total >= 4096);
	long drained = 0;
	while ((n = read(p[0], buf, sizeof buf)) > 0)
		drained += n;
	CHECK_EQ(drained, total);
	/* End of file once the write end is closed. */
	CHECK_EQ(close(p[1]), 0);
	CHECK_EQ(read(p[0], buf, 1), 0);
	CHECK_EQ(close(p[0]), 0);

	/* Writing with no reader: EPIPE (SIGPIPE ignored here). */
	signal(SIGPIPE, SIG_IGN);
	CHECK_EQ(pipe2(p, O_CLOEXEC), 0);
	CHECK_EQ(fcntl(p[0], F_GETFD), FD_CLOEXEC);
	close(p[0]);
	CHECK_EQ(write(p[1], "x", 1), -1);
	CHECK_EQ(errno, EPIPE);
	close(p[1]);
	signal(SIGPIPE, SIG_DFL);

	/* poll and select: readiness now, a wait another thread's write ends, a timeout. */
	CHECK_EQ(pipe(p), 0);
	struct pollfd pfd[3] = { { p[0], POLLIN, 0 }, { p[1], POLLOUT, 0 }, { 99, POLLIN, 0 } };
	CHECK_EQ(poll(pfd, 3, 0), 2);
	CHECK(pfd[0].revents == 0 && pfd[1].revents == POLLOUT && pfd[2].revents == POLLNVAL);
	pthread_t writer;
	CHECK_EQ(pthread_create(&writer, NULL, write_later, &p[1]), 0);
	CHECK_EQ(poll(pfd, 1, 5000), 1);
	CHECK_EQ(pfd[0].revents, POLLIN);
	pthread_join(writer, NULL);
	CHECK_EQ(read(p[0], buf, sizeof buf), 1);
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	CHECK_EQ(poll(pfd, 1, 3), 0);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	CHECK(ns_between(t0, t1) >= 3000000);
	fd_set rd, wr;
	FD_ZERO(&rd);
	FD_ZERO(&wr);
	FD_SET(p[0], &rd);
	FD_SET(p[1], &wr);
	struct timeval tv = { 0, 0 };
	CHECK_EQ(select(p[1] + 1, &rd, &wr, NULL, &tv), 1);
	CHECK(!FD_ISSET(p[0], &rd) && FD_ISSET(p[1], &wr));
	CHECK_EQ(pthread_create(&writer, NULL, write_later, &p[1]), 0);
	FD_ZERO(&rd);
	FD_SET(p[0], &rd);
	CHECK_EQ(select(p[0] + 1, &rd, NULL, NULL, NULL), 1);
	CHECK(FD_ISSET(p[0], &rd));
	pthread_join(writer, NULL);
	close(p[1]);
	CHECK_EQ(poll(pfd, 1, -1), 1);
	CHECK_EQ(pfd[0].revents, POLLIN | POLLHUP);
	close(p[0]);
	FD_ZERO(&rd);
	FD_SET(p[0], &rd);
	CHECK_EQ(select(p[0] + 1, &rd, NULL, NULL, &tv), -1);
	CHECK_EQ(errno, EBADF);

	/* stdio over a pipe. */
	CHECK_EQ(pipe(p), 0);
	FILE *w = fdopen(p[1], "w"), *r = fdopen(p[0], "r");
	CHECK(w && r);
	if (w && r) {
		fprintf(w, "%d %s\n", 7, "seven");
		fclose(w);
		int num = 0;
		char word[8];
		CHECK_EQ(fscanf(r, "%d %7s", &num, word), 2);
		CHECK(num == 7 && !strcmp(word, "seven"));
		fclose(r);
	}

	/* eventfd: a counter; as a semaphore, one at a time; non-blocking when empty. */
	int efd = eventfd(3, EFD_NONBLOCK | EFD_CLOEXEC);
	CHECK(efd >= 0);
	uint64_t count = 0;
	CHECK_EQ(eventfd_write(efd, 4), 0);
	CHECK(read(efd, &count, sizeof count) == sizeof count && count == 7);
	CHECK_EQ(read(efd, &count, sizeof count), -1);
	CHECK_EQ(errno, EAGAIN);
	int sem = eventfd(2, EFD_SEMAPHORE);
	CHECK(eventfd_read(sem, &count) == 0 && count == 1);
	CHECK(eventfd_read(sem, &count) == 0 && count == 1);

	/* epoll over a pipe and the eventfd: level-triggered, then edge-triggered. */
	int ep = epoll_create1(EPOLL_CLOEXEC);
	CHECK(ep >= 0);
	CHECK_EQ(pipe(p), 0);
	struct epoll_event ev = { .events = EPOLLIN, .data.u64 = 0x1234 }, got[4];
	CHECK_EQ(epoll_ctl(ep, EPOLL_CTL_ADD, p[0], &ev), 0);
	CHECK_EQ(epoll_ctl(ep, EPOLL_CTL_ADD, p[0], &ev), -1);
	CHECK_EQ(errno, EEXIST);
	ev.events = EPOLLIN | EPOLLET;
	ev.data.u64 = 0x5678;
	CHECK_EQ(epoll_ctl(ep, EPOLL_CTL_ADD, efd, &ev), 0);
	CHECK_EQ(epoll_wait(ep, got, 4, 0), 0);
	CHECK_EQ(write(p[1], "x", 1), 1);
	CHECK_EQ(eventfd_write(efd, 1), 0);
	CHECK_EQ(epoll_wait(ep, got, 4, 1000), 2);
	/* The pipe stays ready (level); the eventfd was reported once (edge). */
	CHECK_EQ(epoll_wait(ep, got, 4, 0), 1);
	CHECK(got[0].data.u64 == 0x1234 && (got[0].events & EPOLLIN));
	CHECK_EQ(epoll_ctl(ep, EPOLL_CTL_DEL, p[0], NULL), 0);
	CHECK_EQ(epoll_wait(ep, got, 4, 10), 0);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	CHECK_EQ(epoll_wait(ep, got, 4, 20), 0);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	CHECK(ns_between(t0, t1) >= 20000000);
	CHECK_EQ(epoll_wait(ep, got, 0, 0), -1);
	CHECK_EQ(errno, EINVAL);
	close(p[0]);
	close(p[1]);
	close(ep);
	close(sem);
	close(efd);

	/* timerfd: a one-shot timer read after poll saw it expire, non-blocking EAGAIN before,
	 * gettime's time left; a periodic one whose blocking read waits for the first expiry
	 * and whose next read counts the overruns; epoll waking at an absolute time of the wall
	 * clock; an absolute time already past; clock_settime cancelling a
	 * TFD_TIMER_CANCEL_ON_SET timer; Linux's refusals. */
	int tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	CHECK(tfd >= 0);
	CHECK_EQ(fcntl(tfd, F_GETFD), FD_CLOEXEC);
	CHECK_EQ(fcntl(tfd, F_GETFL) & (O_NONBLOCK | O_ACCMODE), O_NONBLOCK | O_RDWR);
	uint64_t ticks = 0;
	CHECK_EQ(read(tfd, &ticks, sizeof ticks), -1);
	CHECK_EQ(errno, EAGAIN);
	/* 100 ms, so that the reads before it expires find nothing even on a loaded host. */
	struct itimerspec its = { { 0, 0 }, { 0, 100000000 } }, cur;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	CHECK_EQ(timerfd_settime(tfd, 0, &its, NULL), 0);
	CHECK_EQ(timerfd_gettime(tfd, &cur), 0);
	CHECK(cur.it_value.tv_sec == 0 && cur.it_value.tv_nsec > 0 &&
	      cur.it_value.tv_nsec <= 100000000 && cur.it_interval.tv_sec == 0 &&
	      cur.it_interval.tv_nsec == 0);
	CHECK_EQ(read(tfd, &ticks, sizeof ticks), -1);
	CHECK_EQ(errno, EAGAIN);
	struct pollfd tp = { tfd, POLLIN, 0 };
	CHECK_EQ(poll(&tp, 1, 5000), 1);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	CHECK_EQ(tp.revents, POLLIN);
	/* Woken at the expiry, not at poll's own timeout. */
	CHECK(ns_between(t0, t1) >= 100000000 && ns_between(t0, t1) < 2000000000);
	CHECK_EQ(read(tfd, &ticks, 7), -1);
	CHECK_EQ(errno, EINVAL);
	CHECK(read(tfd, &ticks, sizeof ticks) == sizeof ticks && ticks == 1);
	CHECK_EQ(timerfd_gettime(tfd, &cur), 0);
	CHECK(cur.it_value.tv_sec == 0 && cur.it_value.tv_nsec == 0);
	CHECK_EQ(poll(&tp, 1, 0), 0);

	int ptfd = timerfd_create(CLOCK_MONOTONIC, 0);
	CHECK(ptfd >= 0);
	struct itimerspec every = { { 0, 2000000 }, { 0, 2000000 } }, old;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	CHECK_EQ(timerfd_settime(ptfd, 0, &every, NULL), 0);
	CHECK(read(ptfd, &ticks, sizeof ticks) == sizeof ticks && ticks >= 1);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	CHECK(ns_between(t0, t1) >= 2000000);
	usleep(10000);
	CHECK(read(ptfd, &ticks, sizeof ticks) == sizeof ticks && ticks >= 5);
	struct itimerspec off = { { 0, 0 }, { 0, 0 } };
	CHECK_EQ(timerfd_settime(ptfd, 0, &off, &old), 0);
	CHECK(old.it_interval.tv_sec == 0 && old.it_interval.tv_nsec == 2000000 &&
	      old.it_value.tv_sec == 0 && old.it_value.tv_nsec > 0 &&
	      old.it_value.tv_nsec <= 2000000);
	CHECK_EQ(timerfd_gettime(ptfd, &cur), 0);
	CHECK(cur.it_value.tv_sec == 0 && cur.it_value.tv_nsec == 0);

	int rtfd = timerfd_create(CLOCK_REALTIME, TFD_NONBLOCK);
	CHECK(rtfd >= 0);
	struct timespec wall;
	clock_gettime(CLOCK_REALTIME, &wall);
	struct itimerspec at = { { 0, 0 }, wall };
	at.it_value.tv_nsec += 100000000; /* the first epoll_wait comes well before it */
	if (at.it_value.tv_nsec >= 1000000000) {
		at.it_value.tv_sec++;
		at.it_value.tv_nsec -= 1000000000;
	}
	CHECK_EQ(timerfd_settime(rtfd, TFD_TIMER_ABSTIME, &at, NULL), 0);
	ep = epoll_create1(0);
	CHECK(ep >= 0);
	ev.events = EPOLLIN;
	ev.data.u64 = 0x7fd;
	CHECK_EQ(epoll_ctl(ep, EPOLL_CTL_ADD, rtfd, &ev), 0);
	CHECK_EQ(epoll_wait(ep, got, 4, 0), 0);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	CHECK_EQ(epoll_wait(ep, got, 4, 5000), 1);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	CHECK(got[0].data.u64 == 0x7fd && got[0].events == EPOLLIN);
	CHECK(ns_between(t0, t1) < 2000000000);
	clock_gettime(CLOCK_REALTIME, &wall);
	CHECK(ns_between(at.it_value, wall) >= 0);
	CHECK(read(rtfd, &ticks, sizeof ticks) == sizeof ticks && ticks == 1);
	/* The wall clock starts at the epoch here (no RTC): 1 ns past it has passed. */
	struct itimerspec past = { { 0, 0 }, { 0, 1 } };
	CHECK_EQ(timerfd_settime(rtfd, TFD_TIMER_ABSTIME, &past, NULL), 0);
	CHECK(read(rtfd, &ticks, sizeof ticks) == sizeof ticks && ticks == 1);
	struct itimerspec hour = { { 0, 0 }, { wall.tv_sec + 3600, 0 } };
	CHECK_EQ(timerfd_settime(rtfd, TFD_TIMER_ABSTIME | TFD_TIMER_CANCEL_ON_SET, &hour, NULL), 0);
	CHECK_EQ(read(rtfd, &ticks, sizeof ticks), -1);
	CHECK_EQ(errno, EAGAIN);
	/* Set the wall clock a millisecond ahead (forward: with no RTC it is close to the
	 * monotonic clock, and the process layer's timers assume it is not behind). */
	clock_gettime(CLOCK_REALTIME, &wall);
	wall.tv_nsec += 1000000;
	if (wall.tv_nsec >= 1000000000) {
		wall.tv_sec++;
		wall.tv_nsec -= 1000000000;
	}
	CHECK_EQ(clock_settime(CLOCK_REALTIME, &wall), 0);
	CHECK_EQ(epoll_wait(ep, got, 4, 0), 1);
	CHECK_EQ(read(rtfd, &ticks, sizeof ticks), -1);
	CHECK_EQ(errno, ECANCELED);
	CHECK_EQ(read(rtfd, &ticks, sizeof ticks), -1);
	CHECK_EQ(errno, EAGAIN);

	struct itimerspec long_one = { { 0, 0 }, { 3600, 0 } };
	CHECK_EQ(timerfd_settime(tfd, 0, &long_one, NULL), 0);
	CHECK_EQ(timerfd_create(CLOCK_PROCESS_CPUTIME_ID, 0), -1);
	CHECK_EQ(errno, EINVAL);
	CHECK_EQ(timerfd_create(CLOCK_MONOTONIC, 1), -1);
	CHECK_EQ(errno, EINVAL);
	struct itimerspec bad = { { 0, 0 }, { 0, 1000000000 } };
	CHECK_EQ(timerfd_settime(tfd, 0, &bad, NULL), -1);
	CHECK_EQ(errno, EINVAL);
	CHECK_EQ(timerfd_settime(tfd, 4, &its, NULL), -1);
	CHECK_EQ(errno, EINVAL);
	CHECK_EQ(timerfd_settime(ep, 0, &its, NULL), -1);
	CHECK_EQ(errno, EINVAL);
	CHECK_EQ(timerfd_gettime(tfd, &cur), 0);
	CHECK(cur.it_value.tv_sec >= 3590 && cur.it_interval.tv_sec == 0);
	close(ep);
	close(rtfd);
	close(ptfd);

	/* A blocking read of an empty pipe that a timer's SIGALRM interrupts: EINTR after the
	 * handler without SA_RESTART; with it, the read goes on and returns what a thread
	 * writes later. A blocking eventfd read likewise fails with EINTR. The timer repeats
	 * every 5 ms until the call returned: an expiry that comes before the call blocks
	 * (its handler then runs in the code between, at the timer interrupt, as on Linux)
	 * leaves the next one to end it. */
	CHECK_EQ(pipe(p), 0);
	struct sigaction sa = { .sa_handler = note_pipe_alarm };
	sigemptyset(&sa.sa_mask);
	CHECK_EQ(sigaction(SIGALRM, &sa, NULL), 0);
	struct itimerval soon = { { 0, 5000 }, { 0, 5000 } }, disarmed = { { 0, 0 }, { 0, 0 } };
	CHECK_EQ(setitimer(ITIMER_REAL, &soon, NULL), 0);
	CHECK_EQ(read(p[0], buf, 1), -1);
	CHECK_EQ(errno, EINTR);
	setitimer(ITIMER_REAL, &disarmed, NULL);
	CHECK_EQ(pipe_alarm, SIGALRM);
	pipe_alarm = 0;
	sa.sa_flags = SA_RESTART;
	CHECK_EQ(sigaction(SIGALRM, &sa, NULL), 0);
	CHECK_EQ(pthread_create(&writer, NULL, write_much_later, &p[1]), 0);
	CHECK_EQ(setitimer(ITIMER_REAL, &soon, NULL), 0);
	CHECK_EQ(read(p[0], buf, 1), 1);
	setitimer(ITIMER_REAL, &disarmed, NULL);
	CHECK_EQ(pipe_alarm, SIGALRM);
	pthread_join(writer, NULL);
	close(p[0]);
	close(p[1]);
	pipe_alarm = 0;
	sa.sa_flags = 0;
	CHECK_EQ(sigaction(SIGALRM, &sa, NULL), 0);
	efd = eventfd(0, 0);
	CHECK(efd >= 0);
	CHECK_EQ(setitimer(ITIMER_REAL, &soon, NULL), 0);
	CHECK_EQ(read(efd, &count, sizeof count), -1);
	CHECK(errno == EINTR && pipe_alarm == SIGALRM);
	setitimer(ITIMER_REAL, &disarmed, NULL);
	close(efd);
	/* A blocking timerfd read too; the timer stays armed. */
	struct itimerspec later = { { 0, 0 }, { 10, 0 } };
	CHECK_EQ(timerfd_settime(tfd, 0, &later, NULL), 0);
	CHECK_EQ(fcntl(tfd, F_SETFL, 0), 0);
	pipe_alarm = 0;
	CHECK_EQ(setitimer(ITIMER_REAL, &soon, NULL), 0);
	CHECK_EQ(read(tfd, &ticks, sizeof ticks), -1);
	CHECK(errno == EINTR && pipe_alarm == SIGALRM);
	setitimer(ITIMER_REAL, &disarmed, NULL);
	CHECK_EQ(timerfd_gettime(tfd, &cur), 0);
	CHECK(cur.it_value.tv_sec >= 9);
	close(tfd);

	/* A restarted read starts over, as Linux restarts the call: it looks the descriptor up
	 * again, so an SA_RESTART handler that made it non-blocking ends the read with
	 * EAGAIN. */
	CHECK_EQ(pipe(p), 0);
	restart_fd = p[0];
	pipe_alarm = 0;
	sa.sa_handler = make_restart_fd_nonblocking;
	sa.sa_flags = SA_RESTART;
	CHECK_EQ(sigaction(SIGALRM, &sa, NULL), 0);
	CHECK_EQ(setitimer(ITIMER_REAL, &soon, NULL), 0);
	CHECK_EQ(read(p[0], buf, 1), -1);
	CHECK(errno == EAGAIN && pipe_alarm == SIGALRM);
	setitimer(ITIMER_REAL, &disarmed, NULL);
	signal(SIGALRM, SIG_DFL);

	/* readv is one read: from a pipe holding exactly the first buffer's bytes it returns
	 * them instead of waiting for the second. */
	CHECK_EQ(fcntl(p[0], F_SETFL, 0), 0);
	char first[4], second[4];
	struct iovec two[2] = { { first, sizeof first }, { second, sizeof second } };
	CHECK_EQ(write(p[1], "abcd", 4), 4);
	CHECK_EQ(readv(p[0], two, 2), 4);
	CHECK(memcmp(first, "abcd", 4) == 0);
	close(p[0]);
	close(p[1]);
}

void group_memory(void)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	CHECK_EQ(page, 4096);
	char *m = mmap(NULL, 5 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK(m != MAP_FAILED);
	if (m != MAP_FAILED) {
		CHECK_EQ((uintptr_t)m % page, 0);
		int zero = 1;
		for (size_t i = 0; i < 5 * page; i += 512)
			zero &= m[i] == 0;
		CHECK(zero);
		memset(m, 0x5a, 5 * page);
		CHECK_EQ(munmap(m + page, page), 0);
		CHECK_EQ(m[0], 0x5a);
		CHECK_EQ(munmap(m, 5 * page), 0);
	}
	CHECK(mmap(NULL, page, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 1) == MAP_FAILED);
	CHECK_EQ(errno, EINVAL);
	CHECK_EQ(munmap((void *)1, page), -1);
	CHECK_EQ(errno, EINVAL);

	/* malloc in every size class musl's allocator has, freed in another order. */
	void *blocks[64];
	int ok = 1;
	for (int i = 0; i < 64; i++) {
		size_t size = (size_t)1 << (i % 20);
		blocks[i] = malloc(size);
		ok &= blocks[i] != NULL;
		if (blocks[i])
			memset(blocks[i], i, size);
	}
	CHECK(ok);
	for (int i = 63; i >= 0; i -= 2)
		free(blocks[i]);
	for (int i = 0; i < 64; i += 2) {
		unsigned char *b = blocks[i];
		ok &= b[0] == (unsigned char)i && b[((size_t)1 << (i % 20)) - 1] == (unsigned char)i;
		free(blocks[i]);
	}
	CHECK(ok);
	int *z = calloc(1000, sizeof(int));
	CHECK(z && z[0] == 0 && z[999] == 0);
	z = realloc(z, 100000 * sizeof(int));
	CHECK(z != NULL);
	free(z);
	volatile size_t huge = (size_t)-1 / 2;
	CHECK(calloc(huge, 4) == NULL);
	CHECK_EQ(errno, ENOMEM);
	void *aligned = NULL;
	CHECK_EQ(posix_memalign(&aligned, 4096, 100), 0);
	CHECK(aligned && (uintptr_t)aligned % 4096 == 0);
	free(aligned);
	CHECK_EQ(posix_memalign(&aligned, 3, 100), EINVAL);
	void *a64 = aligned_alloc(64, 128);
	CHECK(a64 && (uintptr_t)a64 % 64 == 0);
	free(a64);
	checks_mmap_files();
	checks_page_rights();
	checks_segv();
}

void group_process(void)
{
	CHECK_EQ(getpid(), 1);
	CHECK_EQ(getppid(), 0);
	CHECK_EQ(gettid(), getpid());
	CHECK_EQ(getuid(), 0);
	CHECK_EQ(geteuid(), 0);
	CHECK_EQ(getgid(), 0);
	CHECK_EQ(getegid(), 0);
	uid_t r = 9, e = 9, sv = 9;
	CHECK(getresuid(&r, &e, &sv) == 0 && r == 0 && e == 0 && sv == 0);
	CHECK_EQ(getgroups(0, NULL), 0);
	cpu_set_t cpus;
	CPU_ZERO(&cpus);
	CHECK_EQ(sched_getaffinity(0, sizeof cpus, &cpus), 0);
	CHECK(CPU_ISSET(0, &cpus) && CPU_COUNT(&cpus) == 1);
	struct utsname u;
	CHECK_EQ(uname(&u), 0);
	CHECK(!strcmp(u.sysname, "Linux"));
	struct rlimit rl;
	CHECK_EQ(getrlimit(RLIMIT_NOFILE, &rl), 0);
	CHECK_EQ(rl.rlim_cur, 1024);
	CHECK_EQ(getrlimit(RLIMIT_STACK, &rl), 0);
	CHECK(rl.rlim_cur > 0);
	/* Lowering a limit takes effect: opening past RLIMIT_NOFILE fails with EMFILE. */
	CHECK_EQ(getrlimit(RLIMIT_NOFILE, &rl), 0);
	struct rlimit low = { 8, rl.rlim_max };
	CHECK_EQ(setrlimit(RLIMIT_NOFILE, &low), 0);
	int fds[8], opened = 0, fd;
	while (opened < 8 && (fd = open("/dev/null", O_RDONLY)) >= 0)
		fds[opened++] = fd;
	CHECK_EQ(errno, EMFILE);
	CHECK(opened >= 1 && opened <= 5);
	for (int i = 0; i < opened; i++)
		close(fds[i]);
	CHECK_EQ(setrlimit(RLIMIT_NOFILE, &rl), 0);
	struct rlimit too_high = { rl.rlim_max + 1, rl.rlim_max };
	CHECK_EQ(setrlimit(RLIMIT_NOFILE, &too_high), -1);
	CHECK_EQ(errno, EINVAL);
	CHECK_EQ(sysconf(_SC_NPROCESSORS_ONLN), 1);
	CHECK_EQ(sysconf(_SC_OPEN_MAX), 1024);
	CHECK(sysconf(_SC_CLK_TCK) > 0);

	/* sysinfo: the image's memory (its 64 MiB less the image itself), what of it is free,
	 * which 2 MiB of touched malloc take from, and musl's sysconf page counts from it. */
	struct sysinfo si;
	CHECK_EQ(sysinfo(&si), 0);
	CHECK(si.mem_unit == 1 && si.totalram > 32ul << 20 && si.totalram <= 64ul << 20);
	CHECK(si.freeram > 0 && si.freeram < si.totalram && si.procs >= 1);
	CHECK_EQ(sysconf(_SC_PHYS_PAGES), (long)(si.totalram / 4096));
	unsigned long before = si.freeram;
	char *taken = malloc(2 << 20);
	CHECK(taken != NULL);
	if (taken)
		memset(taken, 1, 2 << 20);
	CHECK(sysinfo(&si) == 0 && before - si.freeram >= 2ul << 20);
	free(taken);
	CHECK(sysinfo(NULL) == -1 && errno == EFAULT);

	/* A session of its own (group and session 0 before, as Linux's init), scheduling
	 * policies without priorities (real-time ones refused), a thread name, memory locking,
	 * the CPU. */
	pid_t self = getpid();
	CHECK_EQ(setsid(), self);
	CHECK(getpgrp() == self && getsid(0) == self);
	CHECK(setsid() == -1 && errno == EPERM);
	struct sched_param sp = { .sched_priority = 0 };
	int policy = -1;
	CHECK_EQ(pthread_setschedparam(pthread_self(), SCHED_BATCH, &sp), 0);
	CHECK(pthread_getschedparam(pthread_self(), &policy, &sp) == 0 && policy == SCHED_BATCH);
	sp.sched_priority = 10;
	CHECK_EQ(pthread_setschedparam(pthread_self(), SCHED_FIFO, &sp), EPERM);
	sp.sched_priority = 0;
	CHECK_EQ(pthread_setschedparam(pthread_self(), SCHED_OTHER, &sp), 0);
	CHECK(sched_get_priority_max(SCHED_FIFO) == 99 && sched_get_priority_min(SCHED_RR) == 1);
	char name[16] = { 0 };
	CHECK_EQ(prctl(PR_SET_NAME, "suite-process-checks"), 0);
	CHECK(prctl(PR_GET_NAME, name) == 0 && strcmp(name, "suite-process-c") == 0);
	static char locked[8192];
	CHECK_EQ(mlock(locked, sizeof locked), 0);
	CHECK_EQ(munlock(locked, sizeof locked), 0);
	CHECK(mlockall(MCL_CURRENT | MCL_FUTURE) == 0 && munlockall() == 0);
	CHECK(mlockall(0) == -1 && errno == EINVAL);
	CHECK_EQ(sched_getcpu(), 0);
	/* membarrier (no libc wrapper): query, the registration a private barrier needs. */
	long offered = syscall(SYS_membarrier, 0 /* QUERY */, 0, 0);
	CHECK(offered > 0 && (offered & 8 /* PRIVATE_EXPEDITED */));
	CHECK(syscall(SYS_membarrier, 8, 0, 0) == -1 && errno == EPERM);
	CHECK_EQ(syscall(SYS_membarrier, 16 /* REGISTER_PRIVATE_EXPEDITED */, 0, 0), 0);
	CHECK_EQ(syscall(SYS_membarrier, 8, 0, 0), 0);
	struct timespec slice = { 1, 1 };
	CHECK(sched_rr_get_interval(0, &slice) == 0 && slice.tv_sec == 0 && slice.tv_nsec == 0);

	/* Nice values (kept, inherited, clamped; not weighed by the cooperative scheduler). */
	errno = 0;
	CHECK(nice(5) == 5 && errno == 0);
	CHECK_EQ(getpriority(PRIO_PROCESS, 0), 5);
	CHECK_EQ(setpriority(PRIO_PROCESS, 0, 40), 0);
	CHECK_EQ(getpriority(PRIO_PROCESS, 0), 19);
	CHECK(setpriority(PRIO_USER, 1000, 0) == -1 && errno == ESRCH);
	CHECK_EQ(setpriority(PRIO_PROCESS, 0, 0), 0);

	/* The wall clock can be set (the image is root), and set back. */
	struct timespec was, set = { 1900000000, 0 }, now;
	clock_gettime(CLOCK_REALTIME, &was);
	CHECK_EQ(clock_settime(CLOCK_REALTIME, &set), 0);
	clock_gettime(CLOCK_REALTIME, &now);
	CHECK(now.tv_sec >= 1900000000 && now.tv_sec < 1900000010);
	CHECK(clock_settime(CLOCK_MONOTONIC, &set) == -1 && errno == EINVAL);
	CHECK_EQ(clock_settime(CLOCK_REALTIME, &was), 0);
	CHECK_EQ(execve("/bin/sh", (char *[]){ "sh", NULL }, (char *[]){ NULL }), -1);
	CHECK(errno == ENOENT || errno == ENOSYS);
	CHECK_EQ(fork(), -1);
	CHECK(errno == ENOSYS || errno == EAGAIN);
	checks_children();
	checks_proc();
	checks_traps();
}
