/*
 * An ordinary C program, built against musl: nothing in it knows about uk-rs. Every
 * service it uses reaches uk-rs's syscall handlers through musl's system calls, which the
 * image's musl makes as direct function calls.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <time.h>
#include <sched.h>
#include <unistd.h>

#include "suite.h"

/* Thread-local: one initialised (.tdata), one zeroed (.tbss). */
static __thread int per_thread = 1;
static __thread long calls;

struct job {
	int input;
	int output;
	int tls_seen;
	long calls_seen;
};

static void *worker(void *arg)
{
	struct job *job = arg;
	/* A new thread starts with the initial values, whatever main did to its own. */
	job->tls_seen = per_thread;
	job->calls_seen = calls;
	per_thread = 99;
	calls += 5;
	job->output = job->input * 2;
	return job;
}

static volatile int detached_ran;

static void *detached(void *arg)
{
	(void)arg;
	detached_ran++;
	return NULL;
}

static volatile sig_atomic_t caught;

static void on_signal(int sig)
{
	caught = sig;
}

static sem_t never_posted;
static volatile sig_atomic_t sleeper_caught;

static void on_sleeper_signal(int sig)
{
	sleeper_caught = sig;
}

/* Waits on a semaphore nobody posts; returns the errno that ended the wait. */
static void *sleeper(void *arg)
{
	(void)arg;
	int r = sem_wait(&never_posted);
	return (void *)(long)(r == -1 ? errno : 0);
}

/* Sends the process SIGUSR1, which this thread (like its creator) blocks. */
static void *kill_process(void *arg)
{
	(void)arg;
	kill(getpid(), SIGUSR1);
	return NULL;
}

/* Sends SIGUSR2 to the thread `arg` points at. */
static void *signal_thread(void *arg)
{
	pthread_kill(*(pthread_t *)arg, SIGUSR2);
	return NULL;
}

/* Sleeps ten seconds; returns what sleep() says was left. */
static void *long_sleeper(void *arg)
{
	(void)arg;
	return (void *)(long)sleep(10);
}

/* getppid through Linux's own trap instruction, bypassing musl. */
static long trapped_getppid(void)
{
#if defined(__x86_64__)
	long ret;
	__asm__ __volatile__("syscall" : "=a"(ret) : "a"((long)SYS_getppid) : "rcx", "r11", "memory");
	return ret;
#elif defined(__aarch64__)
	register long x8 __asm__("x8") = SYS_getppid;
	register long x0 __asm__("x0");
	__asm__ __volatile__("svc 0" : "=r"(x0) : "r"(x8) : "memory", "cc");
	return x0;
#else
#error "x86_64 or aarch64 only"
#endif
}

static long musl_getppid(void)
{
	return getppid();
}

#define COST_CALLS 10000

/* Nanoseconds per call of `call`, over COST_CALLS calls. */
static long ns_per_call(long (*call)(void))
{
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (int i = 0; i < COST_CALLS; i++)
		call();
	clock_gettime(CLOCK_MONOTONIC, &t1);
	return ((t1.tv_sec - t0.tv_sec) * 1000000000L + t1.tv_nsec - t0.tv_nsec) / COST_CALLS;
}

/* `-- stack-overflow`: recursion without end on a thread's stack reaches musl's guard page. */
static unsigned long recurse(unsigned long depth)
{
	volatile char frame[512];
	frame[0] = (char)depth;
	if (depth == ~0UL) /* never: the stack ends long before */
		return 0;
	return recurse(depth + 1) + frame[0];
}

static void *overflow(void *arg)
{
	(void)arg;
	printf("musl: recursing on a thread's stack...\n");
	fflush(stdout);
	return (void *)recurse(0);
}

int main(int argc, char **argv)
{
	/* `-- suite`: the C library's functional test suite (suite*.c) instead of the tour. */
	if (argc > 1 && !strcmp(argv[1], "suite"))
		return run_suite(argc > 2 ? argv[2] : NULL) ? 1 : 0;
	printf("musl: hello from C, argc %d, argv[0] %s, argv[1] %s\n", argc, argv[0],
	       argc > 1 ? argv[1] : "(none)");

	struct utsname u;
	uname(&u);
	printf("musl: uname: %s %s, pid %d\n", u.sysname, u.machine, (int)getpid());

	/* malloc: small blocks from brk, a large one from mmap. */
	size_t big = 1 << 20;
	char *p = malloc(big);
	char *q = malloc(100);
	if (!p || !q)
		return 10;
	memset(p, 'x', big);
	snprintf(q, 100, "%zu bytes", big);
	printf("musl: malloc: %s written, last byte %c\n", q, p[big - 1]);
	free(p);
	free(q);

	/* stdio on the image's ramfs, then stat, a listing and errno. */
	FILE *f = fopen("/notes.txt", "w");
	if (!f)
		return 11;
	fprintf(f, "line %d\nline %d\n", 1, 2);
	fclose(f);
	char line[64] = "";
	f = fopen("/notes.txt", "r");
	if (!f || !fgets(line, sizeof line, f) || !fgets(line, sizeof line, f))
		return 12;
	fclose(f);
	struct stat st;
	if (stat("/notes.txt", &st))
		return 13;
	printf("musl: /notes.txt: %lld bytes, second line: %s", (long long)st.st_size, line);
	mkdir("/dir", 0755);
	close(open("/dir/a", O_CREAT | O_WRONLY, 0644));
	DIR *d = opendir("/");
	int entries = 0;
	struct dirent *e;
	while (d && (e = readdir(d)))
		if (e->d_name[0] != '.')
			entries++;
	if (d)
		closedir(d);
	printf("musl: / holds %d entries\n", entries);
	if (open("/missing", O_RDONLY) < 0)
		printf("musl: open(/missing): %s\n", strerror(errno));

	/* A thread: clone, its own TLS, futex-based join. */
	struct job job = { 21, 0, 0, 0 };
	pthread_t t;
	per_thread = 7;
	calls = 1;
	void *ret;
	if (pthread_create(&t, NULL, worker, &job) || pthread_join(t, &ret) || ret != &job)
		return 14;
	printf("musl: thread doubled %d to %d; its __thread values started at %d and %ld, "
	       "main's are still %d and %ld\n",
	       job.input, job.output, job.tls_seen, job.calls_seen, per_thread, calls);

	/* Time and randomness. */
	struct timespec a, b, nap = { 0, 2000000 };
	clock_gettime(CLOCK_MONOTONIC, &a);
	nanosleep(&nap, NULL);
	clock_gettime(CLOCK_MONOTONIC, &b);
	long slept = (b.tv_sec - a.tv_sec) * 1000000 + (b.tv_nsec - a.tv_nsec) / 1000;
	unsigned char bytes[16];
	ssize_t got = getrandom(bytes, sizeof bytes, 0);
	printf("musl: slept %s 2 ms, getrandom gave %zd bytes\n", slept >= 2000 ? "at least" : "LESS THAN",
	       got);

	/* Signals: a handler runs before raise returns; a blocked one waits for the unblock. */
	signal(SIGUSR1, on_signal);
	raise(SIGUSR1);
	int first = caught;
	caught = 0;
	sigset_t set, pending;
	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	sigprocmask(SIG_BLOCK, &set, NULL);
	raise(SIGUSR1);
	sigpending(&pending);
	int waited = caught == 0 && sigismember(&pending, SIGUSR1);
	sigprocmask(SIG_UNBLOCK, &set, NULL);
	printf("musl: raise(SIGUSR1) ran the handler (%d); blocked, it waited (%s) and ran at the "
	       "unblock (%d)\n", first, waited ? "yes" : "no", caught);

	/* pthread_kill ends another thread's wait: its handler runs there, sem_wait fails
	 * with EINTR (the handler was installed without SA_RESTART). */
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_sleeper_signal;
	sigaction(SIGUSR2, &sa, NULL);
	sem_init(&never_posted, 0, 0);
	pthread_t s;
	void *why;
	if (pthread_create(&s, NULL, sleeper, NULL))
		return 15;
	for (int i = 0; i < 5; i++)
		sched_yield();
	pthread_kill(s, SIGUSR2);
	pthread_join(s, &why);
	printf("musl: pthread_kill ended a sem_wait: handler saw %d, sem_wait: %s\n",
	       sleeper_caught, strerror((int)(long)why));

	/* sigwait: another thread sends the process a signal every thread blocks, and sigwait
	 * takes it without a handler. sigsuspend: waits with SIGUSR2 let through until its
	 * handler has run on this thread, then fails with EINTR. */
	{
		sigset_t usr1, usr2, none;
		sigemptyset(&usr1);
		sigaddset(&usr1, SIGUSR1);
		sigemptyset(&usr2);
		sigaddset(&usr2, SIGUSR2);
		sigemptyset(&none);
		pthread_sigmask(SIG_BLOCK, &usr1, NULL);
		pthread_t k, m;
		if (pthread_create(&k, NULL, kill_process, NULL))
			return 18;
		int got = 0;
		int w = sigwait(&usr1, &got);
		pthread_join(k, NULL);
		pthread_sigmask(SIG_BLOCK, &usr2, NULL);
		sleeper_caught = 0;
		pthread_t self = pthread_self();
		if (pthread_create(&m, NULL, signal_thread, &self))
			return 19;
		int r = sigsuspend(&none);
		int e = errno;
		pthread_join(m, NULL);
		printf("musl: sigwait returned %d with signal %d; sigsuspend returned %d (%s) after "
		       "the handler saw %d\n", w, got, r, strerror(e), sleeper_caught);

		/* A signal ends another thread's sleep after running its handler there. */
		pthread_sigmask(SIG_UNBLOCK, &usr2, NULL);
		sleeper_caught = 0;
		pthread_t z;
		void *left;
		if (pthread_create(&z, NULL, long_sleeper, NULL))
			return 20;
		for (int i = 0; i < 3; i++)
			sched_yield();
		pthread_kill(z, SIGUSR2);
		pthread_join(z, &left);
		printf("musl: sleep(10) was cut short: handler saw %d, %ld s left\n", sleeper_caught,
		       (long)left);
	}

	/* Detached threads: each one unmaps its own stack and exits (musl's __unmapself); the
	 * memory is usable again afterwards. */
	{
		pthread_attr_t attr;
		pthread_attr_init(&attr);
		pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
		for (int i = 0; i < 3; i++) {
			pthread_t d;
			if (pthread_create(&d, &attr, detached, NULL))
				return 16;
			for (int j = 0; j < 3; j++)
				sched_yield();
		}
		char *after = malloc(200000);
		if (!after)
			return 17;
		memset(after, 1, 200000);
		free(after);
		printf("musl: detached threads ran %d times\n", detached_ran);
	}
	if (argc > 1 && !strcmp(argv[1], "abort"))
		abort();
	/* `-- segv`: a load from a PROT_NONE page; SIGSEGV's default action kills the process
	 * (the run ends with 128 + 11). */
	if (argc > 1 && !strcmp(argv[1], "segv")) {
		volatile char *none = mmap(NULL, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		printf("musl: reading a PROT_NONE page at %p...\n", (void *)none);
		fflush(stdout);
		printf("musl: read %d: not protected\n", none[100]);
		return 18;
	}
	if (argc > 1 && !strcmp(argv[1], "stack-overflow")) {
		pthread_t deep;
		if (!pthread_create(&deep, NULL, overflow, NULL))
			pthread_join(deep, NULL);
		printf("musl: the recursion returned: no guard page\n");
		return 19;
	}
	/* `-- costs`: what a system call costs through musl (a direct call) and through the
	 * trap instruction, for information (under emulation the numbers are the emulator's). */
	if (argc > 1 && !strcmp(argv[1], "costs")) {
		long direct = ns_per_call(musl_getppid), trapped = ns_per_call(trapped_getppid);
		printf("musl: getppid: %ld ns through musl, %ld ns through the trap, %d calls each\n",
		       direct, trapped, COST_CALLS);
	}
	return 3;
}
