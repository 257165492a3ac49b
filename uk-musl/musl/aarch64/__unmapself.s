// uk-rs replacement for musl's src/thread/aarch64/__unmapself.s: a detached thread's last
// act, munmap(base, size) of its own stack and then exit(0), as direct calls of
// uk_syscall6 (see ../syscall_arch.h) instead of two svc instructions. Both handlers run
// on the stack being unmapped, as they do through the trap: the process layer runs
// nothing else on this CPU between them, and exit never returns.
//
// _Noreturn void __unmapself(void *base, size_t size)

.global __unmapself
.type __unmapself,%function
__unmapself:
	mov x2,x1               // a1: size
	mov x1,x0               // a0: base
	mov x0,#215             // SYS_munmap
	mov x3,xzr
	mov x4,xzr
	mov x5,xzr
	mov x6,xzr
	bl uk_syscall6
	mov x0,#93              // SYS_exit
	mov x1,xzr              // a0: status 0
	mov x2,xzr
	mov x3,xzr
	mov x4,xzr
	mov x5,xzr
	mov x6,xzr
	bl uk_syscall6
	brk #0
.size __unmapself,.-__unmapself
