/*
 * The suite's runner and its library-only groups: strings, formatted I/O to memory,
 * conversions, sorting, the environment, setjmp and floating point (which also checks
 * that the FPU/SIMD state survives the thread switches the other groups make).
 */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "suite.h"

static int checks, failures;

void suite_check(int ok, const char *what, const char *file, int line)
{
	checks++;
	if (!ok) {
		failures++;
		printf("libc: FAIL %s:%d: %s\n", file, line, what);
	}
}

void suite_check_eq(long long got, long long want, const char *what, const char *file, int line)
{
	checks++;
	if (got != want) {
		failures++;
		printf("libc: FAIL %s:%d: %s (got %lld, want %lld)\n", file, line, what, got, want);
	}
}

static const struct {
	const char *name;
	void (*run)(void);
} groups[] = {
	{ "string", group_string },   { "stdio", group_stdio },	    { "stdlib", group_stdlib },
	{ "math", group_math },	      { "time", group_time },	    { "files", group_files },
	{ "pipes", group_pipes },     { "threads", group_threads }, { "sync", group_sync },
	{ "signals", group_signals }, { "memory", group_memory },   { "process", group_process },
};

/* Groups that run only when named: they need a particular configuration of the image. */
static const struct {
	const char *name;
	void (*run)(void);
} named_only[] = {
	{ "preemption", group_preemption },
};

int run_suite(const char *only)
{
	int total_failures = 0, total_checks = 0;
	for (size_t i = 0; only && i < sizeof named_only / sizeof named_only[0]; i++) {
		if (strcmp(only, named_only[i].name))
			continue;
		checks = failures = 0;
		named_only[i].run();
		printf("libc: %s: %d checks, %d failed\n", named_only[i].name, checks, failures);
		return failures;
	}
	for (size_t i = 0; i < sizeof groups / sizeof groups[0]; i++) {
		if (only && strcmp(only, groups[i].name))
			continue;
		checks = failures = 0;
		groups[i].run();
		printf("libc: %s: %d checks, %d failed\n", groups[i].name, checks, failures);
		total_checks += checks;
		total_failures += failures;
	}
	if (!only)
		printf("libc: %zu groups, %d checks, %d failed\n",
		       sizeof groups / sizeof groups[0], total_checks, total_failures);
	return total_failures;
}

void group_string(void)
{
	char buf[64];
	CHECK_EQ(strlen(""), 0);
	CHECK_EQ(strlen("unikernel"), 9);
	CHECK(strcmp("abc", "abd") < 0);
	CHECK(strcmp("b", "a") > 0);
	CHECK_EQ(strncmp("abcdef", "abcxyz", 3), 0);
	CHECK_EQ(strcasecmp("MuSl", "musl"), 0);
	CHECK(strcpy(buf, "hello") == buf && !strcmp(buf, "hello"));
	CHECK(!strcmp(strcat(buf, ", world"), "hello, world"));
	CHECK(strchr(buf, ',') == buf + 5);
	CHECK(strrchr(buf, 'o') == buf + 8);
	CHECK(strstr(buf, "wor") == buf + 7);
	CHECK(strstr(buf, "xyz") == NULL);
	CHECK_EQ(strspn("aabbc", "ab"), 4);
	CHECK_EQ(strcspn("hello", "lo"), 2);
	CHECK(strpbrk("unikraft", "xyzk") != NULL);

	/* strncpy pads with NUL bytes and does not terminate a full copy. */
	memset(buf, 'z', sizeof buf);
	strncpy(buf, "ab", 5);
	CHECK(buf[0] == 'a' && buf[1] == 'b' && buf[2] == 0 && buf[4] == 0 && buf[5] == 'z');

	/* Overlapping moves in both directions, at every small misalignment. */
	for (int shift = 1; shift < 9; shift++) {
		char m[40];
		for (int i = 0; i < 40; i++)
			m[i] = (char)i;
		memmove(m + shift, m, 30);
		int ok = 1;
		for (int i = 0; i < 30; i++)
			ok &= m[i + shift] == (char)i;
		memmove(m, m + shift, 30);
		for (int i = 0; i < 30; i++)
			ok &= m[i] == (char)i;
		CHECK(ok);
	}
	CHECK(memchr("abcdef", 'd', 6) != NULL && memchr("abcdef", 'x', 6) == NULL);
	CHECK(memcmp("abc", "abd", 3) < 0);
	unsigned char big[300];
	memset(big, 0xa5, sizeof big);
	CHECK(big[0] == 0xa5 && big[299] == 0xa5);

	/* strtok_r and strdup/strndup (malloc'd). */
	char list[] = "one,two,,three";
	char *save, *tok;
	int count = 0;
	for (tok = strtok_r(list, ",", &save); tok; tok = strtok_r(NULL, ",", &save))
		count++;
	CHECK_EQ(count, 3);
	char *dup = strdup("copied");
	CHECK(dup && !strcmp(dup, "copied"));
	free(dup);
	dup = strndup("truncated", 5);
	CHECK(dup && !strcmp(dup, "trunc"));
	free(dup);

	/* Error strings and ctype in the C locale. */
	CHECK(!strcmp(strerror(ENOENT), "No such file or directory"));
	CHECK(!strcmp(strerror(EAGAIN), "Resource temporarily unavailable"));
	CHECK(isalpha('a') && !isalpha('1') && isdigit('7') && isspace('\t') && toupper('q') == 'Q');
}

void group_stdio(void)
{
	char buf[128];
	CHECK_EQ(snprintf(buf, sizeof buf, "%d %i %u %x %X %o", -42, 7, 3000000000u, 0xbeef, 0xbeef, 8),
		 29);
	CHECK(!strcmp(buf, "-42 7 3000000000 beef BEEF 10"));
	snprintf(buf, sizeof buf, "[%5d] [%-5d] [%05d] [%+d] [% d]", 42, 42, 42, 42, 42);
	CHECK(!strcmp(buf, "[   42] [42   ] [00042] [+42] [ 42]"));
	snprintf(buf, sizeof buf, "%ld %lld %zu %jd", LONG_MIN, LLONG_MAX, (size_t)SIZE_MAX,
		 (intmax_t)-1);
	CHECK(!strcmp(buf, "-9223372036854775808 9223372036854775807 18446744073709551615 -1"));
	snprintf(buf, sizeof buf, "%s|%.3s|%10s|%-4s|%c", "str", "truncate", "right", "l", 'c');
	CHECK(!strcmp(buf, "str|tru|     right|l   |c"));
	snprintf(buf, sizeof buf, "%f %.2f %e %g %g %a", 1.5, 3.14159, 12345.678, 0.0001, 1e20, 1.0);
	CHECK(!strcmp(buf, "1.500000 3.14 1.234568e+04 0.0001 1e+20 0x1p+0"));
	snprintf(buf, sizeof buf, "%.0f %.1f %g %g", 2.5, 0.05, 100000.0, 1000000.0);
	CHECK(!strcmp(buf, "2 0.1 100000 1e+06"));
	snprintf(buf, sizeof buf, "%f %f %F", INFINITY, -INFINITY, NAN);
	CHECK(!strcmp(buf, "inf -inf NAN"));
	snprintf(buf, sizeof buf, "%p", (void *)0x1234);
	CHECK(!strcmp(buf, "0x1234"));
	/* Truncation: the result is the length that would have been written. */
	char small[4];
	const char *volatile six = "abcdef";
	CHECK_EQ(snprintf(small, sizeof small, "%s", six), 6);
	CHECK(!strcmp(small, "abc"));
	int n = 0;
	snprintf(buf, sizeof buf, "abc%n", &n);
	CHECK_EQ(n, 3);

	int a = 0;
	unsigned x = 0;
	double d = 0;
	char word[16];
	CHECK_EQ(sscanf("17 ff 2.5 word", "%d %x %lf %15s", &a, &x, &d, word), 4);
	CHECK(a == 17 && x == 0xff && d == 2.5 && !strcmp(word, "word"));
	CHECK_EQ(sscanf("nope", "%d", &a), 0);

	/* A memory stream (fmemopen) and an in-memory growing one (open_memstream). */
	char mem[32] = "line one\nline two\n";
	FILE *f = fmemopen(mem, strlen(mem), "r");
	CHECK(f != NULL);
	if (f) {
		CHECK(fgets(buf, sizeof buf, f) && !strcmp(buf, "line one\n"));
		CHECK(fgets(buf, sizeof buf, f) && !strcmp(buf, "line two\n"));
		CHECK(fgets(buf, sizeof buf, f) == NULL && feof(f));
		fclose(f);
	}
	char *grown = NULL;
	size_t len = 0;
	f = open_memstream(&grown, &len);
	CHECK(f != NULL);
	if (f) {
		for (int i = 0; i < 1000; i++)
			fprintf(f, "%03d,", i);
		fclose(f);
		CHECK_EQ(len, 4000);
		CHECK(grown && !strncmp(grown + 3996, "999,", 4));
		free(grown);
	}
}

static int compare_ints(const void *a, const void *b)
{
	int x = *(const int *)a, y = *(const int *)b;
	return (x > y) - (x < y);
}

void group_stdlib(void)
{
	char *end;
	errno = 0;
	CHECK_EQ(strtol("  -123xyz", &end, 10), -123);
	CHECK(*end == 'x');
	CHECK_EQ(strtol("0x1f", NULL, 0), 31);
	CHECK_EQ(strtol("0755", NULL, 0), 493);
	CHECK_EQ(strtoul("ff", NULL, 16), 255);
	errno = 0;
	CHECK_EQ(strtol("99999999999999999999", NULL, 10), LONG_MAX);
	CHECK_EQ(errno, ERANGE);
	errno = 0;
	CHECK_EQ(strtoll("-9223372036854775808", NULL, 10), LLONG_MIN);
	CHECK_EQ(errno, 0);
	CHECK(strtod("1e-3", NULL) == 0.001);
	CHECK(strtod("-2.5e2", NULL) == -250.0);
	CHECK(isinf(strtod("inf", NULL)) && isnan(strtod("nan", NULL)));
	CHECK_EQ(atoi("42"), 42);
	CHECK_EQ(labs(-7), 7);
	div_t q = div(17, 5);
	CHECK(q.quot == 3 && q.rem == 2);

	int v[257];
	srand(7);
	for (int i = 0; i < 257; i++)
		v[i] = rand() % 1000 - 500;
	qsort(v, 257, sizeof v[0], compare_ints);
	int sorted = 1;
	for (int i = 1; i < 257; i++)
		sorted &= v[i - 1] <= v[i];
	CHECK(sorted);
	int key = v[100];
	int *found = bsearch(&key, v, 257, sizeof v[0], compare_ints);
	CHECK(found && *found == key);

	/* The environment the image gave, and changes to it. */
	CHECK(getenv("HOME") && !strcmp(getenv("HOME"), "/"));
	CHECK(getenv("NOT_SET") == NULL);
	CHECK_EQ(setenv("UK_SUITE", "one", 0), 0);
	CHECK(!strcmp(getenv("UK_SUITE"), "one"));
	CHECK_EQ(setenv("UK_SUITE", "two", 0), 0);
	CHECK(!strcmp(getenv("UK_SUITE"), "one"));
	CHECK_EQ(setenv("UK_SUITE", "two", 1), 0);
	CHECK(!strcmp(getenv("UK_SUITE"), "two"));
	CHECK_EQ(unsetenv("UK_SUITE"), 0);
	CHECK(getenv("UK_SUITE") == NULL);
	CHECK_EQ(setenv("BAD=NAME", "x", 1), -1);
	CHECK_EQ(errno, EINVAL);

	/* setjmp/longjmp restore the registers saved at setjmp. */
	jmp_buf jb;
	volatile int jumps = 0;
	int r = setjmp(jb);
	if (r == 0) {
		jumps++;
		longjmp(jb, 5);
	}
	CHECK(r == 5 && jumps == 1);
}

void group_math(void)
{
	/* volatile: computed at run time, by the FPU/SIMD unit, not folded by the compiler. */
	volatile double two = 2.0, half = 0.5, pi = 3.14159265358979323846;
	CHECK(fabs(sqrt(two) - 1.4142135623730951) < 1e-15);
	CHECK(fabs(sin(pi / 6) - 0.5) < 1e-15);
	CHECK(fabs(cos(pi) + 1.0) < 1e-15);
	CHECK(fabs(exp(1.0) - 2.718281828459045) < 1e-15);
	CHECK(fabs(log(100.0) / log(10.0) - two) < 1e-15);
	CHECK(pow(two, 10) == 1024.0);
	CHECK(pow(two, half) == sqrt(two));
	CHECK(floor(-2.5) == -3.0 && ceil(-2.5) == -2.0 && round(2.5) == 3.0 && trunc(-2.7) == -2.0);
	CHECK(fmod(7.5, 2.0) == 1.5);
	CHECK(isnan(sqrt(-1.0)) && isinf(1.0 / (two - 2.0)));
	volatile float f = 1.5f;
	CHECK(sqrtf(f * f) == 1.5f);
	CHECK(lround(-2.5) == -3 && (long)(f * 4) == 6);
	double sum = 0;
	for (int i = 1; i <= 1000; i++)
		sum += 1.0 / ((double)i * i);
	CHECK(fabs(sum - 1.6439345666815615) < 1e-12);
	checks_fenv();
}
