// uk-rs replacement for musl's src/thread/aarch64/clone.s: __clone as a direct call of the
// process layer's uk_clone (uk-posix-process), which takes the same seven arguments in the
// same order and returns the child's id or -errno. The child starts in entry(arg) on its
// stack with its thread pointer set, and its return value is its exit status, as with
// musl's own __clone.
//
// int __clone(int (*entry)(void *), void *stack, int flags, void *arg,
//             pid_t *parent_tid, void *tls, pid_t *child_tid)

.global __clone
.hidden __clone
.type __clone,%function
__clone:
	b uk_clone
.size __clone,.-__clone
