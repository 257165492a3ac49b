# uk-rs replacement for musl's src/thread/x86_64/syscall_cp.s: a cancellation point's
# syscall as a direct call of uk_syscall6 (see ../syscall_arch.h).
#
# long __syscall_cp_asm(volatile int *cancel, long nr, long u, long v, long w, long x,
#                       long y, long z)
#   in:  rdi cancel, rsi nr, rdx u, rcx v, r8 w, r9 x, 8(%rsp) y, 16(%rsp) z
# long uk_syscall6(long nr, long a0, long a1, long a2, long a3, long a4, long a5)
#   out: rdi nr, rsi u, rdx v, rcx w, r8 x, r9 y, 8(%rsp) z
#
# A tail call: the stack arguments belong to the callee, so z moves into y's slot and
# uk_syscall6 returns straight to our caller. musl's cancellation handler compares the
# interrupted address with [__cp_begin, __cp_end): the jump is inside that window.

.text
.global __cp_begin
.hidden __cp_begin
.global __cp_end
.hidden __cp_end
.global __cp_cancel
.hidden __cp_cancel
.hidden __cancel
.global __syscall_cp_asm
.hidden __syscall_cp_asm
.type __syscall_cp_asm,@function
__syscall_cp_asm:
__cp_begin:
	mov (%rdi),%eax
	test %eax,%eax
	jnz __cp_cancel
	mov %rsi,%rdi
	mov %rdx,%rsi
	mov %rcx,%rdx
	mov %r8,%rcx
	mov %r9,%r8
	mov 8(%rsp),%r9
	mov 16(%rsp),%rax
	mov %rax,8(%rsp)
	jmp uk_syscall6
__cp_end:
	ud2
__cp_cancel:
	jmp __cancel
.size __syscall_cp_asm,.-__syscall_cp_asm
