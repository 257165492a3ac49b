/*
 * The `preemption` group, run only when named (`-- suite preemption`) and meant for an
 * image booted with `sched=preemptive` (`cargo uk run --scheduler preemptive`): threads
 * that compute without any call are switched away from at the timer interrupt, and a
 * signal or a cancellation another thread sends reaches them there. Under the cooperative
 * scheduler the spinners below keep the CPU until they give up (about five seconds'
 * worth of rounds, measured first), so the checks fail instead of hanging.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <time.h>

#include "suite.h"

static volatile int go_on;
static volatile int stop;
static volatile int handled_on_spinner;
static pthread_t spinner_thread;
static long round_limit;

static long long since_ns(const struct timespec *t0)
{
	struct timespec t1;
	clock_gettime(CLOCK_MONOTONIC, &t1);
	return (t1.tv_sec - t0->tv_sec) * 1000000000LL + t1.tv_nsec - t0->tv_nsec;
}

/* Rounds of the spin loop in about five seconds (from 20 ms of it, without other threads). */
static long five_seconds_of_rounds(void)
{
	struct timespec t0;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	long rounds = 0;
	long long ns;
	do {
		for (long i = 0; i < 100000 && !stop; i++, rounds++)
			__asm__ volatile("" ::: "memory");
		ns = since_ns(&t0);
	} while (ns < 20000000);
	return rounds * 20000000LL / ns * 250;
}

/* Spins without any call until `stop`, at most `round_limit` rounds; returns the rounds. */
static void *spin(void *arg)
{
	(void)arg;
	long i;
	for (i = 0; i < round_limit && !stop; i++)
		__asm__ volatile("" ::: "memory");
	return (void *)i;
}

static void on_usr1(int sig)
{
	(void)sig;
	handled_on_spinner = pthread_equal(pthread_self(), spinner_thread);
	stop = 1;
}

static void *spin_cancellable(void *arg)
{
	pthread_setcanceltype(PTHREAD_CANCEL_ASYNCHRONOUS, NULL);
	go_on = 1;
	return spin(arg);
}

void group_preemption(void)
{
	stop = 0;
	round_limit = five_seconds_of_rounds();
	void *rounds;

	/* A spinner is switched away from: this thread runs again and stops it. */
	stop = 0;
	CHECK_EQ(pthread_create(&spinner_thread, NULL, spin, NULL), 0);
	sched_yield();
	stop = 1;
	CHECK_EQ(pthread_join(spinner_thread, &rounds), 0);
	CHECK((long)rounds < round_limit);

	/* pthread_kill reaches the spinner at a timer interrupt: the handler runs there. */
	stop = 0;
	handled_on_spinner = 0;
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_usr1;
	sigaction(SIGUSR1, &sa, NULL);
	CHECK_EQ(pthread_create(&spinner_thread, NULL, spin, NULL), 0);
	sched_yield();
	CHECK_EQ(pthread_kill(spinner_thread, SIGUSR1), 0);
	CHECK_EQ(pthread_join(spinner_thread, &rounds), 0);
	CHECK((long)rounds < round_limit);
	CHECK(handled_on_spinner);
	signal(SIGUSR1, SIG_DFL);

	/* Asynchronous cancellation of a spinner (libc-test's pthread_cancel case). */
	stop = 0;
	go_on = 0;
	CHECK_EQ(pthread_create(&spinner_thread, NULL, spin_cancellable, NULL), 0);
	while (!go_on)
		sched_yield();
	CHECK_EQ(pthread_cancel(spinner_thread), 0);
	CHECK_EQ(pthread_join(spinner_thread, &rounds), 0);
	CHECK(rounds == PTHREAD_CANCELED);
}
