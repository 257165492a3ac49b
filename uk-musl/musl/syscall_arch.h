/*
 * uk-rs replacement for musl's arch/<arch>/syscall_arch.h (x86_64 and aarch64 alike).
 *
 * musl reaches the kernel through the seven inline functions below. On Linux they hold a
 * `syscall` or `svc #0` instruction; in a uk-rs image the "kernel" is linked into the same
 * binary, so each becomes a plain call of uk-syscall's C entry point `uk_syscall6`, which
 * runs the handler registered for the number and returns Linux's raw result (-4095..-1 is
 * -errno). No trap, no register frame, no mode switch: the call costs what any function
 * call costs, as in Unikraft 0.11's lib-musl. uk-musl replaces the assembly that would
 * still trap in the paths a program normally takes (the cancellation-point stub, __clone,
 * x86_64's __set_thread_area, a detached thread's __unmapself); what is left (vfork, the
 * signal-return trampoline) reaches the same handlers through the binary entry.
 *
 * There is no vDSO in the image, so VDSO_USEFUL is left undefined: clock_gettime is a
 * direct call too.
 */

#define __SYSCALL_LL_E(x) (x)
#define __SYSCALL_LL_O(x) (x)

long uk_syscall6(long, long, long, long, long, long, long);

static __inline long __syscall0(long n)
{
	return uk_syscall6(n, 0, 0, 0, 0, 0, 0);
}

static __inline long __syscall1(long n, long a)
{
	return uk_syscall6(n, a, 0, 0, 0, 0, 0);
}

static __inline long __syscall2(long n, long a, long b)
{
	return uk_syscall6(n, a, b, 0, 0, 0, 0);
}

static __inline long __syscall3(long n, long a, long b, long c)
{
	return uk_syscall6(n, a, b, c, 0, 0, 0);
}

static __inline long __syscall4(long n, long a, long b, long c, long d)
{
	return uk_syscall6(n, a, b, c, d, 0, 0);
}

static __inline long __syscall5(long n, long a, long b, long c, long d, long e)
{
	return uk_syscall6(n, a, b, c, d, e, 0);
}

static __inline long __syscall6(long n, long a, long b, long c, long d, long e, long f)
{
	return uk_syscall6(n, a, b, c, d, e, f);
}

#define IPC_64 0
