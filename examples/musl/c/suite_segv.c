/*
 * Checks of SIGSEGV delivered at the fault: an access against page rights or to an
 * address where nothing is mapped runs the program's handler with si_addr and si_code
 * (SEGV_ACCERR / SEGV_MAPERR). A handler that gives the page its rights and returns makes
 * the faulting access run again and succeed; one that siglongjmps leaves the fault behind
 * with the signal mask restored; SA_ONSTACK runs it on the alternate stack; SA_RESETHAND
 * resets the action. A blocked or default SIGSEGV stays fatal (the example's `-- segv`
 * run). Run at the end of the `memory` group.
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stddef.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "suite.h"

#define PAGE 4096

/* What the last handler saw, and what it does. */
static volatile int seen_sig, seen_code, seen_count;
static void *volatile seen_addr;
static volatile uintptr_t seen_local;
/* The handler's choice: give the page read-write rights (and return) or jump back. */
static volatile int fix_rights;
static void *volatile fix_page;
static sigjmp_buf back;

static void on_segv(int sig, siginfo_t *info, void *context)
{
	(void)context;
	volatile char here = 0;
	seen_sig = sig;
	seen_code = info->si_code;
	seen_addr = info->si_addr;
	seen_local = (uintptr_t)&here;
	seen_count++;
	if (fix_rights) {
		mprotect(fix_page, PAGE, PROT_READ | PROT_WRITE);
		return;
	}
	siglongjmp(back, 1);
}

static void catch_segv(int flags)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_sigaction = on_segv;
	sa.sa_flags = SA_SIGINFO | flags;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGSEGV, &sa, NULL);
}

static void reset_seen(void)
{
	seen_sig = seen_code = seen_count = 0;
	seen_addr = NULL;
}

/* Whether SIGSEGV is blocked now. */
static int segv_blocked(void)
{
	sigset_t now;
	sigprocmask(SIG_BLOCK, NULL, &now);
	return sigismember(&now, SIGSEGV);
}

void checks_segv(void)
{
	struct sigaction old;
	sigaction(SIGSEGV, NULL, &old);
	char *mapped = mmap(NULL, 2 * PAGE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK(mapped != MAP_FAILED);
	if (mapped == MAP_FAILED)
		return;
	/* Volatile: every access happens where the code says, none moved around a fault. */
	volatile char *m = mapped;

	/* A read of a PROT_NONE page: the handler gives it rights and returns, the read runs
	 * again and finds the page's zeros. */
	catch_segv(0);
	reset_seen();
	fix_rights = 1;
	fix_page = mapped;
	volatile char *p = m + 123;
	char got = *p;
	CHECK_EQ(got, 0);
	CHECK_EQ(seen_count, 1);
	CHECK_EQ(seen_sig, SIGSEGV);
	CHECK_EQ(seen_code, SEGV_ACCERR);
	CHECK(seen_addr == mapped + 123);
	CHECK(!segv_blocked());
	/* The retried access counts once: the page is read-write now. */
	p[1] = 7;
	CHECK_EQ(p[1], 7);
	CHECK_EQ(seen_count, 1);

	/* A write to a read-only page: same, and the write lands. */
	CHECK_EQ(mprotect(mapped + PAGE, PAGE, PROT_READ), 0);
	reset_seen();
	fix_page = mapped + PAGE;
	volatile int *w = (volatile int *)(m + PAGE + 64);
	*w = 0x5a5a;
	CHECK_EQ(*w, 0x5a5a);
	CHECK_EQ(seen_count, 1);
	CHECK_EQ(seen_code, SEGV_ACCERR);
	CHECK(seen_addr == mapped + PAGE + 64);

	/* siglongjmp out of the handler: the code after the fault never runs, the mask comes
	 * back (SIGSEGV unblocked), and the handler catches the next fault too. */
	CHECK_EQ(mprotect(mapped, 2 * PAGE, PROT_READ), 0);
	fix_rights = 0;
	for (volatile int round = 0; round < 3; round++) {
		reset_seen();
		volatile int reached = 0;
		if (sigsetjmp(back, 1) == 0) {
			m[round] = 1;
			reached = 1;
		}
		CHECK_EQ(reached, 0);
		CHECK_EQ(seen_count, 1);
		CHECK(seen_addr == mapped + round);
		CHECK(!segv_blocked());
	}
	CHECK_EQ(m[0], 0);

	/* Nothing mapped there: SEGV_MAPERR (page 0, and an address far above RAM). */
	static char *const nowhere[] = { (char *)16, (char *)0x7ff0deadb000 };
	for (volatile size_t i = 0; i < sizeof nowhere / sizeof *nowhere; i++) {
		reset_seen();
		if (sigsetjmp(back, 1) == 0)
			(void)*(volatile char *)nowhere[i];
		CHECK_EQ(seen_count, 1);
		CHECK_EQ(seen_code, SEGV_MAPERR);
		CHECK(seen_addr == nowhere[i]);
	}

	/* SA_ONSTACK: the handler runs on the alternate stack. */
	static char alt[16384] __attribute__((aligned(16)));
	stack_t ss = { .ss_sp = alt, .ss_size = sizeof alt, .ss_flags = 0 };
	CHECK_EQ(sigaltstack(&ss, NULL), 0);
	catch_segv(SA_ONSTACK);
	reset_seen();
	if (sigsetjmp(back, 1) == 0)
		m[5] = 1;
	CHECK_EQ(seen_count, 1);
	CHECK(seen_local > (uintptr_t)alt && seen_local < (uintptr_t)alt + sizeof alt);
	ss.ss_flags = SS_DISABLE;
	CHECK_EQ(sigaltstack(&ss, NULL), 0);

	/* SA_RESETHAND: the action is back to the default once the handler ran. */
	catch_segv(SA_RESETHAND);
	reset_seen();
	if (sigsetjmp(back, 1) == 0)
		m[6] = 1;
	CHECK_EQ(seen_count, 1);
	struct sigaction now;
	sigaction(SIGSEGV, NULL, &now);
	CHECK(now.sa_handler == SIG_DFL);

	sigaction(SIGSEGV, &old, NULL);
	CHECK_EQ(munmap(mapped, 2 * PAGE), 0);
}
