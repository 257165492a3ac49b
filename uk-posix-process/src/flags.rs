//! The clone flag table and the pure validation of a clone request.
//!
//! Every flag Linux defines has a row in [`FLAG_TABLE`] saying what this layer does with
//! it. [`CloneArgs::validate`] applies Linux's own consistency rules first (they give
//! `EINVAL` exactly as Linux does), then the table: a flag this layer cannot honour gives
//! `EINVAL` (namespaces: as a Linux built without them) or `ENOSYS` (a separate address
//! space, file table or fs context would be a fork; vfork, ptrace, cgroups). `CLONE_PIDFD`
//! (with uk-vfs, feature `vfs`) and `CLONE_PARENT` pass here; [`crate::System::clone`]
//! carries them out (a pidfd for the parent; the caller's parent as the child's).
//! Validation touches nothing: a refused request changes no state.

use uk_syscall::Errno;

/// Low byte of legacy clone's flags: the signal sent to the parent when the child exits.
pub const CSIGNAL: u64 = 0xff;
/// Share the address space (required: there is one).
pub const CLONE_VM: u64 = 0x100;
/// Share cwd, root and umask (required).
pub const CLONE_FS: u64 = 0x200;
/// Share the file descriptor table (required).
pub const CLONE_FILES: u64 = 0x400;
/// Share signal handlers (needs `CLONE_VM`).
pub const CLONE_SIGHAND: u64 = 0x800;
/// Return a pidfd (unsupported).
pub const CLONE_PIDFD: u64 = 0x1000;
/// Trace the child too (unsupported).
pub const CLONE_PTRACE: u64 = 0x2000;
/// Suspend the parent until the child execs or exits (unsupported).
pub const CLONE_VFORK: u64 = 0x4000;
/// The child gets the caller's parent (unsupported).
pub const CLONE_PARENT: u64 = 0x8000;
/// Same thread group (process): a thread, not a process (needs `CLONE_SIGHAND`).
pub const CLONE_THREAD: u64 = 0x10000;
/// New mount namespace (unsupported; `EINVAL` with `CLONE_FS`).
pub const CLONE_NEWNS: u64 = 0x20000;
/// Share System V semaphore undo lists (there are none: accepted).
pub const CLONE_SYSVSEM: u64 = 0x40000;
/// Set the child's thread pointer to the `tls` argument.
pub const CLONE_SETTLS: u64 = 0x80000;
/// Write the child's tid to `*parent_tid` before the child runs.
pub const CLONE_PARENT_SETTID: u64 = 0x100000;
/// On the child's exit, write 0 to `*child_tid` and futex-wake one waiter there.
pub const CLONE_CHILD_CLEARTID: u64 = 0x200000;
/// Ignored by legacy clone (historical), `EINVAL` in clone3.
pub const CLONE_DETACHED: u64 = 0x400000;
/// Tracer may not force `CLONE_PTRACE` (unsupported).
pub const CLONE_UNTRACED: u64 = 0x800000;
/// Write the child's tid to `*child_tid` before the child runs.
pub const CLONE_CHILD_SETTID: u64 = 0x1000000;
/// New cgroup namespace (unsupported).
pub const CLONE_NEWCGROUP: u64 = 0x2000000;
/// New UTS namespace (unsupported).
pub const CLONE_NEWUTS: u64 = 0x4000000;
/// New IPC namespace (unsupported).
pub const CLONE_NEWIPC: u64 = 0x8000000;
/// New user namespace (unsupported; `EINVAL` with `CLONE_FS`).
pub const CLONE_NEWUSER: u64 = 0x10000000;
/// New pid namespace (unsupported).
pub const CLONE_NEWPID: u64 = 0x20000000;
/// New network namespace (unsupported).
pub const CLONE_NEWNET: u64 = 0x40000000;
/// Share the I/O context (unsupported).
pub const CLONE_IO: u64 = 0x80000000;
/// Reset signal handlers to default (clone3 only; no handlers here: accepted).
pub const CLONE_CLEAR_SIGHAND: u64 = 0x1_0000_0000;
/// Start in the cgroup `cgroup` (clone3 only; unsupported).
pub const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;
/// New time namespace (clone3 only, shares its bit with `CSIGNAL`; unsupported).
pub const CLONE_NEWTIME: u64 = 0x80;

/// The flags glibc and musl pass for a POSIX thread.
pub const PTHREAD_FLAGS: u64 = CLONE_VM
    | CLONE_FS
    | CLONE_FILES
    | CLONE_SIGHAND
    | CLONE_THREAD
    | CLONE_SYSVSEM
    | CLONE_SETTLS
    | CLONE_PARENT_SETTID
    | CLONE_CHILD_CLEARTID;

/// What this layer does with a clone flag.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Support {
    /// Must be present (one address space, one fd table, one fs context); absent → `ENOSYS`.
    Required,
    /// Honoured.
    Supported,
    /// Accepted with no effect here (no SysV semaphores, no signal handlers).
    Accepted,
    /// Refused with this error.
    Refused(Errno),
}

/// One row of the flag table.
#[derive(Clone, Copy, Debug)]
pub struct FlagRow {
    /// Linux's name.
    pub name: &'static str,
    /// The bit.
    pub bit: u64,
    /// What happens to it.
    pub support: Support,
}

const fn row(name: &'static str, bit: u64, support: Support) -> FlagRow {
    FlagRow { name, bit, support }
}

/// The flag table (reference §3 with Linux semantics): every flag but `CSIGNAL`'s byte.
pub const FLAG_TABLE: &[FlagRow] = &[
    row("CLONE_VM", CLONE_VM, Support::Required),
    row("CLONE_FS", CLONE_FS, Support::Required),
    row("CLONE_FILES", CLONE_FILES, Support::Required),
    row("CLONE_SIGHAND", CLONE_SIGHAND, Support::Accepted),
    // A pidfd is a uk-vfs descriptor: without it (feature `vfs`) there is none to hand out.
    row(
        "CLONE_PIDFD",
        CLONE_PIDFD,
        if cfg!(feature = "vfs") {
            Support::Accepted
        } else {
            Support::Refused(Errno::ENOSYS)
        },
    ),
    row(
        "CLONE_PTRACE",
        CLONE_PTRACE,
        Support::Refused(Errno::ENOSYS),
    ),
    row("CLONE_VFORK", CLONE_VFORK, Support::Refused(Errno::ENOSYS)),
    row("CLONE_PARENT", CLONE_PARENT, Support::Accepted),
    row("CLONE_THREAD", CLONE_THREAD, Support::Supported),
    row("CLONE_NEWNS", CLONE_NEWNS, Support::Refused(Errno::EINVAL)),
    row("CLONE_SYSVSEM", CLONE_SYSVSEM, Support::Accepted),
    row("CLONE_SETTLS", CLONE_SETTLS, Support::Supported),
    row(
        "CLONE_PARENT_SETTID",
        CLONE_PARENT_SETTID,
        Support::Supported,
    ),
    row(
        "CLONE_CHILD_CLEARTID",
        CLONE_CHILD_CLEARTID,
        Support::Supported,
    ),
    row("CLONE_DETACHED", CLONE_DETACHED, Support::Accepted),
    row(
        "CLONE_UNTRACED",
        CLONE_UNTRACED,
        Support::Refused(Errno::ENOSYS),
    ),
    row("CLONE_CHILD_SETTID", CLONE_CHILD_SETTID, Support::Supported),
    row(
        "CLONE_NEWCGROUP",
        CLONE_NEWCGROUP,
        Support::Refused(Errno::EINVAL),
    ),
    row(
        "CLONE_NEWUTS",
        CLONE_NEWUTS,
        Support::Refused(Errno::EINVAL),
    ),
    row(
        "CLONE_NEWIPC",
        CLONE_NEWIPC,
        Support::Refused(Errno::EINVAL),
    ),
    row(
        "CLONE_NEWUSER",
        CLONE_NEWUSER,
        Support::Refused(Errno::EINVAL),
    ),
    row(
        "CLONE_NEWPID",
        CLONE_NEWPID,
        Support::Refused(Errno::EINVAL),
    ),
    row(
        "CLONE_NEWNET",
        CLONE_NEWNET,
        Support::Refused(Errno::EINVAL),
    ),
    row("CLONE_IO", CLONE_IO, Support::Refused(Errno::ENOSYS)),
    row(
        "CLONE_CLEAR_SIGHAND",
        CLONE_CLEAR_SIGHAND,
        Support::Accepted,
    ),
    row(
        "CLONE_INTO_CGROUP",
        CLONE_INTO_CGROUP,
        Support::Refused(Errno::ENOSYS),
    ),
];

/// Every bit of [`FLAG_TABLE`].
pub const KNOWN_FLAGS: u64 = {
    let mut all = 0;
    let mut i = 0;
    while i < FLAG_TABLE.len() {
        all |= FLAG_TABLE[i].bit;
        i += 1;
    }
    all
};

/// Which syscall a request came through (their rules differ slightly).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Via {
    /// Legacy `clone`: the exit signal is the low byte of the flags; `CLONE_DETACHED` ignored.
    Clone,
    /// `clone3`: the exit signal is its own field; flags above 32 bits exist.
    Clone3,
}

/// A clone request in clone3's shape (legacy clone is converted into it).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CloneArgs {
    /// Flags (without the exit signal).
    pub flags: u64,
    /// Where `CLONE_PIDFD` stores the new process's pidfd (legacy clone: `parent_tid`,
    /// which the two share).
    pub pidfd: usize,
    /// `*child_tid` for `CLONE_CHILD_SETTID` / `CLONE_CHILD_CLEARTID`.
    pub child_tid: usize,
    /// `*parent_tid` for `CLONE_PARENT_SETTID`.
    pub parent_tid: usize,
    /// Signal to the parent at exit (recorded; no signals are delivered).
    pub exit_signal: u64,
    /// The child's stack pointer (legacy clone: the top; clone3: see `stack_size`).
    pub stack: usize,
    /// clone3: `stack` is the lowest address and the child starts at `stack + stack_size`;
    /// 0 for legacy clone (then `stack` is the top).
    pub stack_size: usize,
    /// The child's thread pointer with `CLONE_SETTLS`.
    pub tls: usize,
    /// clone3 `set_tid` array (unsupported).
    pub set_tid: usize,
    /// clone3 `set_tid_size`.
    pub set_tid_size: usize,
    /// clone3 `cgroup` fd.
    pub cgroup: u64,
}

/// Size of clone3's `struct clone_args` version 0 (the smallest accepted).
pub const CLONE_ARGS_SIZE_VER0: usize = 64;
/// With `set_tid` and `set_tid_size`.
pub const CLONE_ARGS_SIZE_VER1: usize = 80;
/// With `cgroup`; the largest this layer knows.
pub const CLONE_ARGS_SIZE_VER2: usize = 88;

/// A validated request: what the child gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClonePlan {
    /// Joins the caller's process (thread group) rather than starting a new process.
    pub thread: bool,
    /// `CLONE_PARENT`: a new process is the caller's sibling (its parent is the caller's
    /// parent, which gets the caller's own exit signal when it ends).
    pub sibling: bool,
    /// The child's thread pointer (`CLONE_SETTLS`), or `None` to inherit the caller's.
    pub tls: Option<usize>,
    /// `CLONE_PIDFD` target: where the parent's pidfd of the new process goes.
    pub pidfd: Option<usize>,
    /// `CLONE_PARENT_SETTID` target.
    pub parent_settid: Option<usize>,
    /// `CLONE_CHILD_SETTID` target.
    pub child_settid: Option<usize>,
    /// `CLONE_CHILD_CLEARTID` target.
    pub child_cleartid: Option<usize>,
    /// The child's initial stack pointer (`None`: the caller's, only sensible with a start
    /// that brings its own).
    pub stack_top: Option<usize>,
    /// Bytes of stack known below `stack_top` (clone3's `stack_size`), if known.
    pub stack_size: Option<usize>,
    /// Exit signal (recorded only).
    pub exit_signal: u64,
}

impl CloneArgs {
    /// Legacy clone's arguments (architecture order already resolved by the caller).
    pub fn from_legacy(
        flags: u64,
        stack: usize,
        parent_tid: usize,
        child_tid: usize,
        tls: usize,
    ) -> Self {
        let flags = flags & 0xffff_ffff;
        Self {
            flags: flags & !CSIGNAL,
            exit_signal: flags & CSIGNAL,
            stack,
            pidfd: parent_tid,
            parent_tid,
            child_tid,
            tls,
            ..Self::default()
        }
    }

    /// Parses clone3's `struct clone_args` from `bytes` (`size` bytes the caller gave).
    ///
    /// # Errors
    ///
    /// `EINVAL` for a size below version 0, `E2BIG` for one above a page or with non-zero
    /// bytes past the last field this layer knows.
    pub fn from_clone3(bytes: &[u8]) -> Result<Self, Errno> {
        if bytes.len() < CLONE_ARGS_SIZE_VER0 {
            return Err(Errno::EINVAL);
        }
        if bytes.len() > 4096 {
            return Err(Errno::E2BIG);
        }
        if bytes.len() > CLONE_ARGS_SIZE_VER2
            && bytes[CLONE_ARGS_SIZE_VER2..].iter().any(|&b| b != 0)
        {
            return Err(Errno::E2BIG);
        }
        let field = |i: usize| -> u64 {
            let at = i * 8;
            match bytes.get(at..at + 8) {
                Some(b) => u64::from_ne_bytes(b.try_into().unwrap_or([0; 8])),
                None => 0,
            }
        };
        let usize_of = |v: u64| usize::try_from(v).map_err(|_| Errno::EINVAL);
        Ok(Self {
            flags: field(0),
            pidfd: usize_of(field(1))?,
            child_tid: usize_of(field(2))?,
            parent_tid: usize_of(field(3))?,
            exit_signal: field(4),
            stack: usize_of(field(5))?,
            stack_size: usize_of(field(6))?,
            tls: usize_of(field(7))?,
            set_tid: usize_of(field(8))?,
            set_tid_size: usize_of(field(9))?,
            cgroup: field(10),
        })
    }

    /// Validates the request against Linux's rules and the flag table.
    ///
    /// # Errors
    ///
    /// `EINVAL` where Linux refuses the combination (or for a namespace flag), `ENOSYS`
    /// for a combination Linux accepts but this layer cannot honour (see [`FLAG_TABLE`]).
    pub fn validate(&self, via: Via) -> Result<ClonePlan, Errno> {
        let f = self.flags;
        // Bits nobody defines.
        if f & !KNOWN_FLAGS != 0 {
            // In clone3 the CSIGNAL byte is not a signal but CLONE_NEWTIME (bit 0x80) or
            // undefined.
            return Err(Errno::EINVAL);
        }
        match via {
            Via::Clone => {
                if f >> 32 != 0 {
                    return Err(Errno::EINVAL);
                }
                // Legacy clone shares the pidfd and parent_tid argument.
                if f & CLONE_PIDFD != 0 && f & CLONE_PARENT_SETTID != 0 {
                    return Err(Errno::EINVAL);
                }
            }
            Via::Clone3 => {
                if f & CLONE_DETACHED != 0 {
                    return Err(Errno::EINVAL);
                }
                if self.exit_signal & !CSIGNAL != 0 || self.exit_signal > 64 {
                    return Err(Errno::EINVAL);
                }
                if (self.stack == 0) != (self.stack_size == 0) {
                    return Err(Errno::EINVAL);
                }
                if self.set_tid_size > 32 || (self.set_tid == 0) != (self.set_tid_size == 0) {
                    return Err(Errno::EINVAL);
                }
                if f & CLONE_INTO_CGROUP == 0 && self.cgroup != 0 {
                    return Err(Errno::EINVAL);
                }
                if self.stack.checked_add(self.stack_size).is_none() {
                    return Err(Errno::EINVAL);
                }
            }
        }
        // Linux's consistency rules (kernel/fork.c copy_process), in its order.
        if f & (CLONE_NEWNS | CLONE_FS) == CLONE_NEWNS | CLONE_FS {
            return Err(Errno::EINVAL);
        }
        if f & (CLONE_NEWUSER | CLONE_FS) == CLONE_NEWUSER | CLONE_FS {
            return Err(Errno::EINVAL);
        }
        if f & CLONE_THREAD != 0 && f & CLONE_SIGHAND == 0 {
            return Err(Errno::EINVAL);
        }
        if f & CLONE_SIGHAND != 0 && f & CLONE_VM == 0 {
            return Err(Errno::EINVAL);
        }
        if f & (CLONE_SIGHAND | CLONE_CLEAR_SIGHAND) == CLONE_SIGHAND | CLONE_CLEAR_SIGHAND {
            return Err(Errno::EINVAL);
        }
        if f & CLONE_PIDFD != 0 && f & (CLONE_DETACHED | CLONE_THREAD) != 0 {
            return Err(Errno::EINVAL);
        }
        // The table: refusals, then required flags (a table EINVAL outranks an ENOSYS).
        let mut refusal = None;
        for row in FLAG_TABLE {
            if let Support::Refused(errno) = row.support
                && f & row.bit != 0
            {
                if errno == Errno::EINVAL {
                    return Err(errno);
                }
                refusal.get_or_insert(errno);
            }
        }
        if let Some(errno) = refusal {
            return Err(errno);
        }
        if via == Via::Clone3 && self.set_tid_size != 0 {
            return Err(Errno::ENOSYS);
        }
        for row in FLAG_TABLE {
            if row.support == Support::Required && f & row.bit == 0 {
                return Err(Errno::ENOSYS);
            }
        }
        let opt = |bit: u64, v: usize| (f & bit != 0).then_some(v);
        let (stack_top, stack_size) = match (self.stack, self.stack_size) {
            (0, _) => (None, None),
            (s, 0) => (Some(s), None),
            (s, n) => (Some(s + n), Some(n)),
        };
        Ok(ClonePlan {
            thread: f & CLONE_THREAD != 0,
            sibling: f & CLONE_PARENT != 0,
            tls: opt(CLONE_SETTLS, self.tls),
            pidfd: opt(CLONE_PIDFD, self.pidfd),
            parent_settid: opt(CLONE_PARENT_SETTID, self.parent_tid),
            child_settid: opt(CLONE_CHILD_SETTID, self.child_tid),
            child_cleartid: opt(CLONE_CHILD_CLEARTID, self.child_tid),
            stack_top,
            stack_size,
            exit_signal: if f & CLONE_THREAD != 0 {
                0
            } else {
                self.exit_signal
            },
        })
    }
}

/// Names of the flags set in `flags`, for log lines.
pub fn flag_names(flags: u64) -> impl Iterator<Item = &'static str> {
    FLAG_TABLE
        .iter()
        .filter(move |row| flags & row.bit != 0)
        .map(|row| row.name)
}
