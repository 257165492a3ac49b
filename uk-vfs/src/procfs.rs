//! procfs: a read-only `/proc` with Linux's file formats, generated when read.
//!
//! # Design
//!
//! uk-vfs knows files, not processes. What `/proc` shows about processes comes from a
//! [`ProcSource`], a small trait the process layer implements (uk-posix-process does, and
//! mounts a [`ProcFs`] on `/proc` of the image's VFS when it connects to it): the live
//! process ids, the caller's ids, per-process facts ([`ProcessInfo`], [`ThreadInfo`]), the
//! memory mappings ([`MapEntry`]), the [`Vfs`] whose descriptor table a process uses, and
//! the machine's figures ([`SystemInfo`]). procfs only formats them.
//!
//! Nodes are made on every lookup and hold no state but what they name (a process id, a
//! thread id, a descriptor), so a process that is gone is noticed at once: its directory
//! and everything in it give `ENOENT` on lookup, and a file opened before it went gives
//! `ESRCH` on its first read, as Linux does. A file's text is made at its first read and
//! kept for that open file, so a program that reads it in pieces sees one consistent
//! snapshot (Linux regenerates per read call; a reader that seeks back here gets the
//! same snapshot again).
//!
//! The tree:
//!
//! - `/proc/self` → `<pid>` and `/proc/thread-self` → `<pid>/task/<tid>` (the caller's;
//!   `ENOENT` for a caller the process layer does not know), `/proc/mounts` →
//!   `self/mounts`;
//! - `/proc/<pid>/` (a process that ended and was not waited for yet too, state `Z`):
//!   `stat` (Linux's 52 fields in Linux's order; fields nobody keeps are
//!   0), `status`, `cmdline` (the NUL-terminated arguments), `comm`, `maps`, `mounts`,
//!   `exe` (a symbolic link to what [`ProcessInfo::exe`] says), `fd/` (a symbolic link per
//!   open descriptor, named as Linux names it: see [`Vfs::fd_path`]), `task/<tid>/` (`comm`,
//!   `stat`, `status` of each thread);
//! - `/proc/meminfo`, `/proc/uptime`, `/proc/cpuinfo`, `/proc/version`.
//!
//! Descriptor links are "magic" as on Linux: a path walk through `/proc/<pid>/fd/N` leads
//! to the open file's node itself (an unlinked file still opens), not to the path its text
//! names; a pipe, eventfd or epoll set cannot be reopened that way (`ENOENT`).
//!
//! Everything is read-only, with Linux's errors (checked as root on Linux 6.18): opening a
//! file for writing succeeds (root), but a write gives `EIO`; creating, linking or making
//! a directory under a name that does not exist gives `ENOENT` (procfs has no negative
//! entries) and `EEXIST` for one that does; `unlink` and `rmdir` give `EPERM`, `rename`
//! `ENOENT` or `EPERM`. Unlike Linux, `chmod`, `chown` and `utimensat` are refused with
//! `EPERM` (Linux stores them on the proc inode); `truncate` succeeds and changes nothing,
//! as on Linux. `mountinfo`, `cgroup` and everything else Linux has are absent (`ENOENT`),
//! which Rust's `available_parallelism` and other readers take in their stride.

use alloc::string::String;
use alloc::sync::{Arc, Weak};
use alloc::vec::Vec;
use core::any::Any;
use core::fmt::Write as _;

use spin::Once;

use crate::file::Origin;
use crate::ramfs::anonymous_dev;
use crate::types::{FileType, S_IFDIR, S_IFLNK, S_IFREG, Stat, StatFs, major, minor};
use crate::vnode::{DirEntry, FileSystem, NewNode, Vnode, VnodeRef};
use crate::{Errno, Fd, Vfs};

/// `statfs` type of Linux's procfs (what [`ProcFs`] reports).
pub const PROC_SUPER_MAGIC: u64 = 0x9fa0;

/// Clock ticks per second in `stat`'s times (Linux's `USER_HZ`, `AT_CLKTCK`).
pub const USER_HZ: u64 = 100;

/// What `/proc` asks of the process layer. Every method answers for the moment it is
/// called; a process that is gone is `None`.
pub trait ProcSource: Send + Sync {
    /// The live process ids, ascending.
    fn pids(&self) -> Vec<u32>;
    /// The caller's process id and thread id (`None` for a caller the layer does not know).
    fn caller(&self) -> Option<(u32, u32)>;
    /// What is known about process `pid`.
    fn process(&self, pid: u32) -> Option<ProcessInfo>;
    /// Process `pid`'s memory mappings, ascending by address.
    fn maps(&self, pid: u32) -> Option<Vec<MapEntry>>;
    /// The VFS whose descriptor table (and mounts) process `pid` uses.
    fn files(&self, pid: u32) -> Option<&Vfs>;
    /// The machine's figures.
    fn system(&self) -> SystemInfo;
}

/// One thread of a process, as `/proc/<pid>/task/<tid>` shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ThreadInfo {
    /// Thread id.
    pub tid: u32,
    /// Its name (`prctl(PR_SET_NAME)`), at most 15 bytes.
    pub name: Vec<u8>,
    /// Whether it is running or ready to run (`R`); otherwise it waits (`S`).
    pub runnable: bool,
    /// Signals it blocks (bit `n - 1` for signal `n`).
    pub blocked: u64,
    /// Signals pending for it alone.
    pub pending: u64,
    /// CPU time it has used, in nanoseconds.
    pub cpu_ns: u64,
    /// Its nice value.
    pub nice: i32,
    /// Its scheduling policy (`SCHED_*`).
    pub policy: u32,
    /// Switches away because it waited.
    pub voluntary_switches: u64,
    /// Switches away while it could still run.
    pub involuntary_switches: u64,
}

/// A process, as `/proc/<pid>` shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProcessInfo {
    /// Process id.
    pub pid: u32,
    /// Parent's process id (0 for none).
    pub ppid: u32,
    /// Process group.
    pub pgid: u32,
    /// Session.
    pub sid: u32,
    /// The live threads; the one whose id is the process id (the leader) speaks for the
    /// process in `stat`, `status` and `comm` while it lives, else the first.
    pub threads: Vec<ThreadInfo>,
    /// The arguments, each followed by a NUL (`cmdline`).
    pub cmdline: Vec<u8>,
    /// The target of `exe`.
    pub exe: Vec<u8>,
    /// CPU time of the whole process, ended threads included, in nanoseconds.
    pub cpu_ns: u64,
    /// Bytes mapped now (`VmSize`, `VmRSS`: what is mapped is resident).
    pub vm_bytes: u64,
    /// The most bytes mapped at once (`VmPeak`, `VmHWM`).
    pub vm_peak_bytes: u64,
    /// Signals pending for the process as a whole.
    pub pending: u64,
    /// Signals it ignores.
    pub ignored: u64,
    /// Signals it has handlers for.
    pub caught: u64,
    /// Ended and not yet waited for (`Z`): no threads, no memory, no descriptors.
    pub zombie: bool,
}

impl ProcessInfo {
    /// The thread that speaks for the process: the leader, else the first.
    pub fn main_thread(&self) -> Option<&ThreadInfo> {
        self.threads
            .iter()
            .find(|t| t.tid == self.pid)
            .or(self.threads.first())
    }
}

/// One line of `/proc/<pid>/maps`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MapEntry {
    /// First address.
    pub start: u64,
    /// Address past the end.
    pub end: u64,
    /// `r`, `w`, `x` as the mapping allows.
    pub read: bool,
    /// Writable.
    pub write: bool,
    /// Executable.
    pub exec: bool,
    /// Shared (`s`) rather than private (`p`).
    pub shared: bool,
    /// Offset in the file.
    pub offset: u64,
    /// The file's device number (0 for anonymous memory).
    pub dev: u64,
    /// The file's inode number (0 for anonymous memory).
    pub ino: u64,
    /// The file's path, `[heap]`, or empty.
    pub name: Vec<u8>,
}

/// The machine, as `meminfo`, `uptime`, `cpuinfo` and `version` show it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SystemInfo {
    /// All the memory the image's allocator manages, in bytes.
    pub mem_total: u64,
    /// What of it is free now.
    pub mem_free: u64,
    /// Time since boot, in nanoseconds.
    pub uptime_ns: u64,
    /// The processors the processes run on.
    pub cpus: u32,
    /// `uname`'s sysname (`Linux`).
    pub sysname: String,
    /// `uname`'s node name.
    pub nodename: String,
    /// `uname`'s release.
    pub release: String,
    /// `uname`'s version.
    pub version: String,
    /// `uname`'s machine.
    pub machine: String,
}

/// The procfs filesystem (mount it on `/proc`).
pub struct ProcFs {
    root: Arc<Node>,
}

/// What every node of one procfs shares.
struct Shared {
    source: &'static dyn ProcSource,
    dev: u64,
    root: Weak<Node>,
}

impl ProcFs {
    /// A procfs answering from `source`.
    pub fn new(source: &'static dyn ProcSource) -> Arc<Self> {
        let root = Arc::new_cyclic(|weak| Node {
            shared: Arc::new(Shared {
                source,
                dev: anonymous_dev(),
                root: weak.clone(),
            }),
            kind: Kind::Root,
            text: Once::new(),
        });
        Arc::new(ProcFs { root })
    }
}

impl FileSystem for ProcFs {
    fn name(&self) -> &'static str {
        "proc"
    }
    fn root(&self) -> VnodeRef {
        self.root.clone()
    }
    fn statfs(&self) -> Result<StatFs, Errno> {
        Ok(StatFs::in_memory(PROC_SUPER_MAGIC))
    }
}

/// The generated files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Text {
    Stat,
    Status,
    Cmdline,
    Comm,
    Maps,
    Mounts,
    Meminfo,
    Uptime,
    Cpuinfo,
    Version,
}

/// What a node is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// `/proc`.
    Root,
    /// `/proc/<pid>`.
    Process(u32),
    /// `/proc/<pid>/fd`.
    Fds(u32),
    /// `/proc/<pid>/task`.
    Tasks(u32),
    /// `/proc/<pid>/task/<tid>`.
    Task(u32, u32),
    /// A generated file of process `pid` (0: of the system), thread `tid` (0: the
    /// process's).
    File(Text, u32, u32),
    /// `/proc/self`.
    SelfLink,
    /// `/proc/thread-self`.
    ThreadSelf,
    /// `/proc/mounts`.
    MountsLink,
    /// `/proc/<pid>/exe`.
    Exe(u32),
    /// `/proc/<pid>/fd/<n>`.
    Fd(u32, Fd),
}

/// The entries of the fixed directories: name and what it is (pid and tid filled in).
const ROOT_ENTRIES: [(&[u8], Kind); 7] = [
    (b"cpuinfo", Kind::File(Text::Cpuinfo, 0, 0)),
    (b"meminfo", Kind::File(Text::Meminfo, 0, 0)),
    (b"mounts", Kind::MountsLink),
    (b"self", Kind::SelfLink),
    (b"thread-self", Kind::ThreadSelf),
    (b"uptime", Kind::File(Text::Uptime, 0, 0)),
    (b"version", Kind::File(Text::Version, 0, 0)),
];

/// Names in `/proc/<pid>`.
const PROCESS_ENTRIES: [&[u8]; 9] = [
    b"cmdline", b"comm", b"exe", b"fd", b"maps", b"mounts", b"stat", b"status", b"task",
];

/// Names in `/proc/<pid>/task/<tid>`.
const TASK_ENTRIES: [&[u8]; 3] = [b"comm", b"stat", b"status"];

/// A procfs node.
pub(crate) struct Node {
    shared: Arc<Shared>,
    kind: Kind,
    /// A generated file's text, made at its first read.
    text: Once<Result<Vec<u8>, Errno>>,
}

/// Parses a process or thread id as Linux's procfs does (decimal, no sign, no leading
/// zero, above 0).
fn parse_id(name: &[u8]) -> Option<u32> {
    if name.is_empty() || name.len() > 10 || name[0] == b'0' {
        return None;
    }
    let mut v: u64 = 0;
    for &c in name {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v * 10 + u64::from(c - b'0');
    }
    u32::try_from(v).ok().filter(|&v| v <= i32::MAX as u32)
}

/// Parses a descriptor number (decimal, no leading zero but `0` itself).
fn parse_fd(name: &[u8]) -> Option<Fd> {
    if name == b"0" {
        return Some(0);
    }
    parse_id(name).map(|v| v as Fd)
}

fn decimal(v: u64) -> Vec<u8> {
    alloc::format!("{v}").into_bytes()
}

impl Node {
    fn make(&self, kind: Kind) -> Arc<Node> {
        Arc::new(Node {
            shared: self.shared.clone(),
            kind,
            text: Once::new(),
        })
    }

    fn source(&self) -> &'static dyn ProcSource {
        self.shared.source
    }

    fn alive(&self, pid: u32) -> bool {
        self.source().process(pid).is_some()
    }

    fn thread_alive(&self, pid: u32, tid: u32) -> bool {
        self.source()
            .process(pid)
            .is_some_and(|p| p.threads.iter().any(|t| t.tid == tid))
    }

    /// An inode number unique within this procfs: the kind, the process and one more id.
    fn ino(&self) -> u64 {
        let (code, pid, sub): (u64, u32, u64) = match self.kind {
            Kind::Root => return 1,
            Kind::Process(p) => (2, p, 0),
            Kind::Fds(p) => (3, p, 0),
            Kind::Tasks(p) => (4, p, 0),
            Kind::Task(p, t) => (5, p, u64::from(t)),
            Kind::File(text, p, t) => (16 + text as u64, p, u64::from(t)),
            Kind::SelfLink => (6, 0, 0),
            Kind::ThreadSelf => (7, 0, 0),
            Kind::MountsLink => (8, 0, 0),
            Kind::Exe(p) => (9, p, 0),
            Kind::Fd(p, fd) => (10, p, fd as u32 as u64),
        };
        (u64::from(pid) << 40) | (sub << 8) | code
    }

    /// A child of a directory node, or `ENOENT`.
    fn child(&self, name: &[u8]) -> Result<Kind, Errno> {
        let kind = match self.kind {
            Kind::Root => {
                if let Some((_, kind)) = ROOT_ENTRIES.iter().find(|(n, _)| *n == name) {
                    return Ok(*kind);
                }
                let pid = parse_id(name).ok_or(Errno::ENOENT)?;
                Kind::Process(pid)
            }
            Kind::Process(pid) => match name {
                b"cmdline" => Kind::File(Text::Cmdline, pid, 0),
                b"comm" => Kind::File(Text::Comm, pid, 0),
                b"exe" => Kind::Exe(pid),
                b"fd" => Kind::Fds(pid),
                b"maps" => Kind::File(Text::Maps, pid, 0),
                b"mounts" => Kind::File(Text::Mounts, pid, 0),
                b"stat" => Kind::File(Text::Stat, pid, 0),
                b"status" => Kind::File(Text::Status, pid, 0),
                b"task" => Kind::Tasks(pid),
                _ => return Err(Errno::ENOENT),
            },
            Kind::Fds(pid) => {
                let fd = parse_fd(name).ok_or(Errno::ENOENT)?;
                let vfs = self.source().files(pid).ok_or(Errno::ENOENT)?;
                if !vfs.fd_numbers().contains(&fd) {
                    return Err(Errno::ENOENT);
                }
                Kind::Fd(pid, fd)
            }
            Kind::Tasks(pid) => {
                let tid = parse_id(name).ok_or(Errno::ENOENT)?;
                if !self.thread_alive(pid, tid) {
                    return Err(Errno::ENOENT);
                }
                Kind::Task(pid, tid)
            }
            Kind::Task(pid, tid) => match name {
                b"comm" => Kind::File(Text::Comm, pid, tid),
                b"stat" => Kind::File(Text::Stat, pid, tid),
                b"status" => Kind::File(Text::Status, pid, tid),
                _ => return Err(Errno::ENOENT),
            },
            _ => return Err(Errno::ENOTDIR),
        };
        // Everything under a process is gone with it.
        let pid = match kind {
            Kind::Process(p) | Kind::Fds(p) | Kind::Tasks(p) | Kind::Exe(p) => p,
            Kind::File(_, p, _) | Kind::Task(p, _) | Kind::Fd(p, _) => p,
            _ => 0,
        };
        if pid != 0 && !self.alive(pid) {
            return Err(Errno::ENOENT);
        }
        Ok(kind)
    }

    /// The directory's entries from position `pos`: (position, name, kind).
    fn entries(&self, pos: u64) -> Result<Vec<(u64, Vec<u8>, Kind)>, Errno> {
        let fixed = |names: &[&[u8]], of: &Node| -> Result<Vec<(u64, Vec<u8>, Kind)>, Errno> {
            let mut out = Vec::new();
            for (i, name) in names.iter().enumerate() {
                let at = 2 + i as u64;
                if at >= pos {
                    out.push((at, name.to_vec(), of.child(name)?));
                }
            }
            Ok(out)
        };
        match self.kind {
            Kind::Root => {
                let mut out = Vec::new();
                for (i, (name, kind)) in ROOT_ENTRIES.iter().enumerate() {
                    let at = 2 + i as u64;
                    if at >= pos {
                        out.push((at, name.to_vec(), *kind));
                    }
                }
                // A process's position follows from its id, so a listing resumed at any
                // position neither loses nor repeats a process that lived throughout.
                let base = 2 + ROOT_ENTRIES.len() as u64;
                for pid in self.source().pids() {
                    let at = base + u64::from(pid);
                    if at >= pos {
                        out.push((at, decimal(pid.into()), Kind::Process(pid)));
                    }
                }
                Ok(out)
            }
            Kind::Process(pid) => {
                if !self.alive(pid) {
                    return Err(Errno::ENOENT);
                }
                fixed(&PROCESS_ENTRIES, self)
            }
            Kind::Task(pid, tid) => {
                if !self.thread_alive(pid, tid) {
                    return Err(Errno::ENOENT);
                }
                fixed(&TASK_ENTRIES, self)
            }
            Kind::Fds(pid) => {
                if !self.alive(pid) {
                    return Err(Errno::ENOENT);
                }
                // A process without a descriptor table (a zombie) lists nothing.
                let Some(vfs) = self.source().files(pid) else {
                    return Ok(Vec::new());
                };
                Ok(vfs
                    .fd_numbers()
                    .into_iter()
                    .map(|fd| (2 + fd as u64, fd, Kind::Fd(pid, fd)))
                    .filter(|(at, _, _)| *at >= pos)
                    .map(|(at, fd, kind)| (at, decimal(fd as u64), kind))
                    .collect())
            }
            Kind::Tasks(pid) => {
                let p = self.source().process(pid).ok_or(Errno::ENOENT)?;
                let mut tids: Vec<u32> = p.threads.iter().map(|t| t.tid).collect();
                tids.sort_unstable();
                Ok(tids
                    .into_iter()
                    .map(|tid| (2 + u64::from(tid), tid))
                    .filter(|(at, _)| *at >= pos)
                    .map(|(at, tid)| (at, decimal(tid.into()), Kind::Task(pid, tid)))
                    .collect())
            }
            _ => Err(Errno::ENOTDIR),
        }
    }

    /// A descriptor link's open file (node and where it was found), for the path walk.
    pub(crate) fn fd_target(&self) -> Option<(VnodeRef, Option<Origin>)> {
        match self.kind {
            Kind::Fd(pid, fd) => self.source().files(pid)?.fd_target(fd),
            _ => None,
        }
    }

    fn generate(&self, text: Text, pid: u32, tid: u32) -> Result<Vec<u8>, Errno> {
        let source = self.source();
        if pid == 0 {
            let sys = source.system();
            return Ok(match text {
                Text::Meminfo => meminfo(&sys),
                Text::Uptime => uptime(&sys),
                Text::Cpuinfo => cpuinfo(&sys),
                _ => version(&sys),
            });
        }
        let process = source.process(pid).ok_or(Errno::ESRCH)?;
        let thread = if tid == 0 {
            process.main_thread().cloned()
        } else {
            Some(
                process
                    .threads
                    .iter()
                    .find(|t| t.tid == tid)
                    .cloned()
                    .ok_or(Errno::ESRCH)?,
            )
        };
        let thread = thread.unwrap_or_default();
        Ok(match text {
            Text::Stat => stat(&process, &thread, tid),
            Text::Status => status(&process, &thread, tid),
            Text::Cmdline => process.cmdline.clone(),
            Text::Comm => {
                let mut out = thread.name.clone();
                out.push(b'\n');
                out
            }
            Text::Maps => maps(&source.maps(pid).ok_or(Errno::ESRCH)?),
            Text::Mounts => mounts(&source.files(pid).ok_or(Errno::ESRCH)?.mount_table()),
            Text::Meminfo | Text::Uptime | Text::Cpuinfo | Text::Version => Vec::new(),
        })
    }

    fn is_dir(&self) -> bool {
        matches!(
            self.kind,
            Kind::Root | Kind::Process(_) | Kind::Fds(_) | Kind::Tasks(_) | Kind::Task(..)
        )
    }

    /// Why a new entry `name` here is refused: `ENOTDIR` outside a directory, `EEXIST` for
    /// a name it holds, `ENOENT` for another (what Linux's procfs answers root).
    fn new_name_refusal(&self, name: &[u8]) -> Errno {
        if !self.is_dir() {
            Errno::ENOTDIR
        } else if self.has(name) {
            Errno::EEXIST
        } else {
            Errno::ENOENT
        }
    }

    /// Whether `name` names an entry of this directory (for the refusals' errors).
    fn has(&self, name: &[u8]) -> bool {
        self.child(name).is_ok()
    }
}

impl Vnode for Node {
    fn stat(&self) -> Stat {
        let (mode, nlink) = match self.kind {
            Kind::Root => (S_IFDIR | 0o555, 2 + self.source().pids().len() as u32),
            Kind::Process(_) => (S_IFDIR | 0o555, 4),
            Kind::Tasks(_) => (S_IFDIR | 0o555, 3),
            Kind::Task(..) => (S_IFDIR | 0o555, 2),
            Kind::Fds(_) => (S_IFDIR | 0o500, 2),
            Kind::File(..) => (S_IFREG | 0o444, 1),
            Kind::SelfLink | Kind::ThreadSelf | Kind::MountsLink | Kind::Exe(_) => {
                (S_IFLNK | 0o777, 1)
            }
            // As Linux: readable and searchable by the owner for a descriptor open for
            // reading, writable for writing.
            Kind::Fd(pid, fd) => {
                let flags = self
                    .source()
                    .files(pid)
                    .and_then(|vfs| vfs.fcntl(fd, crate::types::F_GETFL, 0).ok())
                    .unwrap_or(0) as u32;
                let perm = match flags & crate::types::O_ACCMODE {
                    crate::types::O_WRONLY => 0o300,
                    crate::types::O_RDWR => 0o700,
                    _ => 0o500,
                };
                (S_IFLNK | perm, 1)
            }
        };
        let now = crate::now();
        Stat {
            dev: self.shared.dev,
            ino: self.ino(),
            mode,
            nlink,
            blksize: 1024,
            atime: now,
            mtime: now,
            ctime: now,
            ..Stat::default()
        }
    }
    fn file_type(&self) -> FileType {
        match self.kind {
            Kind::File(..) => FileType::Regular,
            Kind::SelfLink | Kind::ThreadSelf | Kind::MountsLink | Kind::Exe(_) | Kind::Fd(..) => {
                FileType::Symlink
            }
            _ => FileType::Directory,
        }
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn lookup(&self, name: &[u8]) -> Result<VnodeRef, Errno> {
        if !self.is_dir() {
            return Err(Errno::ENOTDIR);
        }
        if name.len() > crate::types::NAME_MAX {
            return Err(Errno::ENAMETOOLONG);
        }
        Ok(self.make(self.child(name)?))
    }
    fn parent(&self) -> Option<VnodeRef> {
        let kind = match self.kind {
            Kind::Root => return None,
            Kind::Process(_) => return self.shared.root.upgrade().map(|r| r as VnodeRef),
            Kind::Fds(p) | Kind::Tasks(p) => Kind::Process(p),
            Kind::Task(p, _) => Kind::Tasks(p),
            _ => return None,
        };
        Some(self.make(kind))
    }
    fn dir_name(&self) -> Option<Vec<u8>> {
        match self.kind {
            Kind::Process(p) => Some(decimal(p.into())),
            Kind::Fds(_) => Some(b"fd".to_vec()),
            Kind::Tasks(_) => Some(b"task".to_vec()),
            Kind::Task(_, t) => Some(decimal(t.into())),
            _ => None,
        }
    }
    fn create(&self, name: &[u8], _kind: NewNode<'_>, _mode: u32) -> Result<VnodeRef, Errno> {
        Err(self.new_name_refusal(name))
    }
    fn link(&self, name: &[u8], _target: &VnodeRef) -> Result<(), Errno> {
        Err(self.new_name_refusal(name))
    }
    fn unlink(&self, name: &[u8]) -> Result<(), Errno> {
        if !self.is_dir() {
            return Err(Errno::ENOTDIR);
        }
        self.child(name)?;
        Err(Errno::EPERM)
    }
    fn rmdir(&self, name: &[u8]) -> Result<(), Errno> {
        if !self.is_dir() {
            return Err(Errno::ENOTDIR);
        }
        self.child(name)?;
        Err(Errno::EPERM)
    }
    fn rename(&self, old: &[u8], new_dir: &VnodeRef, new: &[u8], _flags: u32) -> Result<(), Errno> {
        if !self.is_dir() {
            return Err(Errno::ENOTDIR);
        }
        self.child(old)?;
        // No negative entries: a new name that does not exist is ENOENT, as on Linux.
        new_dir.lookup(new)?;
        Err(Errno::EPERM)
    }
    fn read_dir(&self, pos: u64, sink: &mut dyn FnMut(DirEntry<'_>) -> bool) -> Result<(), Errno> {
        for (at, name, kind) in self.entries(pos.max(2))? {
            let node = self.make(kind);
            let e = DirEntry {
                name: &name,
                ino: node.ino(),
                file_type: node.file_type(),
                next: at + 1,
            };
            if !sink(e) {
                break;
            }
        }
        Ok(())
    }
    fn is_empty_dir(&self) -> bool {
        self.entries(2).map_or(true, |e| e.is_empty())
    }
    fn readlink(&self) -> Result<Arc<[u8]>, Errno> {
        let source = self.source();
        let target = match self.kind {
            Kind::SelfLink => decimal(source.caller().ok_or(Errno::ENOENT)?.0.into()),
            Kind::ThreadSelf => {
                let (pid, tid) = source.caller().ok_or(Errno::ENOENT)?;
                alloc::format!("{pid}/task/{tid}").into_bytes()
            }
            Kind::MountsLink => b"self/mounts".to_vec(),
            Kind::Exe(pid) => source.process(pid).ok_or(Errno::ENOENT)?.exe,
            Kind::Fd(pid, fd) => {
                let vfs = source.files(pid).ok_or(Errno::ENOENT)?;
                vfs.fd_path(fd).map_err(|_| Errno::ENOENT)?
            }
            _ => return Err(Errno::EINVAL),
        };
        Ok(target.into())
    }
    fn read_at(&self, offset: u64, buf: &mut [u8], _nonblock: bool) -> Result<usize, Errno> {
        let Kind::File(text, pid, tid) = self.kind else {
            return Err(if self.is_dir() {
                Errno::EISDIR
            } else {
                Errno::EINVAL
            });
        };
        let data = self
            .text
            .call_once(|| self.generate(text, pid, tid))
            .as_ref()
            .map_err(|e| *e)?;
        let Ok(start) = usize::try_from(offset) else {
            return Ok(0);
        };
        if start >= data.len() {
            return Ok(0);
        }
        let n = buf.len().min(data.len() - start);
        buf[..n].copy_from_slice(&data[start..start + n]);
        Ok(n)
    }
    /// procfs files have no write operation: `EIO`, as Linux's `proc_reg_write` gives.
    fn write_at(&self, _offset: u64, _buf: &[u8], _nonblock: bool) -> Result<usize, Errno> {
        Err(if self.is_dir() {
            Errno::EISDIR
        } else {
            Errno::EIO
        })
    }
    fn append(&self, _buf: &[u8], _nonblock: bool) -> Result<(usize, u64), Errno> {
        Err(Errno::EIO)
    }
    /// Succeeds and changes nothing, as on Linux (`O_TRUNC` and `truncate` of a proc file).
    fn truncate(&self, _len: u64) -> Result<(), Errno> {
        Ok(())
    }
    fn map_kind(&self) -> crate::mmap::MapKind {
        crate::mmap::MapKind::Unmappable
    }
}

// ----- formats ---------------------------------------------------------------------------

/// Kibibytes of `bytes`.
fn kb(bytes: u64) -> u64 {
    bytes / 1024
}

/// Clock ticks of `ns` nanoseconds.
fn ticks(ns: u64) -> u64 {
    ns / (1_000_000_000 / USER_HZ)
}

/// `/proc/<pid>/stat` (or `/proc/<pid>/task/<tid>/stat` when `tid` is not 0): Linux's 52
/// fields in its order.
fn stat(p: &ProcessInfo, t: &ThreadInfo, tid: u32) -> Vec<u8> {
    let id = if tid == 0 { p.pid } else { tid };
    let state = match (p.zombie, t.runnable) {
        (true, _) => 'Z',
        (false, true) => 'R',
        (false, false) => 'S',
    };
    let utime = ticks(if tid == 0 { p.cpu_ns } else { t.cpu_ns });
    let rss_pages = p.vm_bytes / 4096;
    let mut s = String::new();
    let _ = write!(s, "{id} (");
    let mut out = s.into_bytes();
    out.extend_from_slice(&t.name);
    let mut s = String::new();
    // 3 state, 4 ppid, 5 pgrp, 6 session, 7 tty_nr, 8 tpgid, 9 flags, 10-13 faults,
    // 14 utime, 15 stime, 16 cutime, 17 cstime, 18 priority, 19 nice, 20 num_threads,
    // 21 itrealvalue, 22 starttime, 23 vsize, 24 rss, 25 rsslim.
    let _ = write!(
        s,
        ") {state} {} {} {} 0 -1 0 0 0 0 0 {utime} 0 0 0 {} {} {} 0 0 {} {rss_pages} 0",
        p.ppid,
        p.pgid,
        p.sid,
        20 + t.nice,
        t.nice,
        p.threads.len(),
        p.vm_bytes,
    );
    // 26 startcode .. 30 kstkeip, then 31 signal, 32 blocked, 33 sigignore, 34 sigcatch
    // (decimal, as Linux prints them), 35 wchan, 36 nswap, 37 cnswap, 38 exit_signal
    // (SIGCHLD), 39 processor, 40 rt_priority, 41 policy, 42 delayacct_blkio_ticks,
    // 43 guest_time, 44 cguest_time, 45-51 addresses, 52 exit_code.
    let _ = writeln!(
        s,
        " 0 0 0 0 0 {} {} {} {} 0 0 0 17 0 0 {} 0 0 0 0 0 0 0 0 0 0 0",
        p.pending | t.pending,
        t.blocked,
        p.ignored,
        p.caught,
        t.policy,
    );
    out.extend_from_slice(s.as_bytes());
    out
}

/// `/proc/<pid>/status`.
fn status(p: &ProcessInfo, t: &ThreadInfo, tid: u32) -> Vec<u8> {
    let mut out = b"Name:\t".to_vec();
    out.extend_from_slice(&t.name);
    let mut s = String::new();
    let state = match (p.zombie, t.runnable) {
        (true, _) => "Z (zombie)",
        (false, true) => "R (running)",
        (false, false) => "S (sleeping)",
    };
    let id = if tid == 0 { p.pid } else { tid };
    let _ = write!(
        s,
        "\nState:\t{state}\nTgid:\t{}\nNgid:\t0\nPid:\t{id}\nPPid:\t{}\nTracerPid:\t0\n\
         Uid:\t0\t0\t0\t0\nGid:\t0\t0\t0\t0\nGroups:\t\n",
        p.pid, p.ppid
    );
    let peak = kb(p.vm_peak_bytes.max(p.vm_bytes));
    let size = kb(p.vm_bytes);
    for (name, v) in [
        ("VmPeak", peak),
        ("VmSize", size),
        ("VmHWM", peak),
        ("VmRSS", size),
    ] {
        let _ = writeln!(s, "{name}:\t{v:8} kB");
    }
    let _ = write!(
        s,
        "Threads:\t{}\nSigPnd:\t{:016x}\nShdPnd:\t{:016x}\nSigBlk:\t{:016x}\n\
         SigIgn:\t{:016x}\nSigCgt:\t{:016x}\nvoluntary_ctxt_switches:\t{}\n\
         nonvoluntary_ctxt_switches:\t{}\n",
        p.threads.len(),
        t.pending,
        p.pending,
        t.blocked,
        p.ignored,
        p.caught,
        t.voluntary_switches,
        t.involuntary_switches,
    );
    out.extend_from_slice(s.as_bytes());
    out
}

/// `/proc/<pid>/maps`: `start-end perms offset major:minor inode`, the name from
/// column 73 (a trailing space when there is none), as Linux prints it.
fn maps(entries: &[MapEntry]) -> Vec<u8> {
    let mut out = Vec::new();
    for e in entries {
        let flag = |on: bool, c: char| if on { c } else { '-' };
        let line = alloc::format!(
            "{:08x}-{:08x} {}{}{}{} {:08x} {:02x}:{:02x} {} ",
            e.start,
            e.end,
            flag(e.read, 'r'),
            flag(e.write, 'w'),
            flag(e.exec, 'x'),
            if e.shared { 's' } else { 'p' },
            e.offset,
            major(e.dev),
            minor(e.dev),
            e.ino,
        );
        out.extend_from_slice(line.as_bytes());
        if !e.name.is_empty() {
            let width = 73usize.saturating_sub(line.len());
            out.resize(out.len() + width, b' ');
            out.extend_from_slice(&e.name);
        }
        out.push(b'\n');
    }
    out
}

/// A path in `/proc/mounts`: space, tab, newline and backslash as octal escapes.
fn escape_into(out: &mut Vec<u8>, path: &[u8]) {
    for &c in path {
        if matches!(c, b' ' | b'\t' | b'\n' | b'\\') {
            out.extend_from_slice(alloc::format!("\\{c:03o}").as_bytes());
        } else {
            out.push(c);
        }
    }
}

/// `/proc/<pid>/mounts`: `source point type options 0 0` per mount.
fn mounts(table: &[(Vec<u8>, &'static str)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (path, fs) in table {
        out.extend_from_slice(fs.as_bytes());
        out.push(b' ');
        escape_into(&mut out, path);
        out.extend_from_slice(alloc::format!(" {fs} rw 0 0\n").as_bytes());
    }
    out
}

/// `/proc/meminfo`: the allocator's figures (no swap, caches or buffers).
fn meminfo(sys: &SystemInfo) -> Vec<u8> {
    let mut s = String::new();
    for (name, bytes) in [
        ("MemTotal:", sys.mem_total),
        ("MemFree:", sys.mem_free),
        ("MemAvailable:", sys.mem_free),
        ("Buffers:", 0),
        ("Cached:", 0),
        ("SwapCached:", 0),
        ("SwapTotal:", 0),
        ("SwapFree:", 0),
    ] {
        let _ = writeln!(s, "{name:<16}{:>8} kB", kb(bytes));
    }
    s.into_bytes()
}

/// `/proc/uptime`: seconds since boot and seconds of idle time (not counted: 0).
fn uptime(sys: &SystemInfo) -> Vec<u8> {
    let cs = sys.uptime_ns / 10_000_000;
    alloc::format!("{}.{:02} 0.00\n", cs / 100, cs % 100).into_bytes()
}

/// `/proc/cpuinfo`: a `processor` record per CPU the processes run on.
fn cpuinfo(sys: &SystemInfo) -> Vec<u8> {
    let mut s = String::new();
    for cpu in 0..sys.cpus.max(1) {
        let _ = write!(s, "processor\t: {cpu}\n\n");
    }
    s.into_bytes()
}

/// `/proc/version`: `uname`'s fields in Linux's format.
fn version(sys: &SystemInfo) -> Vec<u8> {
    alloc::format!(
        "{} version {} (root@{}) (rustc) {}\n",
        sys.sysname,
        sys.release,
        sys.nodename,
        sys.version
    )
    .into_bytes()
}
