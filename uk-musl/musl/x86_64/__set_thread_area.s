# uk-rs replacement for musl's src/thread/x86_64/__set_thread_area.s: arch_prctl
# (ARCH_SET_FS, p) as a direct call of uk_syscall6 (see ../syscall_arch.h) instead of a
# syscall instruction.
#
# int __set_thread_area(void *p)

.text
.global __set_thread_area
.hidden __set_thread_area
.type __set_thread_area,@function
__set_thread_area:
	mov %rdi,%rdx           # a1: the new FS base
	mov $0x1002,%esi        # a0: ARCH_SET_FS
	mov $158,%edi           # SYS_arch_prctl
	xor %ecx,%ecx
	xor %r8d,%r8d
	xor %r9d,%r9d
	push $0                 # a5, on the stack; also re-aligns it to 16 for the call
	call uk_syscall6
	add $8,%rsp
	ret
.size __set_thread_area,.-__set_thread_area
