/*
 * Checks of futex operations musl itself does not use (FUTEX_WAKE_OP, made through
 * syscall()) and of how a signal handler installed with SA_RESTART lets a futex wait go
 * on: a sem_wait interrupted by such a handler keeps waiting, as on Linux, and returns 0
 * once the semaphore is posted. Called at the end of the `sync` group.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <semaphore.h>
#include <signal.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "suite.h"

/* Linux's futex ABI (musl's headers do not carry <linux/futex.h>). */
#define FUTEX_WAIT_PRIVATE (0 | 128)
#define FUTEX_WAKE_OP_PRIVATE (5 | 128)
#define FUTEX_OP_SET 0
#define FUTEX_OP_ADD 1
#define FUTEX_OP_OPARG_SHIFT 8
#define FUTEX_OP_CMP_EQ 0
#define FUTEX_OP_CMP_GT 4
#define FUTEX_OP(op, oparg, cmp, cmparg) \
	((((op) & 0xf) << 28) | (((cmp) & 0xf) << 24) | (((oparg) & 0xfff) << 12) | ((cmparg) & 0xfff))

static int word_a, word_b;
static volatile int waiting;

static long futex(int *uaddr, int op, int val, long val2, int *uaddr2, int val3)
{
	return syscall(SYS_futex, uaddr, op, val, val2, uaddr2, val3);
}

/* Waits once on the word (while it is 0) and returns what the call returned. */
static void *wait_on(void *arg)
{
	int *word = arg;
	__atomic_add_fetch(&waiting, 1, __ATOMIC_SEQ_CST);
	return (void *)futex(word, FUTEX_WAIT_PRIVATE, 0, 0, NULL, 0);
}

static void wake_op_checks(void)
{
	pthread_t a, b;
	void *ret;
	word_a = word_b = 0;
	waiting = 0;
	CHECK_EQ(pthread_create(&a, NULL, wait_on, &word_a), 0);
	CHECK_EQ(pthread_create(&b, NULL, wait_on, &word_b), 0);
	while (__atomic_load_n(&waiting, __ATOMIC_SEQ_CST) < 2)
		sched_yield();
	sched_yield();
	/* word_b = 1; its old value 0 fails "> 0", so only a's waiter wakes. */
	CHECK_EQ(futex(&word_a, FUTEX_WAKE_OP_PRIVATE, 1, 1, &word_b,
		       FUTEX_OP(FUTEX_OP_SET, 1, FUTEX_OP_CMP_GT, 0)), 1);
	CHECK_EQ(word_b, 1);
	CHECK(pthread_join(a, &ret) == 0 && ret == NULL);
	/* word_b += 2; the old value 1 passes "> 0": b's waiter wakes. */
	CHECK_EQ(futex(&word_a, FUTEX_WAKE_OP_PRIVATE, 1, 1, &word_b,
		       FUTEX_OP(FUTEX_OP_ADD, 2, FUTEX_OP_CMP_GT, 0)), 1);
	CHECK_EQ(word_b, 3);
	CHECK(pthread_join(b, &ret) == 0 && ret == NULL);
	/* An unknown operation or comparison: ENOSYS, word untouched; a bad address: EFAULT. */
	CHECK_EQ(futex(&word_a, FUTEX_WAKE_OP_PRIVATE, 1, 1, &word_b, (6 << 28)), -1);
	CHECK_EQ(errno, ENOSYS);
	CHECK_EQ(futex(&word_a, FUTEX_WAKE_OP_PRIVATE, 1, 1, &word_b, (7 << 24)), -1);
	CHECK_EQ(errno, ENOSYS);
	CHECK_EQ(word_b, 3);
	CHECK_EQ(futex(&word_a, FUTEX_WAKE_OP_PRIVATE, 1, 1, (int *)8,
		       FUTEX_OP(FUTEX_OP_SET, 1, FUTEX_OP_CMP_EQ, 0)), -1);
	CHECK_EQ(errno, EFAULT);
	/* A shifted operand: word_a = 1 << 4; nobody waits, so nobody wakes. */
	CHECK_EQ(futex(&word_a, FUTEX_WAKE_OP_PRIVATE, 1, 1, &word_a,
		       FUTEX_OP(FUTEX_OP_SET, 4, FUTEX_OP_CMP_EQ, 0) | (FUTEX_OP_OPARG_SHIFT << 28)),
		 0);
	CHECK_EQ(word_a, 16);
}

static sem_t restart_sem;
static volatile int restart_handled;
static volatile int restart_result = -2, restart_errno;

static void note_restart(int sig)
{
	(void)sig;
	restart_handled++;
}

static void *sem_waiter(void *arg)
{
	(void)arg;
	__atomic_add_fetch(&waiting, 1, __ATOMIC_SEQ_CST);
	restart_result = sem_wait(&restart_sem);
	restart_errno = errno;
	return NULL;
}

static void sa_restart_checks(void)
{
	struct sigaction sa = { 0 }, old;
	sa.sa_handler = note_restart;
	/* musl reports a futex wait's EINTR only once some handler was installed without
	 * SA_RESTART (before, it takes EINTR for a spurious wake): install one, so that an
	 * EINTR from the kernel side would show. */
	CHECK_EQ(sigaction(SIGUSR1, &sa, &old), 0);
	CHECK_EQ(sigaction(SIGUSR1, &old, NULL), 0);
	sa.sa_flags = SA_RESTART;
	CHECK_EQ(sigaction(SIGUSR2, &sa, &old), 0);
	CHECK_EQ(sem_init(&restart_sem, 0, 0), 0);
	waiting = 0;
	restart_handled = 0;
	pthread_t t;
	CHECK_EQ(pthread_create(&t, NULL, sem_waiter, NULL), 0);
	while (!__atomic_load_n(&waiting, __ATOMIC_SEQ_CST))
		sched_yield();
	for (int i = 0; i < 3; i++)
		sched_yield();
	CHECK_EQ(pthread_kill(t, SIGUSR2), 0);
	for (int i = 0; i < 5; i++)
		sched_yield();
	/* The handler ran and the wait went on. */
	CHECK_EQ(restart_handled, 1);
	CHECK_EQ(restart_result, -2);
	CHECK_EQ(sem_post(&restart_sem), 0);
	CHECK_EQ(pthread_join(t, NULL), 0);
	CHECK_EQ(restart_result, 0);
	CHECK_EQ(sem_destroy(&restart_sem), 0);
	CHECK_EQ(sigaction(SIGUSR2, &old, NULL), 0);
}

void checks_futex(void)
{
	wake_op_checks();
	sa_restart_checks();
}
