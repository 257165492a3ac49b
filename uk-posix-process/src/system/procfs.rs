//! What `/proc` shows: the process layer as uk-vfs's [`ProcSource`].
//!
//! uk-vfs's procfs formats; this module answers its questions from the layer's state,
//! under the state lock, without adopting the caller (a thread the layer does not know
//! has no `/proc/self`). [`crate::connect_vfs`] mounts a procfs over the image's
//! [`System`] on `/proc`; a hosted test mounts one over its own `System` on its own VFS.
//!
//! What the figures are:
//!
//! - **Zombies** (ended, not yet waited for) are listed with state `Z`, their parent and
//!   group, no threads, an empty name, no mappings and no descriptors.
//! - **Processes and threads** are the layer's: ids, parent, group, session, thread
//!   names (`prctl`), nice values and policies, signal masks, pending signals, ignored and
//!   caught signals, CPU time (the scheduler's count, all user time) and context switches.
//!   A thread is `R` while uk-sched has it runnable, `S` while it waits.
//! - **Memory** is the image's one address space: every process shows the same mappings
//!   (`maps`: private mappings, the break as `[heap]`, shared file mappings, each file
//!   mapping with the path its descriptor had when it was mapped; `rw` on every line, as
//!   there is no protection per mapping) and the same `VmSize`/`VmRSS` (mapped is
//!   resident: pages are zeroed when mapped) and `VmPeak`/`VmHWM`. Thread stacks and the
//!   image itself are not mappings of this layer and are not listed.
//! - **Descriptors** are the VFS's one table ([`System::set_vfs`], else the image's),
//!   shared by every process of the image.
//! - **`cmdline`** is what the process was started with: the C program's `argv`
//!   ([`System::spawn_c_program`]), the name given to [`System::spawn_process`]
//!   otherwise; a process `clone` makes has its creator's, as after Linux's `fork`.
//! - **`exe`** is a symbolic link to that name (`hello` for `examples/musl`): the image is
//!   the program and no file in the VFS holds it, so the link names the program the way
//!   the image was told to call it, and leads nowhere (`stat` gives `ENOENT`).
//! - **`meminfo`** is `sysinfo`'s memory (the image allocator's total and free bytes),
//!   `uptime` its clock, `cpuinfo` the one CPU the layer's threads run on, `version`
//!   `uname`'s fields.

use alloc::sync::Arc;
use alloc::vec::Vec;

#[cfg(feature = "vfs")]
use uk_vfs::{MapEntry, ProcSource, ProcessInfo, SystemInfo, ThreadInfo, Vfs};

use super::System;
#[cfg(feature = "vfs")]
use super::{Process, ThreadEntry, current_key, switches_of};
use crate::ids::Pid;

/// What a process was started as: its arguments and its name (`cmdline`, `exe`). Kept
/// without the `vfs` feature too (startup records it), where nothing reads it.
#[derive(Debug)]
#[cfg_attr(not(feature = "vfs"), allow(dead_code))]
pub(crate) struct Program {
    /// The arguments, each followed by a NUL.
    pub(crate) cmdline: Vec<u8>,
    /// The name the process was started under.
    pub(crate) name: Vec<u8>,
}

impl Program {
    /// A program known only by `name` (its one argument too).
    pub(crate) fn named(name: &str) -> Arc<Program> {
        let mut cmdline = name.as_bytes().to_vec();
        cmdline.push(0);
        Arc::new(Program {
            cmdline,
            name: name.as_bytes().to_vec(),
        })
    }
}

/// The bytes of a NUL-padded thread name.
#[cfg(feature = "vfs")]
fn name_of(t: &ThreadEntry) -> Vec<u8> {
    let end = t.name.iter().position(|&c| c == 0).unwrap_or(t.name.len());
    t.name[..end].to_vec()
}

impl System {
    /// Records what process `pid` was started as (`cmdline`, `exe`).
    pub(crate) fn set_program(&self, pid: Pid, program: Arc<Program>) {
        if let Some(p) = self.state.lock().0.procs.get_mut(&pid) {
            p.program = Some(program);
        }
    }
}

#[cfg(feature = "vfs")]
impl System {
    fn thread_info(&self, key: u64, t: &ThreadEntry) -> ThreadInfo {
        let switches = switches_of(t.handle.as_ref());
        let runnable = match &t.handle {
            Some(h) => h.state() == uk_sched::ThreadState::Runnable,
            // The boot context runs whenever it is asked.
            None => key == current_key(),
        };
        ThreadInfo {
            tid: t.tid as u32,
            name: name_of(t),
            runnable,
            blocked: t.sig.mask,
            pending: t.sig.pending,
            cpu_ns: self.thread_cpu_ns(key, t.handle.as_ref()).unwrap_or(0),
            nice: t.nice,
            policy: t.policy as u32,
            voluntary_switches: switches.voluntary,
            involuntary_switches: switches.involuntary,
        }
    }

    fn process_info(&self, pid: Pid, p: &Process, threads: Vec<ThreadInfo>) -> ProcessInfo {
        let (ignored, caught) = p.sig.ignored_and_caught();
        let cpu_ns = threads
            .iter()
            .fold(p.ended_cpu_ns, |sum, t| sum.saturating_add(t.cpu_ns));
        let (cmdline, exe) = match &p.program {
            Some(program) => (program.cmdline.clone(), program.name.clone()),
            None => (Vec::new(), Vec::new()),
        };
        ProcessInfo {
            pid: pid as u32,
            ppid: p.ppid as u32,
            pgid: p.pgid as u32,
            sid: p.sid as u32,
            threads,
            cmdline,
            exe,
            cpu_ns,
            vm_bytes: 0,
            vm_peak_bytes: 0,
            pending: p.sig.pending,
            ignored,
            caught,
            zombie: false,
        }
    }
}

#[cfg(feature = "vfs")]
impl ProcSource for System {
    fn pids(&self) -> Vec<u32> {
        let guard = self.state.lock();
        let st = &guard.0;
        let mut pids: Vec<u32> = st
            .procs
            .keys()
            .chain(st.zombies.keys())
            .map(|&pid| pid as u32)
            .collect();
        pids.sort_unstable();
        pids
    }

    fn caller(&self) -> Option<(u32, u32)> {
        let guard = self.state.lock();
        let t = guard.0.threads.get(&current_key())?;
        Some((t.pid as u32, t.tid as u32))
    }

    fn process(&self, pid: u32) -> Option<ProcessInfo> {
        let pid = Pid::try_from(pid).ok()?;
        let mut info = {
            let guard = self.state.lock();
            let st = &guard.0;
            let Some(p) = st.procs.get(&pid) else {
                // Ended, not waited for: a zombie (its name and memory are gone).
                let z = st.zombies.get(&pid)?;
                return Some(ProcessInfo {
                    pid: pid as u32,
                    ppid: z.ppid as u32,
                    pgid: z.pgid as u32,
                    zombie: true,
                    ..ProcessInfo::default()
                });
            };
            let mut threads: Vec<ThreadInfo> = st
                .threads
                .iter()
                .filter(|(_, t)| t.pid == pid)
                .map(|(key, t)| self.thread_info(*key, t))
                .collect();
            threads.sort_by_key(|t| t.tid);
            self.process_info(pid, p, threads)
        };
        let (now, peak) = self.mm.lock().mapped_bytes();
        info.vm_bytes = now;
        info.vm_peak_bytes = peak;
        Some(info)
    }

    fn maps(&self, pid: u32) -> Option<Vec<MapEntry>> {
        let pid = Pid::try_from(pid).ok()?;
        if !self.pid_exists(pid) {
            // A zombie maps nothing.
            return self
                .state
                .lock()
                .0
                .zombies
                .contains_key(&pid)
                .then(Vec::new);
        }
        Some(self.mm.lock().regions())
    }

    fn files(&self, pid: u32) -> Option<&Vfs> {
        let pid = Pid::try_from(pid).ok()?;
        self.pid_exists(pid).then(|| self.vfs())
    }

    fn system(&self) -> SystemInfo {
        let info = self.sysinfo();
        let uts = crate::uname();
        let text = |field: &[u8]| {
            let end = field.iter().position(|&c| c == 0).unwrap_or(field.len());
            alloc::string::String::from_utf8_lossy(&field[..end]).into_owned()
        };
        SystemInfo {
            mem_total: info.totalram,
            mem_free: info.freeram,
            uptime_ns: self.monotonic_ns(),
            cpus: crate::AFFINITY_MASK.count_ones(),
            sysname: text(&uts.sysname),
            nodename: text(&uts.nodename),
            release: text(&uts.release),
            version: text(&uts.version),
            machine: text(&uts.machine),
        }
    }
}
