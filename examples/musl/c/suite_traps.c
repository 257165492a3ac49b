/*
 * Checks of the signals CPU faults other than page faults raise, delivered at the fault
 * as Linux delivers them: SIGILL for an undefined instruction (x86 ud2, arm64 udf),
 * SIGTRAP for a breakpoint (x86 int3, arm64 brk), SIGFPE for an integer division by zero
 * (x86; arm64's division gives 0 and raises nothing), SIGSEGV with SI_KERNEL for an x86
 * general-protection fault (a non-canonical address), SIGBUS for a misaligned
 * load-acquire on arm64. A handler sees si_code, si_addr and the faulting program counter
 * in its context, moves the program counter past the instruction and returns: the code
 * goes on with its registers as they were. With the default action, an ignored or a
 * blocked signal, the fault kills the process: its parent's waitpid sees WIFSIGNALED
 * with the fault's signal, as on Linux; so does musl's a_crash() (a smashed stack
 * reported). Run at the end of the `process` group.
 */
#define _GNU_SOURCE
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/wait.h>
#include <ucontext.h>
#include <unistd.h>

#include "suite.h"

#ifndef TRAP_BRKPT
#define TRAP_BRKPT 1
#endif

/* What the last handler saw. */
static volatile int seen_sig, seen_code, seen_count;
static void *volatile seen_addr;
static volatile uintptr_t seen_pc;
/* Bytes the handler moves the program counter by (0: leave it, -1: siglongjmp). */
static volatile int skip;
static sigjmp_buf back;

static uintptr_t *pc_of(void *context)
{
	ucontext_t *uc = context;
#if defined(__x86_64__)
	return (uintptr_t *)&uc->uc_mcontext.gregs[REG_RIP];
#else
	return (uintptr_t *)&uc->uc_mcontext.pc;
#endif
}

static void on_trap(int sig, siginfo_t *info, void *context)
{
	seen_sig = sig;
	seen_code = info->si_code;
	seen_addr = info->si_addr;
	seen_pc = *pc_of(context);
	seen_count++;
	if (skip < 0)
		siglongjmp(back, 1);
	*pc_of(context) += skip;
}

static void catch(int sig, int moved_by)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_sigaction = on_trap;
	sa.sa_flags = SA_SIGINFO;
	sigemptyset(&sa.sa_mask);
	sigaction(sig, &sa, NULL);
	skip = moved_by;
	seen_sig = seen_code = seen_count = 0;
	seen_addr = NULL;
	seen_pc = 0;
}

static void leave_to_default(int sig)
{
	signal(sig, SIG_DFL);
}

/* Whether `sig` is blocked now. */
static int blocked(int sig)
{
	sigset_t now;
	sigprocmask(SIG_BLOCK, NULL, &now);
	return sigismember(&now, sig);
}

/* Runs an undefined instruction between two register writes; returns what a register
 * set before it holds after it, and the instruction's address in `*at`. */
static uint64_t undefined_instruction(uintptr_t *at)
{
	uint64_t kept;
	uintptr_t where;
#if defined(__x86_64__)
	__asm__ volatile("movabs $0x1234567890abcdef, %%r11\n\t"
			 "lea 1f(%%rip), %1\n\t"
			 "1: ud2\n\t"
			 "mov %%r11, %0"
			 : "=r"(kept), "=&r"(where)
			 :
			 : "r11", "memory");
#else
	__asm__ volatile("movz x9, #0xcdef\n\t"
			 "movk x9, #0x90ab, lsl #16\n\t"
			 "movk x9, #0x5678, lsl #32\n\t"
			 "movk x9, #0x1234, lsl #48\n\t"
			 "adr %1, 1f\n\t"
			 "1: udf #0\n\t"
			 "mov %0, x9"
			 : "=r"(kept), "=&r"(where)
			 :
			 : "x9", "memory");
#endif
	*at = where;
	return kept;
}

/* Runs a breakpoint instruction; returns its address. */
static uintptr_t breakpoint(void)
{
	uintptr_t where;
#if defined(__x86_64__)
	__asm__ volatile("lea 1f(%%rip), %0\n\t"
			 "1: int3"
			 : "=r"(where)
			 :
			 : "memory");
#else
	/* What __builtin_trap() emits. */
	__asm__ volatile("adr %0, 1f\n\t"
			 "1: brk #0x3e8"
			 : "=r"(where)
			 :
			 : "memory");
#endif
	return where;
}

/* A child that runs an undefined instruction with `arg`'s disposition of SIGILL:
 * 0 default, 1 ignored, 2 a handler but the signal blocked. */
static int undefined_in_child(void *arg)
{
	int how = (int)(long)arg;
	if (how == 1) {
		signal(SIGILL, SIG_IGN);
	} else if (how == 2) {
		catch(SIGILL, 4);
		sigset_t set;
		sigemptyset(&set);
		sigaddset(&set, SIGILL);
		sigprocmask(SIG_BLOCK, &set, NULL);
	} else {
		leave_to_default(SIGILL);
	}
	uintptr_t at;
	undefined_instruction(&at);
	return 99; /* not reached: the fault ends the process */
}

/* A child that reads address 8 with SIGSEGV at its default. */
static int null_read_in_child(void *arg)
{
	(void)arg;
	leave_to_default(SIGSEGV);
	volatile char *const volatile eight = (volatile char *)8;
	return *eight;
}

/* A child that reaches a breakpoint with SIGTRAP at its default. */
static int breakpoint_in_child(void *arg)
{
	(void)arg;
	leave_to_default(SIGTRAP);
	breakpoint();
	return 99;
}

/* musl's stack-smashing report, which ends the program through a_crash(). */
void __stack_chk_fail(void);

/* A child that reports a smashed stack: musl's a_crash() must end it (on x86_64 musl's own
 * a_crash is `hlt`, which in ring 0 only waits for the next interrupt and returns). */
static int smashed_stack_in_child(void *arg)
{
	(void)arg;
	leave_to_default(SIGSEGV);
	__stack_chk_fail();
	return 99;
}

static char child_stack[16384] __attribute__((aligned(16)));

/* Runs `fn(arg)` in a child process and returns its wait status. */
static int status_of_child(int (*fn)(void *), void *arg)
{
	pid_t pid = clone(fn, child_stack + sizeof child_stack,
			  CLONE_VM | CLONE_FS | CLONE_FILES | SIGCHLD, arg);
	CHECK(pid > 1);
	int status = -1;
	CHECK_EQ(waitpid(pid, &status, 0), pid);
	return status;
}

void checks_traps(void)
{
	struct sigaction old_ill, old_trap, old_fpe, old_segv, old_bus;
	sigaction(SIGILL, NULL, &old_ill);
	sigaction(SIGTRAP, NULL, &old_trap);
	sigaction(SIGFPE, NULL, &old_fpe);
	sigaction(SIGSEGV, NULL, &old_segv);
	sigaction(SIGBUS, NULL, &old_bus);

	/* SIGILL: the handler moves past the instruction (ud2 is 2 bytes, udf 4); the code
	 * goes on with the register it set before. */
#if defined(__x86_64__)
	catch(SIGILL, 2);
#else
	catch(SIGILL, 4);
#endif
	uintptr_t at = 0;
	uint64_t kept = undefined_instruction(&at);
	CHECK_EQ(seen_count, 1);
	CHECK_EQ(seen_sig, SIGILL);
	CHECK_EQ(seen_code, ILL_ILLOPC);
	CHECK(seen_addr == (void *)at);
	CHECK(seen_pc == at);
	CHECK(kept == 0x1234567890abcdefULL);
	CHECK(!blocked(SIGILL));
	/* Twice more: each fault is a delivery of its own. */
	undefined_instruction(&at);
	undefined_instruction(&at);
	CHECK_EQ(seen_count, 3);

	/* SIGTRAP: x86's int3 reports the instruction after it, as a plain kernel signal;
	 * arm64's brk its own address with TRAP_BRKPT, and the handler moves past it. */
#if defined(__x86_64__)
	catch(SIGTRAP, 0);
	uintptr_t bp = breakpoint();
	CHECK_EQ(seen_count, 1);
	CHECK_EQ(seen_sig, SIGTRAP);
	CHECK_EQ(seen_code, SI_KERNEL);
	CHECK(seen_pc == bp + 1);
#else
	catch(SIGTRAP, 4);
	uintptr_t bp = breakpoint();
	CHECK_EQ(seen_count, 1);
	CHECK_EQ(seen_sig, SIGTRAP);
	CHECK_EQ(seen_code, TRAP_BRKPT);
	CHECK(seen_addr == (void *)bp);
	CHECK(seen_pc == bp);
#endif

#if defined(__x86_64__)
	/* SIGFPE: an integer division by zero, and INT64_MIN / -1 (the quotient does not
	 * fit); the handler jumps back. */
	catch(SIGFPE, -1);
	volatile int64_t divisor = 0, dividend = 7;
	volatile int64_t quotient = 1;
	if (sigsetjmp(back, 1) == 0)
		quotient = dividend / divisor;
	CHECK_EQ(seen_count, 1);
	CHECK_EQ(seen_sig, SIGFPE);
	CHECK_EQ(seen_code, FPE_INTDIV);
	CHECK(seen_addr != NULL && seen_addr == (void *)seen_pc);
	CHECK_EQ(quotient, 1);
	CHECK(!blocked(SIGFPE));
	divisor = -1;
	dividend = INT64_MIN;
	if (sigsetjmp(back, 1) == 0)
		quotient = dividend / divisor;
	CHECK_EQ(seen_count, 2);
	CHECK_EQ(seen_code, FPE_INTDIV);
	CHECK_EQ(quotient, 1);

	/* A non-canonical address is a general-protection fault: SIGSEGV from the kernel,
	 * with no address (the CPU reports none). */
	catch(SIGSEGV, -1);
	if (sigsetjmp(back, 1) == 0)
		(void)*(volatile char *)0x8000000000001000ULL;
	CHECK_EQ(seen_count, 1);
	CHECK_EQ(seen_sig, SIGSEGV);
	CHECK_EQ(seen_code, SI_KERNEL);
	CHECK(seen_addr == NULL);
#else
	/* arm64's division by zero gives 0 and raises nothing. */
	catch(SIGFPE, -1);
	int64_t q;
	int64_t zero = 0, seven = 7;
	__asm__ volatile("sdiv %0, %1, %2" : "=r"(q) : "r"(seven), "r"(zero));
	CHECK_EQ(q, 0);
	CHECK_EQ(seen_count, 0);

	/* SIGBUS: a load-acquire needs its natural alignment even where plain loads do not
	 * (with FEAT_LSE2, inside one aligned 16 bytes it need not: this one crosses them). */
	static uint64_t words[4] __attribute__((aligned(16)));
	char *misaligned = (char *)words + 12;
	catch(SIGBUS, -1);
	if (sigsetjmp(back, 1) == 0) {
		uint64_t v;
		__asm__ volatile("ldar %0, [%1]" : "=r"(v) : "r"(misaligned) : "memory");
	}
	CHECK_EQ(seen_count, 1);
	CHECK_EQ(seen_sig, SIGBUS);
	CHECK_EQ(seen_code, BUS_ADRALN);
	CHECK(seen_addr == misaligned);
	/* A plain misaligned load is fine. */
	CHECK_EQ(*(volatile uint32_t *)misaligned, 0);
	CHECK_EQ(seen_count, 1);
	/* A misaligned store-release faults before it writes anything. */
	if (sigsetjmp(back, 1) == 0)
		__asm__ volatile("stlr %0, [%1]" : : "r"(~0ULL), "r"(misaligned) : "memory");
	CHECK_EQ(seen_count, 2);
	CHECK_EQ(seen_code, BUS_ADRALN);
	CHECK(seen_addr == misaligned);
	CHECK(words[1] == 0 && words[2] == 0);
#endif

	/* Default, ignored and blocked: the fault kills the process, and its parent sees
	 * the fault's signal. */
	int status = status_of_child(undefined_in_child, (void *)0);
	CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGILL);
	status = status_of_child(undefined_in_child, (void *)1);
	CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGILL);
	seen_count = 0;
	status = status_of_child(undefined_in_child, (void *)2);
	CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGILL);
	CHECK_EQ(seen_count, 0);
	status = status_of_child(null_read_in_child, NULL);
	CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGSEGV);
	status = status_of_child(breakpoint_in_child, NULL);
	CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGTRAP);
	/* musl's a_crash() ends the process as on Linux: SIGSEGV. */
	status = status_of_child(smashed_stack_in_child, NULL);
	CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGSEGV);

	sigaction(SIGILL, &old_ill, NULL);
	sigaction(SIGTRAP, &old_trap, NULL);
	sigaction(SIGFPE, &old_fpe, NULL);
	sigaction(SIGSEGV, &old_segv, NULL);
	sigaction(SIGBUS, &old_bus, NULL);
}
