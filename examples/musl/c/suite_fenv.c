/*
 * The floating-point environment (fenv.h) and exp2l/expm1l, run at the end of the `math`
 * group. On x86_64 uk-musl replaces musl's fenv.s and drops its exp2l.s (both used the red
 * zone below the stack pointer, where interrupt and signal frames land in the image): these
 * checks hold for the C versions and, on aarch64, for musl's own. The stress loop at the
 * end sets and reads the rounding mode and the flags while a timer signal's handler runs
 * in between on the same stack: no value of the loop may get lost, and none of the flags
 * the handler raises may leak into the loop (its FPU state is put back after it, as after
 * Linux's sigreturn).
 */
#include <fenv.h>
#include <float.h>
#include <math.h>
#include <signal.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include "suite.h"

/* Whether long double arithmetic runs in hardware under the environment fenv.h sets: the
   x87 unit on x86_64, with a control and a status word of its own, which fenv.h sets and
   reads along with MXCSR. On aarch64 long double is IEEE quad computed in software (the
   image's compiler_builtins), which rounds to nearest and raises no flag; the checks of x87
   arithmetic hold trivially there, so that both architectures make the same checks. */
#if defined(__x86_64__)
#define X87 1
#else
#define X87 0
#endif

/* Relative precision expected of exp2l, expm1l and expl: the 80-bit format's (64-bit
   significand), or double's where musl 1.2.3 computes expl and expm1l of IEEE quad with exp
   and expm1 (aarch64). */
#if LDBL_MANT_DIG == 64
#define LD_REL 1e-18L
#else
#define LD_REL 1e-15L
#endif

static const int exceptions[] = { FE_INVALID, FE_DIVBYZERO, FE_OVERFLOW, FE_UNDERFLOW,
				  FE_INEXACT };

/* volatile: every operation below runs when the program gets there, in the mode then set. */
static volatile double zero = 0.0, one = 1.0, three = 3.0, huge = 1e300, tiny = 1e-300;
static volatile long double zero_l = 0.0L, one_l = 1.0L, three_l = 3.0L;

/* musl's functions, called through pointers: GCC expands a direct rint call inline as if
   the mode were round-to-nearest (it rounds |x| and copies the sign back). */
static double (*volatile rint_fn)(double) = rint;
static double (*volatile nearbyint_fn)(double) = nearbyint;
static long double (*volatile rintl_fn)(long double) = rintl;

static void checks_rounding(void)
{
	/* rint follows the mode and raises FE_INEXACT; nearbyint follows it and raises nothing;
	   rintl (the x87 unit on x86_64) and a division (the SSE unit) follow it too. */
	static const struct {
		int mode;
		double pos, neg;
	} want[] = {
		{ FE_TONEAREST, 2.0, -2.0 },
		{ FE_DOWNWARD, 2.0, -3.0 },
		{ FE_UPWARD, 3.0, -2.0 },
		{ FE_TOWARDZERO, 2.0, -2.0 },
	};
	volatile double x = 2.5, y = -2.5, r;
	volatile long double xl = 2.5L, rl;
	for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
		CHECK_EQ(fesetround(want[i].mode), 0);
		CHECK_EQ(fegetround(), want[i].mode);
		feclearexcept(FE_ALL_EXCEPT);
		r = nearbyint_fn(x);
		CHECK(r == want[i].pos && nearbyint_fn(y) == want[i].neg);
		CHECK_EQ(fetestexcept(FE_INEXACT), 0);
		r = rint_fn(x);
		CHECK(r == want[i].pos && rint_fn(y) == want[i].neg);
		CHECK_EQ(fetestexcept(FE_INEXACT), FE_INEXACT);
		rl = rintl_fn(xl);
		CHECK(!X87 || rl == (long double)want[i].pos);
	}
	fesetround(FE_UPWARD);
	volatile double up = one / three;
	volatile long double up_l = one_l / three_l;
	fesetround(FE_DOWNWARD);
	volatile double down = one / three;
	volatile long double down_l = one_l / three_l;
	fesetround(FE_TONEAREST);
	CHECK(up > down && (!X87 || up_l > down_l));
	/* Not a mode: refused, the mode stays. */
	CHECK(fesetround(FE_TONEAREST | FE_DOWNWARD | FE_UPWARD | 1) != 0);
	CHECK_EQ(fegetround(), FE_TONEAREST);
}

static void checks_exceptions(void)
{
	for (size_t i = 0; i < sizeof exceptions / sizeof exceptions[0]; i++) {
		int e = exceptions[i];
		CHECK_EQ(feclearexcept(FE_ALL_EXCEPT), 0);
		CHECK_EQ(feraiseexcept(e), 0);
		CHECK_EQ(fetestexcept(FE_ALL_EXCEPT), e);
		CHECK_EQ(feclearexcept(e), 0);
		CHECK_EQ(fetestexcept(FE_ALL_EXCEPT), 0);
	}
	/* Raised by arithmetic, in double (SSE on x86_64) and long double (x87), and cleared
	   one at a time. */
	volatile double r;
	volatile long double rl;
	feclearexcept(FE_ALL_EXCEPT);
	r = one / zero;
	CHECK_EQ(fetestexcept(FE_ALL_EXCEPT), FE_DIVBYZERO);
	r = zero / zero;
	CHECK_EQ(fetestexcept(FE_ALL_EXCEPT), FE_DIVBYZERO | FE_INVALID);
	r = huge * huge;
	CHECK_EQ(fetestexcept(FE_OVERFLOW | FE_INEXACT), FE_OVERFLOW | FE_INEXACT);
	r = tiny * tiny;
	CHECK_EQ(fetestexcept(FE_UNDERFLOW), FE_UNDERFLOW);
	feclearexcept(FE_DIVBYZERO);
	CHECK_EQ(fetestexcept(FE_ALL_EXCEPT), FE_INVALID | FE_OVERFLOW | FE_UNDERFLOW | FE_INEXACT);
	feclearexcept(FE_ALL_EXCEPT);
	if (X87)
		rl = one_l / zero_l;
	else
		feraiseexcept(FE_DIVBYZERO);
	CHECK_EQ(fetestexcept(FE_ALL_EXCEPT), FE_DIVBYZERO);
	if (X87)
		rl = one_l / three_l;
	else
		feraiseexcept(FE_INEXACT);
	CHECK_EQ(fetestexcept(FE_ALL_EXCEPT), FE_DIVBYZERO | FE_INEXACT);
	feclearexcept(FE_DIVBYZERO);
	CHECK_EQ(fetestexcept(FE_ALL_EXCEPT), FE_INEXACT);
	feclearexcept(FE_INEXACT);
	CHECK_EQ(fetestexcept(FE_ALL_EXCEPT), 0);
	(void)r;
	(void)rl;
	/* fegetexceptflag / fesetexceptflag: saved and put back one by one. */
	fexcept_t saved;
	feraiseexcept(FE_OVERFLOW | FE_INEXACT);
	CHECK_EQ(fegetexceptflag(&saved, FE_ALL_EXCEPT), 0);
	feclearexcept(FE_ALL_EXCEPT);
	CHECK_EQ(fesetexceptflag(&saved, FE_OVERFLOW), 0);
	CHECK_EQ(fetestexcept(FE_ALL_EXCEPT), FE_OVERFLOW);
	CHECK_EQ(fesetexceptflag(&saved, FE_ALL_EXCEPT), 0);
	CHECK_EQ(fetestexcept(FE_ALL_EXCEPT), FE_OVERFLOW | FE_INEXACT);
	feclearexcept(FE_ALL_EXCEPT);
}

static void checks_environments(void)
{
	/* fegetenv / fesetenv: the mode and the flags come back as saved. */
	fenv_t env;
	fesetround(FE_UPWARD);
	feclearexcept(FE_ALL_EXCEPT);
	feraiseexcept(FE_DIVBYZERO);
	CHECK_EQ(fegetenv(&env), 0);
	CHECK_EQ(fegetround(), FE_UPWARD);
	CHECK_EQ(fetestexcept(FE_ALL_EXCEPT), FE_DIVBYZERO);
	fesetround(FE_DOWNWARD);
	feclearexcept(FE_ALL_EXCEPT);
	feraiseexcept(FE_INVALID);
	CHECK_EQ(fesetenv(&env), 0);
	CHECK_EQ(fegetround(), FE_UPWARD);
	CHECK_EQ(fetestexcept(FE_ALL_EXCEPT), FE_DIVBYZERO);
	volatile long double xl = 2.5L, rl = rintl_fn(xl);
	CHECK(!X87 || rl == 3.0L);

	/* FE_DFL_ENV: round to nearest in both units, no flags. */
	feraiseexcept(FE_OVERFLOW | FE_INEXACT);
	CHECK_EQ(fesetenv(FE_DFL_ENV), 0);
	CHECK_EQ(fegetround(), FE_TONEAREST);
	CHECK_EQ(fetestexcept(FE_ALL_EXCEPT), 0);
	volatile double x = 2.5, r = rint_fn(x);
	rl = rintl_fn(xl);
	CHECK(r == 2.0 && rl == 2.0L);

	/* feholdexcept saves the environment and clears the flags; feupdateenv restores it and
	   raises again the flags raised meanwhile. */
	fesetround(FE_TOWARDZERO);
	feraiseexcept(FE_INEXACT);
	CHECK_EQ(feholdexcept(&env), 0);
	CHECK_EQ(fetestexcept(FE_ALL_EXCEPT), 0);
	CHECK_EQ(fegetround(), FE_TOWARDZERO);
	fesetround(FE_UPWARD);
	feraiseexcept(FE_UNDERFLOW);
	CHECK_EQ(feupdateenv(&env), 0);
	CHECK_EQ(fegetround(), FE_TOWARDZERO);
	CHECK_EQ(fetestexcept(FE_ALL_EXCEPT), FE_INEXACT | FE_UNDERFLOW);
	fesetenv(FE_DFL_ENV);
	CHECK_EQ(fegetround(), FE_TONEAREST);
}

static void checks_exp2l_expm1l(void)
{
	/* volatile: GCC would compute calls with constant arguments at compile time. */
	volatile long double zero_v = 0.0L, one_v = 1.0L, ten = 10.0L, half = 0.5L, big = 20000.0L;
	volatile long double lowest = 16400.0L, hundred = 100.0L, tiny_l = 1e-10L, nan_l = NAN;
	CHECK(exp2l(ten) == 1024.0L);
	CHECK(exp2l(-ten) == 1.0L / 1024);
	CHECK(exp2l(zero_v) == 1.0L && exp2l(-one_v) == 0.5L);
	CHECK(fabsl(exp2l(half) - 1.41421356237309504880L) < LD_REL * 1.5L);
	CHECK(fabsl(exp2l(half) * exp2l(-half) - 1.0L) < LD_REL);
	CHECK(isinf(exp2l(big)) && exp2l(-big) == 0.0L);
	CHECK(exp2l(-lowest) > 0.0L && exp2l(-lowest) < 1e-4930L);
	CHECK(isnan(exp2l(nan_l)));
	/* expm1l keeps the precision near 0 that expl(x) - 1 loses: 1e-10 + 1e-20 / 2 (and
	   terms below 1e-30). */
	CHECK(fabsl(expm1l(tiny_l) - (1e-10L + 5e-21L)) < 1e-10L * LD_REL);
	CHECK(expm1l(zero_v) == 0.0L);
	CHECK(fabsl(expm1l(one_v) - 1.71828182845904523536L) < LD_REL * 2);
	CHECK(fabsl(expm1l(-one_v) + 0.63212055882855767840L) < LD_REL);
	CHECK(expm1l(-hundred) == -1.0L);
	CHECK(isinf(expm1l(big)));
	/* expl (assembly on x86_64) calls exp2l. */
	CHECK(fabsl(expl(one_v) - 2.71828182845904523536L) < LD_REL * 3);
	CHECK(fabsl(expl(-ten) - 4.53999297624848515355e-5L) < 4.54e-5L * LD_REL);
}

static volatile sig_atomic_t stress_ticks;

/* Writes a frame of its own below the interrupted stack pointer and computes in double and
   long double (in whatever mode the interrupted loop left), raising FE_INEXACT. */
static void on_stress_tick(int sig)
{
	(void)sig;
	volatile unsigned char scratch[256];
	memset((void *)scratch, 0xa5, sizeof scratch);
	volatile double d = 1.0;
	volatile long double l = 3.0L;
	d = d / 3.0;
	l = l / 7.0L;
	stress_ticks++;
}

static long long now_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1000000000LL + t.tv_nsec;
}

/* 200,000 rounds of setting and reading the rounding mode and of raising, testing and
   clearing a flag, with a 1 ms timer signal landing between (and for as long as it takes
   to see a few of them, at most five seconds). A value lost below the stack pointer shows
   as a wrong read. */
static void checks_stress(void)
{
	struct sigaction sa, old_sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_stress_tick;
	sigaction(SIGALRM, &sa, &old_sa);
	struct itimerval every_ms = { { 0, 1000 }, { 0, 1000 } }, off = { { 0, 0 }, { 0, 0 } };
	feclearexcept(FE_ALL_EXCEPT);
	stress_ticks = 0;
	CHECK_EQ(setitimer(ITIMER_REAL, &every_ms, NULL), 0);
	long long deadline = now_ns() + 5000000000LL;
	long rounds = 0, bad_round = 0, bad_flag = 0;
	while (rounds < 200000 || (stress_ticks < 5 && now_ns() < deadline)) {
		fesetround(FE_UPWARD);
		if (fegetround() != FE_UPWARD)
			bad_round++;
		fesetround(FE_TONEAREST);
		if (fegetround() != FE_TONEAREST)
			bad_round++;
		feraiseexcept(FE_INEXACT);
		if (fetestexcept(FE_ALL_EXCEPT) != FE_INEXACT)
			bad_flag++;
		feclearexcept(FE_ALL_EXCEPT);
		if (fetestexcept(FE_ALL_EXCEPT) != 0)
			bad_flag++;
		rounds++;
	}
	setitimer(ITIMER_REAL, &off, NULL);
	sigaction(SIGALRM, &old_sa, NULL);
	CHECK(rounds >= 200000);
	CHECK_EQ(bad_round, 0);
	CHECK_EQ(bad_flag, 0);
	CHECK(stress_ticks >= 5);
	fesetenv(FE_DFL_ENV);
}

void checks_fenv(void)
{
	checks_rounding();
	checks_exceptions();
	checks_environments();
	checks_exp2l_expm1l();
	checks_stress();
	CHECK_EQ(fegetround(), FE_TONEAREST);
	CHECK_EQ(fetestexcept(FE_ALL_EXCEPT), 0);
}
