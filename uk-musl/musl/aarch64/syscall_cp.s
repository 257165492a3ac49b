// uk-rs replacement for musl's src/thread/aarch64/syscall_cp.s: a cancellation point's
// syscall as a direct call of uk_syscall6 (see ../syscall_arch.h).
//
// long __syscall_cp_asm(volatile int *cancel, long nr, long u, long v, long w, long x,
//                       long y, long z)
//   in:  x0 cancel, x1 nr, x2..x7 u..z
// long uk_syscall6(long nr, long a0, long a1, long a2, long a3, long a4, long a5)
//   out: x0 nr, x1..x6 u..z
//
// A tail call: uk_syscall6 returns straight to our caller. musl's cancellation handler
// compares the interrupted address with [__cp_begin, __cp_end): the branch is inside
// that window.

.global __cp_begin
.hidden __cp_begin
.global __cp_end
.hidden __cp_end
.global __cp_cancel
.hidden __cp_cancel
.hidden __cancel
.global __syscall_cp_asm
.hidden __syscall_cp_asm
.type __syscall_cp_asm,%function
__syscall_cp_asm:
__cp_begin:
	ldr w8,[x0]
	cbnz w8,__cp_cancel
	mov x0,x1
	mov x1,x2
	mov x2,x3
	mov x3,x4
	mov x4,x5
	mov x5,x6
	mov x6,x7
	b uk_syscall6
__cp_end:
	brk #0
__cp_cancel:
	b __cancel
.size __syscall_cp_asm,.-__syscall_cp_asm
