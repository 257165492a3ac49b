# uk-rs replacement for musl's src/thread/x86_64/__unmapself.s: a detached thread's last
# act, munmap(base, size) of its own stack and then exit(0), as direct calls of
# uk_syscall6 (see ../syscall_arch.h) instead of two syscall instructions. Both handlers
# run on the stack being unmapped, as they do through the trap: the process layer runs
# nothing else on this CPU between them, and exit never returns.
#
# _Noreturn void __unmapself(void *base, size_t size)

.text
.global __unmapself
.type __unmapself,@function
__unmapself:
	mov %rsi,%rdx           # a1: size
	mov %rdi,%rsi           # a0: base
	mov $11,%edi            # SYS_munmap
	xor %ecx,%ecx
	xor %r8d,%r8d
	xor %r9d,%r9d
	push $0                 # a5, on the stack; also re-aligns it to 16 for the calls
	call uk_syscall6
	mov $60,%edi            # SYS_exit
	xor %esi,%esi           # a0: status 0
	xor %edx,%edx
	xor %ecx,%ecx
	xor %r8d,%r8d
	xor %r9d,%r9d
	call uk_syscall6
	ud2
.size __unmapself,.-__unmapself
