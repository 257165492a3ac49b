/*
 * Child processes (run at the end of the `process` group): clone without CLONE_THREAD
 * makes a child process whose end leaves a zombie for wait4/waitpid/waitid, with its exit
 * status or the signal that killed it, sends its exit signal to the parent with
 * CLD_EXITED/CLD_KILLED information, and adds its CPU time to RUSAGE_CHILDREN. The
 * children share the parent's memory (CLONE_VM) and its thread pointer, so they only make
 * calls that succeed (and so leave errno alone).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/times.h>
#include <sys/wait.h>
#include <unistd.h>

#include "suite.h"

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#ifndef SYS_pidfd_send_signal
#define SYS_pidfd_send_signal 424
#endif
#ifndef SYS_pidfd_getfd
#define SYS_pidfd_getfd 438
#endif
#ifndef CLONE_PIDFD
#define CLONE_PIDFD 0x1000
#endif
#ifndef P_PIDFD
#define P_PIDFD 3
#endif

/* One child runs at a time: each is waited for before the next starts. */
static char child_stack[16384] __attribute__((aligned(16)));

static pid_t start(int (*fn)(void *), int exit_signal, void *arg)
{
	return clone(fn, child_stack + sizeof child_stack, CLONE_VM | CLONE_FS | CLONE_FILES | exit_signal,
		     arg);
}

static int exit_with(void *arg)
{
	return (int)(long)arg;
}

/* Ends with the byte it reads from the pipe `arg` names. */
static int exit_with_pipe_byte(void *arg)
{
	int *fds = arg;
	unsigned char c = 0;
	read(fds[0], &c, 1);
	return c;
}

/* A stack for a grandchild: the child that makes it still runs on `child_stack`. */
static char sibling_stack[16384] __attribute__((aligned(16)));

/* Records its parent's pid in `arg`. */
static int note_parent(void *arg)
{
	*(volatile pid_t *)arg = getppid();
	return 4;
}

/* Makes a CLONE_PARENT child (its own sibling) that records its parent in `arg[1]`; stores
 * the sibling's pid in `arg[0]`. */
static int make_sibling(void *arg)
{
	volatile pid_t *out = arg;
	out[0] = clone(note_parent, sibling_stack + sizeof sibling_stack,
		       CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_PARENT | SIGUSR1, (void *)&out[1]);
	return 0;
}

static int killed_by_sigterm(void *arg)
{
	(void)arg;
	kill(getpid(), SIGTERM);
	return 1;
}

static int spin(void *arg)
{
	volatile unsigned long sum = 0;
	for (long i = 0; i < 2000000; i++)
		sum += i;
	return (int)(long)arg;
}

/* Blocks SIGUSR2, waits for it; ends with 1 when its parent sent it. */
static int waits_for_sigusr2(void *arg)
{
	(void)arg;
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGUSR2);
	sigprocmask(SIG_BLOCK, &set, NULL);
	siginfo_t si;
	sigwaitinfo(&set, &si);
	return si.si_pid == getppid();
}

static volatile int child_signals, child_code, child_pid, child_status;

static void on_child(int sig, siginfo_t *info, void *context)
{
	(void)context;
	child_signals += sig == SIGCHLD;
	child_code = info->si_code;
	child_pid = info->si_pid;
	child_status = info->si_status;
}

static long usec(struct timeval tv)
{
	return tv.tv_sec * 1000000L + tv.tv_usec;
}

void checks_children(void)
{
	int status = -1;
	/* An exit status, reaped once. */
	pid_t pid = start(exit_with, SIGCHLD, (void *)7);
	CHECK(pid > 1);
	CHECK_EQ(waitpid(pid, &status, 0), pid);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 7);
	CHECK(waitpid(pid, &status, 0) == -1 && errno == ECHILD);
	CHECK(wait(&status) == -1 && errno == ECHILD);

	/* WNOHANG while the child waits for a pipe; then a blocking wait for any child. */
	int fds[2];
	CHECK_EQ(pipe(fds), 0);
	pid = start(exit_with_pipe_byte, SIGCHLD, fds);
	CHECK_EQ(waitpid(pid, &status, WNOHANG), 0);
	siginfo_t si;
	memset(&si, 0, sizeof si);
	si.si_pid = 12345;
	CHECK(waitid(P_PID, pid, &si, WEXITED | WNOHANG) == 0 && si.si_pid == 0);
	CHECK_EQ(write(fds[1], "\5", 1), 1);
	CHECK_EQ(waitpid(-1, &status, 0), pid);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 5);
	close(fds[0]);
	close(fds[1]);

	/* Killed by a signal: WIFSIGNALED, not an exit status of 128 + 15. */
	pid = start(killed_by_sigterm, SIGCHLD, NULL);
	CHECK_EQ(waitpid(pid, &status, 0), pid);
	CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGTERM && !WIFEXITED(status));

	/* SIGCHLD with its information; waitid looks with WNOWAIT, then reaps. */
	struct sigaction sa, old;
	memset(&sa, 0, sizeof sa);
	sa.sa_sigaction = on_child;
	sa.sa_flags = SA_SIGINFO;
	CHECK_EQ(sigaction(SIGCHLD, &sa, &old), 0);
	pid = start(exit_with, SIGCHLD, (void *)9);
	memset(&si, 0, sizeof si);
	CHECK_EQ(waitid(P_PID, pid, &si, WEXITED | WNOWAIT), 0);
	CHECK(si.si_signo == SIGCHLD && si.si_code == CLD_EXITED && si.si_pid == pid && si.si_status == 9);
	sched_yield();
	CHECK(child_signals == 1 && child_code == CLD_EXITED && child_pid == pid && child_status == 9);
	memset(&si, 0, sizeof si);
	CHECK(waitid(P_ALL, 0, &si, WEXITED) == 0 && si.si_pid == pid);
	CHECK(waitid(P_ALL, 0, &si, WEXITED | WNOHANG) == -1 && errno == ECHILD);
	CHECK(waitid(P_ALL, 0, &si, WNOHANG) == -1 && errno == EINVAL);
	CHECK_EQ(sigaction(SIGCHLD, &old, NULL), 0);

	/* A child with no exit signal is a "clone" child: only __WCLONE or __WALL waits see it. */
	pid = start(exit_with, 0, (void *)3);
	CHECK(waitpid(pid, &status, 0) == -1 && errno == ECHILD);
	CHECK_EQ(waitpid(pid, &status, __WALL), pid);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 3);

	/* The CPU time of a reaped child: in wait4's rusage, RUSAGE_CHILDREN and times(). */
	struct rusage child, children;
	pid = start(spin, SIGCHLD, NULL);
	CHECK_EQ(wait4(pid, &status, 0, &child), pid);
	CHECK(usec(child.ru_utime) > 0);
	CHECK_EQ(getrusage(RUSAGE_CHILDREN, &children), 0);
	CHECK(usec(children.ru_utime) >= usec(child.ru_utime));
	struct tms tms;
	CHECK(times(&tms) != (clock_t)-1 && tms.tms_cutime == (clock_t)(usec(children.ru_utime) / 10000));

	/* A parent ignoring SIGCHLD keeps no zombies: the wait ends with ECHILD once the child
	 * is gone. */
	signal(SIGCHLD, SIG_IGN);
	pid = start(exit_with, SIGCHLD, (void *)1);
	CHECK(waitpid(-1, &status, 0) == -1 && errno == ECHILD);
	CHECK(kill(pid, 0) == -1 && errno == ESRCH);
	signal(SIGCHLD, SIG_DFL);
	CHECK(waitpid(-1, &status, 0x10) == -1 && errno == EINVAL);

	/* kill(0, …) signals the caller's whole process group: the child (with the sender's
	 * pid in si_pid) and the caller; kill(-1, …) everyone but init, here nobody. */
	sigset_t usr2, before;
	sigemptyset(&usr2);
	sigaddset(&usr2, SIGUSR2);
	CHECK_EQ(sigprocmask(SIG_BLOCK, &usr2, &before), 0);
	pid = start(waits_for_sigusr2, SIGCHLD, NULL);
	for (int i = 0; i < 4; i++)
		sched_yield();
	CHECK_EQ(kill(0, SIGUSR2), 0);
	CHECK(waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 1);
	struct timespec now = { 0, 0 };
	CHECK_EQ(sigtimedwait(&usr2, &si, &now), SIGUSR2);
	CHECK(kill(-1, SIGUSR2) == -1 && errno == ESRCH);
	CHECK_EQ(sigprocmask(SIG_SETMASK, &before, NULL), 0);

	/* A pidfd (no libc wrapper): readable once the child ends, which poll waits for;
	 * waitid(P_PIDFD) reaps through it; an ended process takes no signal. */
	CHECK_EQ(pipe(fds), 0);
	pid = start(exit_with_pipe_byte, SIGCHLD, fds);
	int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	CHECK(pidfd >= 0);
	struct pollfd ready = { .fd = pidfd, .events = POLLIN };
	CHECK_EQ(poll(&ready, 1, 0), 0);
	CHECK_EQ(syscall(SYS_pidfd_send_signal, pidfd, 0, NULL, 0), 0);
	CHECK_EQ(write(fds[1], "\6", 1), 1);
	CHECK(poll(&ready, 1, -1) == 1 && ready.revents == POLLIN);
	CHECK(syscall(SYS_pidfd_send_signal, pidfd, 0, NULL, 0) == -1 && errno == ESRCH);
	memset(&si, 0, sizeof si);
	CHECK(waitid(P_PIDFD, pidfd, &si, WEXITED) == 0 && si.si_pid == pid && si.si_status == 6);
	CHECK(syscall(SYS_pidfd_open, getpid(), 1) == -1 && errno == EINVAL);
	close(pidfd);

	/* CLONE_PARENT: a child's CLONE_PARENT child is its sibling, which this process waits
	 * for; it ends with its creator's exit signal (SIGCHLD), not the one given. The first
	 * process (init) has no parent to share: EINVAL. */
	CHECK(clone(note_parent, sibling_stack + sizeof sibling_stack,
		    CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_PARENT | SIGCHLD, NULL) == -1 &&
	      errno == EINVAL);
	volatile pid_t family[2] = { 0, 0 };
	pid_t middle = start(make_sibling, SIGCHLD, (void *)family);
	int reaped = 0, statuses = 0;
	for (int i = 0; i < 2; i++) {
		pid_t got = waitpid(-1, &status, 0);
		reaped += got == middle || (got == family[0] && got > 0);
		statuses += WIFEXITED(status) ? WEXITSTATUS(status) : 100;
	}
	CHECK(family[0] > 0 && reaped == 2 && statuses == 4);
	CHECK_EQ(family[1], getpid());

	/* clone with CLONE_PIDFD hands the parent a pidfd (close-on-exec) through the
	 * parent_tid argument; pidfd_getfd copies a descriptor of the process it names. */
	pidfd = -1;
	pid = clone(exit_with_pipe_byte, child_stack + sizeof child_stack,
		    CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_PIDFD | SIGCHLD, fds, &pidfd);
	CHECK(pid > 0 && pidfd >= 0);
	CHECK_EQ(fcntl(pidfd, F_GETFD), FD_CLOEXEC);
	int copy = (int)syscall(SYS_pidfd_getfd, pidfd, fds[1], 0);
	CHECK(copy >= 0 && copy != fds[1] && fcntl(copy, F_GETFD) == FD_CLOEXEC);
	CHECK(syscall(SYS_pidfd_getfd, pidfd, fds[1], 1) == -1 && errno == EINVAL);
	CHECK(syscall(SYS_pidfd_getfd, fds[0], fds[1], 0) == -1 && errno == EBADF);
	CHECK_EQ(write(copy, "\11", 1), 1); /* through the copy, to the child */
	memset(&si, 0, sizeof si);
	CHECK(waitid(P_PIDFD, pidfd, &si, WEXITED) == 0 && si.si_pid == pid && si.si_status == 9);
	CHECK(syscall(SYS_pidfd_getfd, pidfd, fds[1], 0) == -1 && errno == ESRCH);
	close(copy);
	close(pidfd);
	close(fds[0]);
	close(fds[1]);
}
