/*
 * uk-musl: the floating-point environment for x86_64, in place of musl's fenv.s.
 *
 * musl's fenv.s keeps the MXCSR value it is changing in the red zone (the 128 bytes below
 * %rsp) between its stmxcsr and its ldmxcsr. In a uk-rs image interrupts and page faults
 * (whose SIGSEGV handler runs on the same stack) push their frames right below %rsp, which
 * is why the image is compiled with -mno-red-zone, a flag an assembly file does not follow.
 * Today the CPU happens to spare those few bytes (it aligns %rsp down to 16 before pushing,
 * and %rsp is 8 mod 16 at a function's entry), but nothing should rest on that. Here every
 * value lives in an operand the compiler allocates in the function's own frame.
 *
 * Semantics are those of musl (and glibc) on x86_64: the exception flags are the union of
 * the x87 status word and MXCSR; the rounding mode is set in both units and read from MXCSR;
 * feraiseexcept sets the flags in MXCSR; fenv_t is the x87 environment as fnstenv stores it
 * (28 bytes) followed by MXCSR; FE_DFL_ENV is the state after reset (x87 control word 0x37f,
 * every register empty, MXCSR 0x1f80). musl's generic files build fesetround (checking the
 * mode, then calling __fesetround), fegetexceptflag, fesetexceptflag, feholdexcept and
 * feupdateenv on top of these.
 */
#include <fenv.h>
#include <features.h>

/* Every exception flag, the denormal-operand one included (bit 1, as in FE_ALL_EXCEPT). */
#define FLAGS 0x3f
/* The rounding-control field of the x87 control word (FE_* values are placed there). */
#define X87_ROUNDING 0xc00
/* MXCSR's rounding-control field: the same two bits, three places higher. */
#define SSE_ROUNDING_SHIFT 3
#define SSE_ROUNDING (X87_ROUNDING << SSE_ROUNDING_SHIFT)

static unsigned short x87_status(void)
{
	unsigned short sw;
	__asm__ volatile("fnstsw %0" : "=a"(sw));
	return sw;
}

static unsigned short x87_control(void)
{
	unsigned short cw;
	__asm__ volatile("fnstcw %0" : "=m"(cw));
	return cw;
}

static void set_x87_control(unsigned short cw)
{
	__asm__ volatile("fldcw %0" : : "m"(cw));
}

static unsigned int mxcsr(void)
{
	unsigned int csr;
	__asm__ volatile("stmxcsr %0" : "=m"(csr));
	return csr;
}

static void set_mxcsr(unsigned int csr)
{
	__asm__ volatile("ldmxcsr %0" : : "m"(csr));
}

/* The x87 part of fenv_t: fnstenv stores these 28 bytes (and then masks every x87
 * exception, which the callers undo); fldenv loads them. */
static void store_x87_env(fenv_t *env)
{
	__asm__ volatile("fnstenv %0" : "=m"(*env));
}

static void load_x87_env(const fenv_t *env)
{
	__asm__ volatile("fldenv %0" : : "m"(*env));
}

int feclearexcept(int mask)
{
	mask &= FLAGS;
	if (x87_status() & mask) {
		/* Clear only the named flags of the x87 status word: through its environment,
		 * the one way to write it (fnclex would clear them all). */
		fenv_t env;
		store_x87_env(&env);
		env.__status_word &= ~mask;
		/* No unmasked exception left pending: clear the error summary and busy bits too,
		 * as the hardware would, so that the next x87 instruction does not trap. */
		if (!(env.__status_word & ~env.__control_word & FLAGS))
			env.__status_word &= ~0x8080;
		load_x87_env(&env);
	}
	unsigned int csr = mxcsr();
	if (csr & mask)
		set_mxcsr(csr & ~mask);
	return 0;
}

int feraiseexcept(int mask)
{
	set_mxcsr(mxcsr() | (mask & FLAGS));
	return 0;
}

int fetestexcept(int mask)
{
	return (x87_status() | mxcsr()) & mask & FLAGS;
}

int fegetround(void)
{
	return (mxcsr() >> SSE_ROUNDING_SHIFT) & X87_ROUNDING;
}

/* fesetround has checked that r is one of the four modes. */
hidden int __fesetround(int r)
{
	set_x87_control((x87_control() & ~X87_ROUNDING) | r);
	set_mxcsr((mxcsr() & ~SSE_ROUNDING) | ((unsigned int)r << SSE_ROUNDING_SHIFT));
	return 0;
}

int fegetenv(fenv_t *envp)
{
	store_x87_env(envp);
	/* fnstenv masked every x87 exception: put back the control word it stored. */
	set_x87_control(envp->__control_word);
	envp->__mxcsr = mxcsr();
	return 0;
}

int fesetenv(const fenv_t *envp)
{
	fenv_t dfl;
	if (envp == FE_DFL_ENV) {
		/* The state after reset: every x87 exception masked, round to nearest, 64-bit
		 * precision, no flags, every register empty; the same in MXCSR. */
		dfl = (fenv_t){ .__control_word = 0x37f, .__tags = 0xffff, .__mxcsr = 0x1f80 };
		envp = &dfl;
	}
	load_x87_env(envp);
	set_mxcsr(envp->__mxcsr);
	return 0;
}
