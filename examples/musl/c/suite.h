/*
 * A small functional test suite of the C library on uk-rs, in the manner of musl's
 * libc-test (which this machine cannot fetch): each group exercises one area of the
 * library through the system calls it makes, and every check that fails prints its file,
 * line and expression.
 */
#ifndef SUITE_H
#define SUITE_H

/* Records one check; prints `libc: FAIL file:line: what` when `ok` is false. */
void suite_check(int ok, const char *what, const char *file, int line);
/* Records a comparison of two integers; prints both values when they differ. */
void suite_check_eq(long long got, long long want, const char *what, const char *file, int line);

#define CHECK(cond) suite_check(!!(cond), #cond, __FILE__, __LINE__)
#define CHECK_EQ(got, want) suite_check_eq((long long)(got), (long long)(want), #got " == " #want, \
					   __FILE__, __LINE__)

/* The groups (suite_*.c); each returns after its checks. */
void group_string(void);
void group_stdio(void);
void group_stdlib(void);
void group_math(void);
void group_time(void);
void group_files(void);
void group_pipes(void);
void group_threads(void);
void group_sync(void);
void group_signals(void);
void group_memory(void);
void group_process(void);
/* Run only when named (`-- suite preemption`), in an image booted with sched=preemptive. */
void group_preemption(void);

/* Checks of the floating-point environment (fenv.h) and of exp2l/expm1l (suite_fenv.c), run
 * at the end of the `math` group. */
void checks_fenv(void);

/* Checks of getrusage's counted fields and of timer_delete (suite_usage.c), run at the end
 * of the `time` and `signals` groups. */
void checks_rusage(void);
void checks_timer_delete(void);
/* Checks of signalfd (suite_usage.c), run at the end of the `signals` group. */
void checks_signalfd(void);
/* Checks of signals reaching a thread that computes without calls, at the timer interrupt
 * (suite_async.c), run at the end of the `signals` group. */
void checks_async_signals(void);
/* Checks of robust and priority-inheritance mutexes (suite_mutex.c), run at the end of the
 * `sync` group. */
void checks_mutex(void);
/* Checks of FUTEX_WAKE_OP and of futex waits under SA_RESTART handlers (suite_futex.c), run
 * at the end of the `sync` group. */
void checks_futex(void);

/* Checks of mmap of files, named semaphores and shm_open (suite_mmap.c), run at the end of
 * the `memory` group. */
void checks_mmap_files(void);
/* Checks of page rights: PROT_NONE, PROT_READ, mprotect, EFAULT from system calls, thread
 * stack guards (suite_rights.c), run at the end of the `memory` group. */
void checks_page_rights(void);
/* Checks of SIGSEGV delivered at the fault: si_addr, si_code, returning after mprotect,
 * siglongjmp, SA_ONSTACK, SA_RESETHAND (suite_segv.c), run at the end of the `memory`
 * group. */
void checks_segv(void);

/* Checks of child processes: zombies, wait4/waitpid/waitid, SIGCHLD (suite_wait.c), run at
 * the end of the `process` group. */
void checks_children(void);

/* Checks of /proc (suite_proc.c), run at the end of the `process` group. */
void checks_proc(void);

/* Checks of SIGILL, SIGTRAP, SIGFPE, SIGBUS and general-protection SIGSEGV delivered at the
 * fault, and of faults that kill their process (suite_traps.c), run at the end of the
 * `process` group. */
void checks_traps(void);

/* Runs every group (or only the one named `only`); prints one line per group and a closing
 * line; returns the failures. */
int run_suite(const char *only);

#endif
