/*
 * The suite's groups for threads (clone, TLS, join, detach, keys, once), synchronisation
 * (mutexes, condition variables, read-write locks, barriers, semaphores: all futex) and
 * signals (handlers, masks, queued and thread-directed signals, timeouts).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <semaphore.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sysinfo.h>
#include <sys/time.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

#include "suite.h"

#define THREADS 8

static __thread int tls_value = 11;

static void *report_tls(void *arg)
{
	int start = tls_value;
	tls_value = (int)(long)arg;
	sched_yield();
	/* Another thread's writes did not reach this one's copy. */
	return (void *)(long)(start == 11 && tls_value == (int)(long)arg);
}

static pthread_key_t key;
static int destructor_calls;

static void destroy(void *value)
{
	if (value)
		destructor_calls++;
}

static void *use_key(void *arg)
{
	pthread_setspecific(key, arg);
	return pthread_getspecific(key);
}

static pthread_once_t once = PTHREAD_ONCE_INIT;
static int once_calls;

static void init_once(void)
{
	once_calls++;
}

static void *call_once(void *arg)
{
	(void)arg;
	pthread_once(&once, init_once);
	return NULL;
}

static void *exit_early(void *arg)
{
	pthread_exit(arg);
	return NULL;
}

static void *spin_cancel_point(void *arg)
{
	(void)arg;
	for (;;)
		pause();
	return NULL;
}

void group_threads(void)
{
	pthread_t t[THREADS];
	void *ret;
	int ok = 1;
	for (long i = 0; i < THREADS; i++)
		ok &= pthread_create(&t[i], NULL, report_tls, (void *)(i + 100)) == 0;
	CHECK(ok);
	int good = 0;
	for (int i = 0; i < THREADS; i++)
		if (!pthread_join(t[i], &ret))
			good += ret == (void *)1;
	CHECK_EQ(good, THREADS);
	CHECK_EQ(tls_value, 11);

	CHECK(pthread_equal(pthread_self(), pthread_self()));
	CHECK_EQ(pthread_create(&t[0], NULL, exit_early, (void *)42), 0);
	CHECK(pthread_join(t[0], &ret) == 0 && ret == (void *)42);

	/* Thread-specific data and its destructors. */
	CHECK_EQ(pthread_key_create(&key, destroy), 0);
	for (long i = 0; i < 4; i++)
		pthread_create(&t[i], NULL, use_key, (void *)(i + 1));
	good = 0;
	for (long i = 0; i < 4; i++)
		if (!pthread_join(t[i], &ret))
			good += ret == (void *)(i + 1);
	CHECK_EQ(good, 4);
	CHECK_EQ(destructor_calls, 4);
	CHECK(pthread_getspecific(key) == NULL);
	CHECK_EQ(pthread_key_delete(key), 0);

	for (int i = 0; i < 4; i++)
		pthread_create(&t[i], NULL, call_once, NULL);
	for (int i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	CHECK_EQ(once_calls, 1);

	/* Attributes: a chosen stack size; a thread cancelled at a cancellation point. */
	pthread_attr_t attr;
	pthread_attr_init(&attr);
	CHECK_EQ(pthread_attr_setstacksize(&attr, 256 * 1024), 0);
	size_t size = 0;
	pthread_attr_getstacksize(&attr, &size);
	CHECK_EQ(size, 256 * 1024);
	CHECK_EQ(pthread_create(&t[0], &attr, report_tls, (void *)7), 0);
	CHECK(pthread_join(t[0], &ret) == 0 && ret == (void *)1);
	pthread_attr_destroy(&attr);
	CHECK_EQ(pthread_create(&t[1], NULL, spin_cancel_point, NULL), 0);
	sched_yield();
	CHECK_EQ(pthread_cancel(t[1]), 0);
	CHECK(pthread_join(t[1], &ret) == 0 && ret == PTHREAD_CANCELED);
}

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static long counter;

static void *add_many(void *arg)
{
	for (int i = 0; i < 2000; i++) {
		pthread_mutex_lock(&lock);
		long seen = counter;
		if (i % 64 == 0)
			sched_yield(); /* hold the lock across a switch */
		counter = seen + 1;
		pthread_mutex_unlock(&lock);
	}
	return arg;
}

static pthread_cond_t ready = PTHREAD_COND_INITIALIZER;
static int queue[16], queued, produced_total;

static void *consume(void *arg)
{
	(void)arg;
	long sum = 0;
	for (int i = 0; i < 100; i++) {
		pthread_mutex_lock(&lock);
		while (queued == 0)
			pthread_cond_wait(&ready, &lock);
		sum += queue[--queued];
		pthread_cond_broadcast(&ready);
		pthread_mutex_unlock(&lock);
	}
	return (void *)sum;
}

static pthread_rwlock_t rw = PTHREAD_RWLOCK_INITIALIZER;
static int readers_inside, max_readers, writer_saw_readers;

static void *reader(void *arg)
{
	pthread_rwlock_rdlock(&rw);
	readers_inside++;
	if (readers_inside > max_readers)
		max_readers = readers_inside;
	sched_yield();
	readers_inside--;
	pthread_rwlock_unlock(&rw);
	return arg;
}

static void *writer(void *arg)
{
	pthread_rwlock_wrlock(&rw);
	writer_saw_readers |= readers_inside;
	sched_yield();
	pthread_rwlock_unlock(&rw);
	return arg;
}

static pthread_barrier_t barrier;
static int before_barrier, after_barrier_saw_all;

static void *meet(void *arg)
{
	__atomic_add_fetch(&before_barrier, 1, __ATOMIC_SEQ_CST);
	pthread_barrier_wait(&barrier);
	if (__atomic_load_n(&before_barrier, __ATOMIC_SEQ_CST) == 4)
		__atomic_add_fetch(&after_barrier_saw_all, 1, __ATOMIC_SEQ_CST);
	return arg;
}

static sem_t items;

static void *post_later(void *arg)
{
	(void)arg;
	usleep(2000);
	sem_post(&items);
	return NULL;
}

void group_sync(void)
{
	pthread_t t[THREADS];
	counter = 0;
	for (int i = 0; i < 4; i++)
		pthread_create(&t[i], NULL, add_many, NULL);
	for (int i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	CHECK_EQ(counter, 8000);

	CHECK_EQ(pthread_mutex_lock(&lock), 0);
	CHECK_EQ(pthread_mutex_trylock(&lock), EBUSY);
	CHECK_EQ(pthread_mutex_unlock(&lock), 0);
	pthread_mutexattr_t ma;
	pthread_mutex_t recursive, checked;
	pthread_mutexattr_init(&ma);
	pthread_mutexattr_settype(&ma, PTHREAD_MUTEX_RECURSIVE);
	pthread_mutex_init(&recursive, &ma);
	CHECK(pthread_mutex_lock(&recursive) == 0 && pthread_mutex_lock(&recursive) == 0);
	CHECK(pthread_mutex_unlock(&recursive) == 0 && pthread_mutex_unlock(&recursive) == 0);
	pthread_mutexattr_settype(&ma, PTHREAD_MUTEX_ERRORCHECK);
	pthread_mutex_init(&checked, &ma);
	CHECK_EQ(pthread_mutex_lock(&checked), 0);
	CHECK_EQ(pthread_mutex_lock(&checked), EDEADLK);
	CHECK_EQ(pthread_mutex_unlock(&checked), 0);
	CHECK_EQ(pthread_mutex_unlock(&checked), EPERM);

	/* Producer and two consumers over a condition variable. */
	queued = produced_total = 0;
	pthread_create(&t[0], NULL, consume, NULL);
	pthread_create(&t[1], NULL, consume, NULL);
	for (int i = 1; i <= 200; i++) {
		pthread_mutex_lock(&lock);
		while (queued == 16)
			pthread_cond_wait(&ready, &lock);
		queue[queued++] = i;
		produced_total += i;
		pthread_cond_signal(&ready);
		pthread_mutex_unlock(&lock);
	}
	void *a, *b;
	pthread_join(t[0], &a);
	pthread_join(t[1], &b);
	CHECK_EQ((long)a + (long)b, 20100);

	/* A timed wait that nobody signals ends with ETIMEDOUT, after its deadline. */
	struct timespec deadline, now;
	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_nsec += 3000000;
	if (deadline.tv_nsec >= 1000000000) {
		deadline.tv_sec++;
		deadline.tv_nsec -= 1000000000;
	}
	pthread_mutex_lock(&lock);
	CHECK_EQ(pthread_cond_timedwait(&ready, &lock, &deadline), ETIMEDOUT);
	pthread_mutex_unlock(&lock);
	clock_gettime(CLOCK_REALTIME, &now);
	CHECK(now.tv_sec > deadline.tv_sec ||
	      (now.tv_sec == deadline.tv_sec && now.tv_nsec >= deadline.tv_nsec));

	/* Readers share the lock, the writer has it alone. */
	for (int i = 0; i < 4; i++)
		pthread_create(&t[i], NULL, reader, NULL);
	pthread_create(&t[4], NULL, writer, NULL);
	for (int i = 0; i < 4; i++)
		pthread_create(&t[5 + i % 3], NULL, reader, NULL), pthread_join(t[5 + i % 3], NULL);
	for (int i = 0; i < 5; i++)
		pthread_join(t[i], NULL);
	CHECK(max_readers >= 2);
	CHECK_EQ(writer_saw_readers, 0);
	CHECK_EQ(pthread_rwlock_rdlock(&rw), 0);
	CHECK_EQ(pthread_rwlock_trywrlock(&rw), EBUSY);
	CHECK_EQ(pthread_rwlock_unlock(&rw), 0);

	CHECK_EQ(pthread_barrier_init(&barrier, NULL, 4), 0);
	for (int i = 0; i < 4; i++)
		pthread_create(&t[i], NULL, meet, NULL);
	for (int i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	CHECK_EQ(after_barrier_saw_all, 4);
	pthread_barrier_destroy(&barrier);

	/* Semaphores: counting, trywait, a timed wait that times out, one that is posted. */
	CHECK_EQ(sem_init(&items, 0, 2), 0);
	CHECK(sem_trywait(&items) == 0 && sem_trywait(&items) == 0);
	CHECK_EQ(sem_trywait(&items), -1);
	CHECK_EQ(errno, EAGAIN);
	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_nsec += 2000000;
	if (deadline.tv_nsec >= 1000000000) {
		deadline.tv_sec++;
		deadline.tv_nsec -= 1000000000;
	}
	CHECK_EQ(sem_timedwait(&items, &deadline), -1);
	CHECK_EQ(errno, ETIMEDOUT);
	pthread_create(&t[0], NULL, post_later, NULL);
	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += 5;
	CHECK_EQ(sem_timedwait(&items, &deadline), 0);
	pthread_join(t[0], NULL);
	int value = -1;
	sem_getvalue(&items, &value);
	CHECK_EQ(value, 0);
	sem_destroy(&items);
	checks_mutex();
	checks_futex();
}

static volatile sig_atomic_t last_signal, handler_calls;
static volatile int info_code, info_value;

static void count_signal(int sig)
{
	last_signal = sig;
	handler_calls++;
}

static void with_info(int sig, siginfo_t *info, void *context)
{
	(void)context;
	last_signal = sig;
	info_code = info->si_code;
	info_value = info->si_value.sival_int;
}

static sigjmp_buf info_jump;
static volatile int info_context_whole;

/* Copies its whole context, as a handler may, checks where x86_64's fpregs points, and
   leaves with siglongjmp. */
static void with_info_jumping(int sig, siginfo_t *info, void *context)
{
	ucontext_t *uc = context;
	volatile ucontext_t copy = *uc;
	(void)copy;
#if defined(__x86_64__)
	char *fpregs = (char *)uc->uc_mcontext.fpregs;
	info_context_whole = fpregs >= (char *)uc && fpregs < (char *)(uc + 1);
#else
	info_context_whole = 1;
#endif
	last_signal = sig;
	info_code = info->si_code;
	siglongjmp(info_jump, 1);
}

static volatile uintptr_t handler_local;
static volatile int handler_saw_onstack;

/* Records where the handler's frame is and what sigaltstack says inside it. */
static void note_stack(int sig)
{
	volatile char here = (char)sig;
	handler_local = (uintptr_t)&here;
	stack_t now;
	handler_saw_onstack = sigaltstack(NULL, &now) == 0 ? (now.ss_flags & SS_ONSTACK) : -1;
}

static volatile sig_atomic_t timer_hits, timer_value, timer_code, thread_notified;
static sem_t timer_sem;

static void on_timer(int sig, siginfo_t *info, void *context)
{
	(void)sig;
	(void)context;
	timer_hits++;
	timer_value = info->si_value.sival_int;
	timer_code = info->si_code;
}

/* Runs in the thread musl starts for a SIGEV_THREAD timer. */
static void timer_thread(union sigval value)
{
	thread_notified = value.sival_int;
	sem_post(&timer_sem);
}

/* Yields until a handler has run (in this thread, since only it is sent the signal);
 * returns how many ran. */
static volatile int spinner_counting;

static void *yielding_spinner(void *arg)
{
	(void)arg;
	int start = handler_calls;
	spinner_counting = 1;
	for (int i = 0; i < 100000 && handler_calls == start; i++)
		sched_yield();
	return (void *)(long)(handler_calls - start);
}

static void *blocked_sleeper(void *arg)
{
	(void)arg;
	struct timespec t = { 0, 50000000 };
	return (void *)(long)nanosleep(&t, NULL);
}

void group_signals(void)
{
	struct sigaction sa, old;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = count_signal;
	CHECK_EQ(sigaction(SIGUSR1, &sa, NULL), 0);
	CHECK_EQ(sigaction(SIGUSR1, NULL, &old), 0);
	CHECK(old.sa_handler == count_signal);
	handler_calls = 0;
	CHECK_EQ(raise(SIGUSR1), 0);
	CHECK(handler_calls == 1 && last_signal == SIGUSR1);
	CHECK_EQ(kill(getpid(), SIGUSR1), 0);
	CHECK_EQ(handler_calls, 2);

	/* Standard signals do not queue: two while blocked run once at the unblock. */
	sigset_t set, was, pending;
	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	CHECK_EQ(sigprocmask(SIG_BLOCK, &set, &was), 0);
	raise(SIGUSR1);
	raise(SIGUSR1);
	CHECK_EQ(handler_calls, 2);
	CHECK(sigpending(&pending) == 0 && sigismember(&pending, SIGUSR1));
	CHECK_EQ(sigprocmask(SIG_SETMASK, &was, NULL), 0);
	CHECK_EQ(handler_calls, 3);

	/* Real-time signals queue, with their value (sigqueue, SA_SIGINFO). */
	memset(&sa, 0, sizeof sa);
	sa.sa_sigaction = with_info;
	sa.sa_flags = SA_SIGINFO;
	CHECK_EQ(sigaction(SIGRTMIN + 1, &sa, NULL), 0);
	CHECK_EQ(sigqueue(getpid(), SIGRTMIN + 1, (union sigval){ .sival_int = 77 }), 0);
	CHECK(last_signal == SIGRTMIN + 1 && info_code == SI_QUEUE && info_value == 77);

	/* SA_SIGINFO handlers that leave with siglongjmp, 500 times: the context lives on the
	   delivering thread's stack, as Linux's signal frame does, so nothing is left behind
	   (a context on the heap would hold 0.5-2 MiB of the image's memory after them). */
	sa.sa_sigaction = with_info_jumping;
	CHECK_EQ(sigaction(SIGUSR2, &sa, NULL), 0);
	struct sysinfo mem;
	unsigned long free_before = 0;
	int jumped = 0;
	for (volatile int round = 0; round < 510; round++) {
		if (round == 10) /* after the first ones, which may set up what stays */
			free_before = sysinfo(&mem) == 0 ? mem.freeram : 0;
		info_context_whole = 0;
		if (sigsetjmp(info_jump, 1) == 0)
			raise(SIGUSR2);
		else
			jumped += info_context_whole && last_signal == SIGUSR2 && info_code == SI_TKILL;
	}
	CHECK_EQ(jumped, 510);
	CHECK(sysinfo(&mem) == 0 && mem.freeram + 65536 > free_before);
	signal(SIGUSR2, SIG_DFL);

	/* Ignored and default-ignored signals do nothing; SIGKILL cannot be caught. */
	signal(SIGUSR2, SIG_IGN);
	CHECK_EQ(raise(SIGUSR2), 0);
	CHECK_EQ(raise(SIGCHLD), 0);
	signal(SIGUSR2, SIG_DFL);
	CHECK_EQ(sigaction(SIGKILL, &sa, NULL), -1);
	CHECK_EQ(errno, EINVAL);
	CHECK_EQ(kill(getpid(), 65), -1);
	CHECK_EQ(errno, EINVAL);
	CHECK_EQ(kill(12345, 0), -1);
	CHECK_EQ(errno, ESRCH);
	CHECK_EQ(kill(getpid(), 0), 0);

	/* sigtimedwait: a timeout, then a pending signal taken without its handler. */
	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	sigprocmask(SIG_BLOCK, &set, NULL);
	struct timespec brief = { 0, 2000000 };
	CHECK_EQ(sigtimedwait(&set, NULL, &brief), -1);
	CHECK_EQ(errno, EAGAIN);
	handler_calls = 0;
	raise(SIGUSR1);
	siginfo_t info;
	CHECK_EQ(sigtimedwait(&set, &info, &brief), SIGUSR1);
	CHECK(info.si_signo == SIGUSR1 && handler_calls == 0);
	sigprocmask(SIG_UNBLOCK, &set, NULL);

	/* A signal for a thread that blocks it waits; its sleep runs to the end. */
	pthread_t t;
	sigprocmask(SIG_BLOCK, &set, NULL);
	CHECK_EQ(pthread_create(&t, NULL, blocked_sleeper, NULL), 0);
	sigprocmask(SIG_UNBLOCK, &set, NULL);
	sched_yield();
	CHECK_EQ(pthread_kill(t, SIGUSR1), 0);
	void *slept;
	CHECK(pthread_join(t, &slept) == 0 && slept == (void *)0);
	CHECK_EQ(handler_calls, 0);
	signal(SIGUSR1, SIG_DFL);

	/* Interval timers: an expiry ends pause() after the handler ran; alarm() reports
	 * what was left; an interval re-arms. */
	signal(SIGALRM, count_signal);
	handler_calls = 0;
	/* The timer repeats until pause returned: an expiry that comes before pause blocks
	 * (its handler then runs at the timer interrupt in the code between, as on Linux)
	 * leaves the next one to end it. */
	struct itimerval it = { { 0, 20000 }, { 0, 20000 } }, left;
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	CHECK_EQ(setitimer(ITIMER_REAL, &it, NULL), 0);
	CHECK_EQ(pause(), -1);
	CHECK_EQ(errno, EINTR);
	memset(&it, 0, sizeof it);
	setitimer(ITIMER_REAL, &it, NULL);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	CHECK(handler_calls >= 1 && last_signal == SIGALRM);
	CHECK((t1.tv_sec - t0.tv_sec) * 1000000000L + t1.tv_nsec - t0.tv_nsec >= 20000000);
	CHECK_EQ(alarm(10), 0);
	CHECK_EQ(alarm(0), 10);
	struct itimerval every = { { 0, 5000 }, { 0, 5000 } };
	CHECK_EQ(setitimer(ITIMER_REAL, &every, NULL), 0);
	/* Each pause ends with an expiry's handler; a later expiry may interrupt the code
	   between them too, as on Linux. */
	int paused = 0;
	for (int i = 0; i < 3; i++) {
		int before = handler_calls;
		pause();
		paused += handler_calls > before;
	}
	CHECK_EQ(paused, 3);
	CHECK(handler_calls >= 4);
	CHECK(getitimer(ITIMER_REAL, &left) == 0 && left.it_interval.tv_usec == 5000);
	memset(&it, 0, sizeof it);
	CHECK_EQ(setitimer(ITIMER_REAL, &it, NULL), 0);
	CHECK(getitimer(ITIMER_REAL, &left) == 0 && left.it_value.tv_sec == 0 &&
	      left.it_value.tv_usec == 0);
	signal(SIGALRM, SIG_DFL);

	/* The profiling timer counts CPU time, not waiting: SIGPROF comes on the way back from
	 * a call once 50 ms of it were used (a loop of calls here), and not during a sleep of
	 * 100 ms. */
	signal(SIGPROF, count_signal);
	struct itimerval prof = { { 0, 0 }, { 0, 50000 } };
	CHECK_EQ(setitimer(ITIMER_PROF, &prof, NULL), 0);
	CHECK(getitimer(ITIMER_PROF, &left) == 0 && left.it_value.tv_sec == 0 && left.it_value.tv_usec > 0 &&
	      left.it_value.tv_usec <= 50000);
	int before_prof = handler_calls;
	struct timespec sleep_100ms = { 0, 100000000 };
	nanosleep(&sleep_100ms, NULL);
	CHECK_EQ(handler_calls, before_prof);
	for (long i = 0; i < 100000000 && handler_calls == before_prof; i++)
		getppid();
	CHECK(handler_calls == before_prof + 1 && last_signal == SIGPROF);
	CHECK(getitimer(ITIMER_PROF, &left) == 0 && left.it_value.tv_usec == 0);
	CHECK(getitimer(ITIMER_VIRTUAL, &left) == 0 && left.it_value.tv_usec == 0);
	signal(SIGPROF, SIG_DFL);

	/* An alternate signal stack: an SA_ONSTACK handler runs there, another does not. */
	static char altstack[16384] __attribute__((aligned(16)));
	stack_t ss = { .ss_sp = altstack, .ss_size = sizeof altstack, .ss_flags = 0 };
	stack_t oss;
	CHECK_EQ(sigaltstack(NULL, &oss), 0);
	CHECK_EQ(oss.ss_flags, SS_DISABLE);
	CHECK_EQ(sigaltstack(&ss, NULL), 0);
	CHECK(sigaltstack(NULL, &oss) == 0 && oss.ss_sp == altstack && oss.ss_flags == 0);
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = note_stack;
	sa.sa_flags = SA_ONSTACK;
	CHECK_EQ(sigaction(SIGUSR2, &sa, NULL), 0);
	CHECK_EQ(raise(SIGUSR2), 0);
	CHECK(handler_local > (uintptr_t)altstack &&
	      handler_local < (uintptr_t)altstack + sizeof altstack);
	CHECK_EQ(handler_saw_onstack, SS_ONSTACK);
	sa.sa_flags = 0;
	CHECK_EQ(sigaction(SIGUSR2, &sa, NULL), 0);
	CHECK_EQ(raise(SIGUSR2), 0);
	CHECK(handler_local < (uintptr_t)altstack ||
	      handler_local >= (uintptr_t)altstack + sizeof altstack);
	ss.ss_size = MINSIGSTKSZ - 1;
	CHECK_EQ(sigaltstack(&ss, NULL), -1);
	CHECK_EQ(errno, ENOMEM);
	/* (musl checks the size itself first, so the flags are tried with a good size.) */
	ss.ss_size = sizeof altstack;
	ss.ss_flags = 0x40;
	CHECK_EQ(sigaltstack(&ss, NULL), -1);
	CHECK_EQ(errno, EINVAL);
	ss.ss_flags = SS_DISABLE;
	CHECK_EQ(sigaltstack(&ss, NULL), 0);
	signal(SIGUSR2, SIG_DFL);

	/* A thread that only yields gets its signal on the way back from sched_yield. */
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = count_signal;
	CHECK_EQ(sigaction(SIGUSR1, &sa, NULL), 0);
	pthread_t spinner;
	spinner_counting = 0;
	CHECK_EQ(pthread_create(&spinner, NULL, yielding_spinner, NULL), 0);
	/* Sent once the spinner counts (a preempted spinner may not have begun yet, and a
	   signal during its start-up would run before it looked). */
	for (int i = 0; i < 100000 && !spinner_counting; i++)
		sched_yield();
	CHECK_EQ(pthread_kill(spinner, SIGUSR1), 0);
	void *ran;
	CHECK_EQ(pthread_join(spinner, &ran), 0);
	CHECK_EQ((long)ran, 1);
	signal(SIGUSR1, SIG_DFL);

	/* POSIX timers: one that signals every 5 ms, one that runs a function in a thread. */
	memset(&sa, 0, sizeof sa);
	sa.sa_sigaction = on_timer;
	sa.sa_flags = SA_SIGINFO;
	CHECK_EQ(sigaction(SIGRTMIN, &sa, NULL), 0);
	struct sigevent sev;
	memset(&sev, 0, sizeof sev);
	sev.sigev_notify = SIGEV_SIGNAL;
	sev.sigev_signo = SIGRTMIN;
	sev.sigev_value.sival_int = 42;
	timer_t timer;
	CHECK_EQ(timer_create(CLOCK_MONOTONIC, &sev, &timer), 0);
	struct itimerspec every5 = { { 0, 5000000 }, { 0, 5000000 } }, now;
	timer_hits = 0;
	CHECK_EQ(timer_settime(timer, 0, &every5, NULL), 0);
	/* Each pause ends with (at least) one expiry's handler; more may have run by the
	   check, since a later expiry interrupts the code between the calls, as on Linux. */
	int paused_through = 0;
	for (int i = 0; i < 3; i++) {
		int before = timer_hits;
		pause();
		paused_through += timer_hits > before;
	}
	CHECK_EQ(paused_through, 3);
	CHECK(timer_hits >= 3);
	CHECK(timer_value == 42 && timer_code == SI_TIMER);
	CHECK(timer_gettime(timer, &now) == 0 && now.it_interval.tv_nsec == 5000000 &&
	      now.it_value.tv_sec == 0 && now.it_value.tv_nsec > 0);
	CHECK(timer_getoverrun(timer) >= 0);
	CHECK_EQ(timer_delete(timer), 0);
	CHECK_EQ(timer_create((clockid_t)99, &sev, &timer), -1);
	CHECK_EQ(errno, EINVAL);
	signal(SIGRTMIN, SIG_DFL);

	memset(&sev, 0, sizeof sev);
	sev.sigev_notify = SIGEV_THREAD;
	sev.sigev_notify_function = timer_thread;
	sev.sigev_value.sival_int = 7;
	sem_init(&timer_sem, 0, 0);
	CHECK_EQ(timer_create(CLOCK_REALTIME, &sev, &timer), 0);
	struct itimerspec once = { { 0, 0 }, { 0, 10000000 } };
	CHECK_EQ(timer_settime(timer, 0, &once, NULL), 0);
	struct timespec limit;
	clock_gettime(CLOCK_REALTIME, &limit);
	limit.tv_sec += 5;
	CHECK_EQ(sem_timedwait(&timer_sem, &limit), 0);
	CHECK_EQ(thread_notified, 7);
	CHECK_EQ(timer_delete(timer), 0);
	sem_destroy(&timer_sem);
	checks_timer_delete();
	checks_signalfd();
	checks_async_signals();
}
