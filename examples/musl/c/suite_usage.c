/*
 * Checks added with getrusage's context switches and peak memory and with timer_delete
 * taking back its timer's queued signal; kept in a file of their own (called at the end of
 * the `time` and `signals` groups) so that other additions to the suite merge apart.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "suite.h"

/* Yields back to its creator once: an involuntary switch of its own. */
static void *yield_once(void *arg)
{
	sched_yield();
	return arg;
}

void checks_rusage(void)
{
	struct rusage before, after, mine, process;
	/* A sleep blocks: a voluntary switch. (Up to five tries: a host that stalls the
	   machine for the whole millisecond between the sleep's start and its wait leaves
	   nothing to wait for.) */
	CHECK_EQ(getrusage(RUSAGE_THREAD, &before), 0);
	after = before;
	struct timespec ms = { 0, 1000000 };
	int read_failed = 0;
	for (int try = 0; try < 5 && after.ru_nvcsw == before.ru_nvcsw; try++) {
		nanosleep(&ms, NULL);
		read_failed |= getrusage(RUSAGE_THREAD, &after) != 0;
	}
	CHECK(!read_failed && after.ru_nvcsw >= before.ru_nvcsw + 1);
	/* sched_yield to a runnable thread: involuntary, as Linux counts it. */
	pthread_t t;
	CHECK_EQ(getrusage(RUSAGE_THREAD, &before), 0);
	CHECK_EQ(pthread_create(&t, NULL, yield_once, NULL), 0);
	sched_yield();
	CHECK_EQ(getrusage(RUSAGE_THREAD, &after), 0);
	CHECK(after.ru_nivcsw >= before.ru_nivcsw + 1);
	CHECK_EQ(pthread_join(t, NULL), 0);
	/* The process counts its threads' switches, the ended thread's yield included. */
	getrusage(RUSAGE_THREAD, &mine);
	CHECK_EQ(getrusage(RUSAGE_SELF, &process), 0);
	CHECK(process.ru_nvcsw >= mine.ru_nvcsw && process.ru_nivcsw >= mine.ru_nivcsw);
	CHECK(process.ru_nvcsw + process.ru_nivcsw > mine.ru_nvcsw + mine.ru_nivcsw);
	/* ru_maxrss: the peak of the anonymous memory mapped, in KiB; mapping more than the
	 * peak so far raises it by at least that much, and it stays after the unmap. */
	CHECK(process.ru_maxrss > 0);
	size_t len = (size_t)process.ru_maxrss * 1024 + (1 << 20);
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK(p != MAP_FAILED);
	CHECK_EQ(getrusage(RUSAGE_SELF, &after), 0);
	CHECK(after.ru_maxrss >= process.ru_maxrss + 1024);
	if (p != MAP_FAILED)
		munmap(p, len);
	CHECK_EQ(getrusage(RUSAGE_THREAD, &before), 0);
	CHECK_EQ(before.ru_maxrss, after.ru_maxrss);
	CHECK(before.ru_stime.tv_sec == 0 && before.ru_stime.tv_usec == 0);
}

void checks_timer_delete(void)
{
	int rt = SIGRTMIN + 1;
	sigset_t set, was, pending;
	sigemptyset(&set);
	sigaddset(&set, rt);
	sigaddset(&set, SIGUSR2);
	CHECK_EQ(sigprocmask(SIG_BLOCK, &set, &was), 0);
	/* A sigqueue's instance and two timers' of one real-time signal, queued behind each
	 * other: deleting the first timer takes its instance alone. */
	struct sigevent sev;
	memset(&sev, 0, sizeof sev);
	sev.sigev_notify = SIGEV_SIGNAL;
	sev.sigev_signo = rt;
	timer_t a, b, c;
	sev.sigev_value.sival_int = 1;
	CHECK_EQ(timer_create(CLOCK_MONOTONIC, &sev, &a), 0);
	sev.sigev_value.sival_int = 2;
	CHECK_EQ(timer_create(CLOCK_MONOTONIC, &sev, &b), 0);
	union sigval three = { .sival_int = 3 };
	CHECK_EQ(sigqueue(getpid(), rt, three), 0);
	struct itimerspec soon = { { 0, 0 }, { 0, 1000000 } }, left;
	CHECK_EQ(timer_settime(a, 0, &soon, NULL), 0);
	CHECK_EQ(timer_settime(b, 0, &soon, NULL), 0);
	struct timespec wait = { 0, 5000000 };
	nanosleep(&wait, NULL);
	CHECK(timer_gettime(a, &left) == 0 && left.it_value.tv_sec == 0 && left.it_value.tv_nsec == 0);
	CHECK_EQ(timer_delete(a), 0);
	siginfo_t info;
	struct timespec now = { 0, 0 };
	CHECK_EQ(sigtimedwait(&set, &info, &now), rt);
	CHECK(info.si_code == SI_QUEUE && info.si_value.sival_int == 3);
	CHECK_EQ(sigtimedwait(&set, &info, &now), rt);
	CHECK(info.si_code == SI_TIMER && info.si_value.sival_int == 2);
	CHECK_EQ(sigtimedwait(&set, &info, &now), -1);
	CHECK_EQ(errno, EAGAIN);
	CHECK_EQ(timer_delete(b), 0);
	/* A standard signal whose only instance was the timer's is no longer pending. */
	sev.sigev_signo = SIGUSR2;
	CHECK_EQ(timer_create(CLOCK_MONOTONIC, &sev, &c), 0);
	CHECK_EQ(timer_settime(c, 0, &soon, NULL), 0);
	nanosleep(&wait, NULL);
	CHECK(sigpending(&pending) == 0 && sigismember(&pending, SIGUSR2));
	CHECK_EQ(timer_delete(c), 0);
	CHECK(sigpending(&pending) == 0 && !sigismember(&pending, SIGUSR2));
	/* Two timers on one standard signal: each has an instance of its own, as on Linux. */
	sev.sigev_value.sival_int = 4;
	CHECK_EQ(timer_create(CLOCK_MONOTONIC, &sev, &a), 0);
	sev.sigev_value.sival_int = 5;
	CHECK_EQ(timer_create(CLOCK_MONOTONIC, &sev, &b), 0);
	CHECK_EQ(timer_settime(a, 0, &soon, NULL), 0);
	CHECK_EQ(timer_settime(b, 0, &soon, NULL), 0);
	nanosleep(&wait, NULL);
	CHECK_EQ(sigtimedwait(&set, &info, &now), SIGUSR2);
	CHECK(info.si_code == SI_TIMER && info.si_value.sival_int == 4);
	CHECK_EQ(sigtimedwait(&set, &info, &now), SIGUSR2);
	CHECK(info.si_code == SI_TIMER && info.si_value.sival_int == 5);
	CHECK_EQ(sigtimedwait(&set, &info, &now), -1);
	CHECK_EQ(timer_delete(a), 0);
	CHECK_EQ(timer_delete(b), 0);
	CHECK_EQ(sigprocmask(SIG_SETMASK, &was, NULL), 0);

	/* A timer armed for a wall-clock time follows the wall clock when it is set: 100 s
	 * away, then due once the clock jumps past it (SIGEV_NONE: it only reads as due). */
	struct sigevent none = { .sigev_notify = SIGEV_NONE };
	timer_t wall;
	struct timespec was_now;
	CHECK_EQ(clock_gettime(CLOCK_REALTIME, &was_now), 0);
	CHECK_EQ(timer_create(CLOCK_REALTIME, &none, &wall), 0);
	struct itimerspec at = { .it_value = { was_now.tv_sec + 100, 0 } };
	CHECK_EQ(timer_settime(wall, TIMER_ABSTIME, &at, NULL), 0);
	CHECK(timer_gettime(wall, &left) == 0 && left.it_value.tv_sec >= 98 && left.it_value.tv_sec <= 100);
	struct timespec later = { was_now.tv_sec + 200, 0 };
	CHECK_EQ(clock_settime(CLOCK_REALTIME, &later), 0);
	CHECK(timer_gettime(wall, &left) == 0 && left.it_value.tv_sec == 0 && left.it_value.tv_nsec <= 1);
	CHECK_EQ(timer_delete(wall), 0);

	/* File times are the wall clock's: a file made while it shows 2030 says so. */
	struct timespec in_2030 = { 1900000000, 0 };
	CHECK_EQ(clock_settime(CLOCK_REALTIME, &in_2030), 0);
	int fd = open("/wall-clock-file", O_CREAT | O_WRONLY | O_TRUNC, 0600);
	CHECK(fd >= 0 && write(fd, "x", 1) == 1);
	struct stat st;
	CHECK(fstat(fd, &st) == 0 && st.st_mtime >= 1900000000 && st.st_mtime < 1900000010 &&
	      st.st_ctime == st.st_mtime);
	close(fd);
	unlink("/wall-clock-file");
	CHECK_EQ(clock_settime(CLOCK_REALTIME, &was_now), 0);
}

/* Sends SIGUSR2 to the process from another thread. */
static void *send_usr2(void *arg)
{
	(void)arg;
	kill(getpid(), SIGUSR2);
	return NULL;
}

void checks_signalfd(void)
{
	sigset_t mask, was;
	sigemptyset(&mask);
	sigaddset(&mask, SIGUSR1);
	sigaddset(&mask, SIGUSR2);
	CHECK_EQ(sigprocmask(SIG_BLOCK, &mask, &was), 0);
	int fd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
	CHECK(fd >= 0);
	struct signalfd_siginfo si[2];
	CHECK(read(fd, si, sizeof si) == -1 && errno == EAGAIN);
	/* A sigqueue with a value and a raise: read lowest first, with their information. */
	union sigval v = { .sival_int = 42 };
	CHECK_EQ(sigqueue(getpid(), SIGUSR2, v), 0);
	CHECK_EQ(raise(SIGUSR1), 0);
	struct pollfd p = { .fd = fd, .events = POLLIN };
	CHECK(poll(&p, 1, 0) == 1 && p.revents == POLLIN);
	CHECK_EQ(read(fd, si, sizeof si), 2 * (long)sizeof si[0]);
	CHECK(si[0].ssi_signo == SIGUSR1 && si[0].ssi_code == SI_TKILL);
	CHECK(si[1].ssi_signo == SIGUSR2 && si[1].ssi_code == SI_QUEUE && si[1].ssi_int == 42 &&
	      si[1].ssi_pid == (uint32_t)getpid());
	sigset_t pending;
	CHECK(sigpending(&pending) == 0 && !sigismember(&pending, SIGUSR1) && !sigismember(&pending, SIGUSR2));
	CHECK(read(fd, si, sizeof si[0] - 1) == -1 && errno == EINVAL);
	/* A blocking descriptor: the read waits until another thread sends. */
	int blocking = signalfd(-1, &mask, 0);
	pthread_t sender;
	CHECK_EQ(pthread_create(&sender, NULL, send_usr2, NULL), 0);
	CHECK(read(blocking, si, sizeof si[0]) == (long)sizeof si[0] && si[0].ssi_signo == SIGUSR2);
	pthread_join(sender, NULL);
	/* A new mask for the same descriptor. */
	sigset_t only1;
	sigemptyset(&only1);
	sigaddset(&only1, SIGUSR1);
	CHECK_EQ(signalfd(fd, &only1, 0), fd);
	CHECK_EQ(kill(getpid(), SIGUSR2), 0);
	CHECK(read(fd, si, sizeof si[0]) == -1 && errno == EAGAIN);
	CHECK(read(blocking, si, sizeof si[0]) == (long)sizeof si[0] && si[0].ssi_signo == SIGUSR2);
	close(blocking);
	close(fd);
	CHECK_EQ(sigprocmask(SIG_SETMASK, &was, NULL), 0);
}
