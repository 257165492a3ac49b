/*
 * Checks of robust mutexes (an owner that ends without unlocking) and of
 * priority-inheritance mutexes (musl's PTHREAD_PRIO_INHERIT, built on FUTEX_LOCK_PI and
 * FUTEX_UNLOCK_PI); kept in a file of their own (called at the end of the `sync` group) so
 * that other additions to the suite merge apart.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <semaphore.h>
#include <time.h>

#include "suite.h"

/* Takes the mutex and ends without giving it back. */
static void *lock_and_leave(void *arg)
{
	return (void *)(long)pthread_mutex_lock(arg);
}

static sem_t taken;

/* Takes the mutex, lets the creator know, and ends a little later without giving it back:
 * the creator is waiting for it by then. */
static void *lock_wait_and_leave(void *arg)
{
	long r = pthread_mutex_lock(arg);
	sem_post(&taken);
	struct timespec ms = { 0, 5000000 };
	nanosleep(&ms, NULL);
	return (void *)r;
}

/* One robust mutex (PI too with `pi`): an owner that ended leaves it EOWNERDEAD; made
 * consistent, it locks and unlocks as before. */
static void robust_case(int pi)
{
	pthread_mutexattr_t ma;
	pthread_mutex_t m;
	pthread_t t;
	void *res = (void *)-1L;
	CHECK_EQ(pthread_mutexattr_init(&ma), 0);
	CHECK_EQ(pthread_mutexattr_setrobust(&ma, PTHREAD_MUTEX_ROBUST), 0);
	if (pi)
		CHECK_EQ(pthread_mutexattr_setprotocol(&ma, PTHREAD_PRIO_INHERIT), 0);
	CHECK_EQ(pthread_mutex_init(&m, &ma), 0);
	CHECK_EQ(pthread_create(&t, NULL, lock_and_leave, &m), 0);
	CHECK_EQ(pthread_join(t, &res), 0);
	CHECK_EQ((long)res, 0);
	CHECK_EQ(pthread_mutex_lock(&m), EOWNERDEAD);
	CHECK_EQ(pthread_mutex_consistent(&m), 0);
	CHECK_EQ(pthread_mutex_unlock(&m), 0);
	CHECK_EQ(pthread_mutex_lock(&m), 0);
	CHECK_EQ(pthread_mutex_unlock(&m), 0);
	CHECK_EQ(pthread_mutex_destroy(&m), 0);

	/* The owner ends while this thread waits for the mutex: the wait ends EOWNERDEAD. */
	CHECK_EQ(pthread_mutex_init(&m, &ma), 0);
	CHECK_EQ(sem_init(&taken, 0, 0), 0);
	CHECK_EQ(pthread_create(&t, NULL, lock_wait_and_leave, &m), 0);
	CHECK_EQ(sem_wait(&taken), 0);
	CHECK_EQ(pthread_mutex_lock(&m), EOWNERDEAD);
	CHECK_EQ(pthread_join(t, &res), 0);
	CHECK_EQ((long)res, 0);
	CHECK_EQ(pthread_mutex_consistent(&m), 0);
	CHECK_EQ(pthread_mutex_unlock(&m), 0);
	CHECK_EQ(pthread_mutex_destroy(&m), 0);
	sem_destroy(&taken);
	pthread_mutexattr_destroy(&ma);
}

static pthread_mutex_t pi_lock;
static long pi_counter;
static volatile int pi_inside, pi_overlap;

/* Adds to the counter under the PI mutex, yielding inside so that the others find it
 * taken and wait in the kernel (FUTEX_LOCK_PI), to be handed it by FUTEX_UNLOCK_PI. */
static void *pi_add(void *arg)
{
	for (int i = 0; i < 200; i++) {
		if (pthread_mutex_lock(&pi_lock))
			return (void *)1;
		if (pi_inside++)
			pi_overlap = 1;
		long c = pi_counter;
		sched_yield();
		pi_counter = c + 1;
		pi_inside--;
		if (pthread_mutex_unlock(&pi_lock))
			return (void *)1;
	}
	return arg;
}

/* Tries the held PI mutex from another thread: trylock, timedlock, unlock. */
static void *pi_try(void *arg)
{
	struct timespec at;
	long r = 0;
	(void)arg;
	if (pthread_mutex_trylock(&pi_lock) != EBUSY)
		r |= 1;
	clock_gettime(CLOCK_REALTIME, &at);
	at.tv_nsec += 2000000;
	if (at.tv_nsec >= 1000000000) {
		at.tv_sec++;
		at.tv_nsec -= 1000000000;
	}
	if (pthread_mutex_timedlock(&pi_lock, &at) != ETIMEDOUT)
		r |= 2;
	if (pthread_mutex_unlock(&pi_lock) != EPERM)
		r |= 4;
	return (void *)r;
}

static void pi_checks(void)
{
	pthread_mutexattr_t ma;
	int protocol = -1;
	CHECK_EQ(pthread_mutexattr_init(&ma), 0);
	CHECK_EQ(pthread_mutexattr_setprotocol(&ma, PTHREAD_PRIO_INHERIT), 0);
	CHECK(pthread_mutexattr_getprotocol(&ma, &protocol) == 0 &&
	      protocol == PTHREAD_PRIO_INHERIT);
	CHECK_EQ(pthread_mutex_init(&pi_lock, &ma), 0);

	/* Contended: four threads hand the lock to each other through the kernel. */
	pthread_t t[4];
	void *res;
	long failed = 0;
	pi_counter = 0;
	pi_overlap = 0;
	for (int i = 0; i < 4; i++)
		CHECK_EQ(pthread_create(&t[i], NULL, pi_add, NULL), 0);
	for (int i = 0; i < 4; i++)
		pthread_join(t[i], &res), failed |= (long)res;
	CHECK_EQ(failed, 0);
	CHECK_EQ(pi_counter, 800);
	CHECK_EQ(pi_overlap, 0);

	/* Held here: another thread's trylock is EBUSY, its timed lock times out, its unlock
	 * is EPERM; this thread's own trylock is EBUSY too. */
	CHECK_EQ(pthread_mutex_lock(&pi_lock), 0);
	CHECK_EQ(pthread_mutex_trylock(&pi_lock), EBUSY);
	CHECK_EQ(pthread_create(&t[0], NULL, pi_try, NULL), 0);
	pthread_join(t[0], &res);
	CHECK_EQ((long)res, 0);
	CHECK_EQ(pthread_mutex_unlock(&pi_lock), 0);
	CHECK_EQ(pthread_mutex_trylock(&pi_lock), 0);
	CHECK_EQ(pthread_mutex_unlock(&pi_lock), 0);
	CHECK_EQ(pthread_mutex_destroy(&pi_lock), 0);

	/* Error-checking PI: relocking is EDEADLK (from FUTEX_LOCK_PI). */
	pthread_mutex_t checked;
	CHECK_EQ(pthread_mutexattr_settype(&ma, PTHREAD_MUTEX_ERRORCHECK), 0);
	CHECK_EQ(pthread_mutex_init(&checked, &ma), 0);
	CHECK_EQ(pthread_mutex_lock(&checked), 0);
	CHECK_EQ(pthread_mutex_lock(&checked), EDEADLK);
	CHECK_EQ(pthread_mutex_unlock(&checked), 0);
	CHECK_EQ(pthread_mutex_unlock(&checked), EPERM);
	CHECK_EQ(pthread_mutex_destroy(&checked), 0);
	pthread_mutexattr_destroy(&ma);
}

void checks_mutex(void)
{
	robust_case(0);
	pi_checks();
	robust_case(1);
}
