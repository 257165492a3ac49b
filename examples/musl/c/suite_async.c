/*
 * Signals for a thread that computes without system calls: the timer interrupt delivers
 * them (uk-posix-process's `interrupt` module), as Linux does on its way back to user mode.
 * Every loop here spins on a flag with no call inside and gives up after about five
 * seconds' worth of rounds (measured first), so without that delivery the checks fail
 * instead of hanging.
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <signal.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

#include "suite.h"

static volatile sig_atomic_t async_hits, async_last;
static volatile int async_stop;
static sigjmp_buf async_jump;

static void on_async(int sig)
{
	async_hits++;
	async_last = sig;
	async_stop = 1;
}

/* Does floating-point work of its own, so that the interrupted loop's registers would be
 * overwritten if nobody kept them. */
static void on_async_computing(int sig)
{
	volatile double h = 3.0;
	double x = h, y = 0.25;
	for (int k = 0; k < 64; k++) {
		x = x * 1.5 + y;
		y = y * 0.5 + x * 1e-9;
	}
	h = x + y;
	on_async(sig);
}

static void on_async_jumping(int sig)
{
	async_hits++;
	async_last = sig;
	siglongjmp(async_jump, 1);
}

/* What an interrupt's SA_SIGINFO handler found in its context's uc_mcontext. */
static volatile unsigned long seen_sp, seen_flag;

/* Reads the interrupted stack pointer and the loop's flag register (x86_64 rbx, aarch64
   x19: registers the C code must keep, which only a frame holding every register reports),
   then sets the flag there, ending the loop below as a sigreturn-ed context would. */
static void on_async_setting_flag(int sig, siginfo_t *info, void *context)
{
	(void)info;
	ucontext_t *uc = context;
#if defined(__x86_64__)
	seen_sp = uc->uc_mcontext.gregs[REG_RSP];
	seen_flag = uc->uc_mcontext.gregs[REG_RBX];
	uc->uc_mcontext.gregs[REG_RBX] = 0x5a;
#else
	seen_sp = uc->uc_mcontext.sp;
	seen_flag = uc->uc_mcontext.regs[19];
	uc->uc_mcontext.regs[19] = 0x5a;
#endif
	async_hits++;
	async_last = sig;
}

/* Counts `limit` down, without any call or memory access, until the flag register is set;
   returns what the flag register holds at the end and leaves the rounds left in `*left`. */
static unsigned long spin_on_flag_register(long limit, long *left)
{
#if defined(__x86_64__)
	register unsigned long flag __asm__("rbx") = 0;
	__asm__ volatile("1: test %0, %0\n\t"
			 "jnz 2f\n\t"
			 "dec %1\n\t"
			 "jnz 1b\n"
			 "2:"
			 : "+r"(flag), "+r"(limit));
#else
	register unsigned long flag __asm__("x19") = 0;
	__asm__ volatile("1: cbnz %0, 2f\n\t"
			 "subs %1, %1, #1\n\t"
			 "b.ne 1b\n"
			 "2:"
			 : "+r"(flag), "+r"(limit)
			 :
			 : "cc");
#endif
	*left = limit;
	return flag;
}

static long long elapsed_ns(const struct timespec *a, const struct timespec *b)
{
	return (b->tv_sec - a->tv_sec) * 1000000000LL + b->tv_nsec - a->tv_nsec;
}

/* Spins until `async_stop` or `limit` rounds, without any call; returns the rounds. */
static long spin(long limit)
{
	long i;
	for (i = 0; i < limit && !async_stop; i++)
		__asm__ volatile("" ::: "memory");
	return i;
}

/* Spins as `spin`, adding 0.5 to a double each round; returns it (exact: round * 0.5). */
static double spin_adding(long limit, long *rounds)
{
	double acc = 0;
	long i;
	for (i = 0; i < limit && !async_stop; i++)
		acc += 0.5;
	*rounds = i;
	return acc;
}

/* Rounds of `spin` in about five seconds (the better of two measurements of 20 ms). */
static long five_seconds_of_rounds(void)
{
	long best = 1;
	for (int attempt = 0; attempt < 2; attempt++) {
		struct timespec t0, t1;
		async_stop = 0;
		clock_gettime(CLOCK_MONOTONIC, &t0);
		long rounds = 0;
		do {
			rounds += spin(100000);
			clock_gettime(CLOCK_MONOTONIC, &t1);
		} while (elapsed_ns(&t0, &t1) < 20000000);
		long per_20ms = rounds * 20000000LL / elapsed_ns(&t0, &t1);
		if (per_20ms > best)
			best = per_20ms;
	}
	return best * 250;
}

void checks_async_signals(void)
{
	long limit = five_seconds_of_rounds();
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_async;
	sigaction(SIGALRM, &sa, NULL);
	sigaction(SIGPROF, &sa, NULL);
	sigaction(SIGUSR2, &sa, NULL);

	/* setitimer's SIGALRM ends a loop without calls after its 20 ms. */
	struct timespec t0, t1;
	async_hits = 0;
	async_stop = 0;
	struct itimerval once = { { 0, 0 }, { 0, 20000 } };
	clock_gettime(CLOCK_MONOTONIC, &t0);
	CHECK_EQ(setitimer(ITIMER_REAL, &once, NULL), 0);
	long rounds = spin(limit);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	CHECK(rounds < limit);
	CHECK(async_hits == 1 && async_last == SIGALRM);
	CHECK(elapsed_ns(&t0, &t1) >= 20000000);

	/* ITIMER_PROF's SIGPROF comes after 30 ms of CPU time spent in such a loop. */
	async_hits = 0;
	async_stop = 0;
	struct itimerval prof = { { 0, 0 }, { 0, 30000 } };
	CHECK_EQ(setitimer(ITIMER_PROF, &prof, NULL), 0);
	rounds = spin(limit);
	CHECK(rounds < limit);
	CHECK(async_hits == 1 && async_last == SIGPROF);

	/* A POSIX timer's signal too. */
	async_hits = 0;
	async_stop = 0;
	struct sigevent sev;
	memset(&sev, 0, sizeof sev);
	sev.sigev_notify = SIGEV_SIGNAL;
	sev.sigev_signo = SIGUSR2;
	timer_t timer;
	CHECK_EQ(timer_create(CLOCK_MONOTONIC, &sev, &timer), 0);
	struct itimerspec in15 = { { 0, 0 }, { 0, 15000000 } };
	CHECK_EQ(timer_settime(timer, 0, &in15, NULL), 0);
	rounds = spin(limit);
	CHECK(rounds < limit);
	CHECK(async_hits == 1 && async_last == SIGUSR2);
	CHECK_EQ(timer_delete(timer), 0);

	/* A blocked signal stays pending through the loop and runs at the unblock. */
	sigset_t alrm, pending;
	sigemptyset(&alrm);
	sigaddset(&alrm, SIGALRM);
	sigprocmask(SIG_BLOCK, &alrm, NULL);
	async_hits = 0;
	async_stop = 0;
	struct itimerval in5 = { { 0, 0 }, { 0, 5000 } };
	clock_gettime(CLOCK_MONOTONIC, &t0);
	CHECK_EQ(setitimer(ITIMER_REAL, &in5, NULL), 0);
	/* 50 ms of loops of about 0.5 ms, timed by the clock: the rounds measured at the start
	   are only an estimate on a loaded host. */
	rounds = 0;
	do {
		rounds += spin(limit / 10000);
		clock_gettime(CLOCK_MONOTONIC, &t1);
	} while (elapsed_ns(&t0, &t1) < 50000000);
	CHECK(rounds >= limit / 10000 && async_hits == 0);
	CHECK(sigpending(&pending) == 0 && sigismember(&pending, SIGALRM));
	sigprocmask(SIG_UNBLOCK, &alrm, NULL);
	CHECK(async_hits == 1 && async_last == SIGALRM);

	/* The interrupted loop's floating-point registers survive a handler that computes. */
	sa.sa_handler = on_async_computing;
	sigaction(SIGALRM, &sa, NULL);
	async_hits = 0;
	async_stop = 0;
	CHECK_EQ(setitimer(ITIMER_REAL, &once, NULL), 0);
	double sum = spin_adding(limit, &rounds);
	CHECK(rounds < limit && async_hits == 1);
	CHECK(sum == 0.5 * (double)rounds);

	/* A handler that leaves with siglongjmp, twice: the second loop is interrupted too. */
	sa.sa_handler = on_async_jumping;
	sigaction(SIGALRM, &sa, NULL);
	async_hits = 0;
	int jumps = 0;
	for (int round = 0; round < 2; round++) {
		async_stop = 0;
		if (sigsetjmp(async_jump, 1) == 0) {
			CHECK_EQ(setitimer(ITIMER_REAL, &once, NULL), 0);
			spin(limit);
		} else {
			jumps++;
		}
	}
	CHECK(jumps == 2 && async_hits == 2);

	/* The handler's context holds the interrupted registers: the stack pointer inside this
	   thread's stack just below this frame, and a register the loop keeps its flag in,
	   which the handler sets there and the loop then sees. */
	sa.sa_handler = NULL;
	sa.sa_sigaction = on_async_setting_flag;
	sa.sa_flags = SA_SIGINFO;
	sigaction(SIGALRM, &sa, NULL);
	async_hits = 0;
	seen_sp = seen_flag = 0;
	volatile char marker;
	long left;
	CHECK_EQ(setitimer(ITIMER_REAL, &once, NULL), 0);
	unsigned long flag = spin_on_flag_register(limit, &left);
	CHECK(left > 0 && flag == 0x5a && async_hits == 1 && seen_flag == 0);
	CHECK(seen_sp <= (unsigned long)&marker && seen_sp > (unsigned long)&marker - 4096);

	signal(SIGALRM, SIG_DFL);
	signal(SIGPROF, SIG_DFL);
	signal(SIGUSR2, SIG_DFL);
}
