//! `/proc` over a live `System`: uk-vfs's procfs mounted on a test VFS, read from the
//! layer's own threads (ids, names, threads, signals, mappings, descriptors, processes
//! that come and go).

mod common;

use std::cell::Cell;
use std::rc::Rc;

use common::{boxed, world};
use uk_posix_process::flags::{CLONE_FILES, CLONE_FS, CLONE_VM, CloneArgs, Via};
use uk_posix_process::procctl::PR_SET_NAME;
use uk_posix_process::signal::{SIG_BLOCK, SIG_IGN, SIGTERM, SIGUSR1, SIGUSR2, SigAction};
use uk_posix_process::*;
use uk_vfs::{DevFs, Errno, O_RDONLY, O_RDWR, ProcFs, RamFs, Vfs};

extern "C" fn handler(_sig: i32) {}

/// A test VFS (ramfs root, devfs on `/dev`, procfs over `sys` on `/proc`).
fn vfs_for(sys: &'static System) -> &'static Vfs {
    let vfs: &'static Vfs = Box::leak(Box::new(Vfs::new(RamFs::new())));
    vfs.mkdir("/dev", 0o755).unwrap();
    vfs.mount("/dev", DevFs::new()).unwrap();
    vfs.mkdir("/proc", 0o555).unwrap();
    vfs.mount("/proc", ProcFs::new(sys)).unwrap();
    sys.set_vfs(vfs);
    vfs
}

fn text(vfs: &Vfs, path: &str) -> String {
    String::from_utf8(vfs.read_file(path).unwrap()).unwrap()
}

fn link(vfs: &Vfs, path: &str) -> Result<String, Errno> {
    let mut buf = [0u8; 256];
    let n = vfs.readlink(path, &mut buf)?;
    Ok(String::from_utf8(buf[..n].to_vec()).unwrap())
}

fn listing(vfs: &Vfs, path: &str) -> Vec<String> {
    let fd = vfs.open(path, O_RDONLY, 0).unwrap();
    let mut buf = vec![0u8; 8192];
    let n = vfs.getdents64(fd, &mut buf).unwrap();
    vfs.close(fd).unwrap();
    uk_vfs::dirents(&buf[..n])
        .map(|d| String::from_utf8(d.name.to_vec()).unwrap())
        .filter(|n| !n.starts_with('.'))
        .collect()
}

#[test]
fn proc_shows_the_callers_process_threads_signals_and_memory() {
    let w = world();
    let sys = w.sys;
    let vfs = vfs_for(sys);
    let status = w.run(move || {
        let pid = sys.getpid().unwrap();
        let tid = sys.gettid().unwrap();
        sys.prctl(PR_SET_NAME, [c"tester".as_ptr() as usize, 0, 0, 0])
            .unwrap();
        assert_eq!(link(vfs, "/proc/self").unwrap(), pid.to_string());
        assert_eq!(
            link(vfs, "/proc/thread-self").unwrap(),
            format!("{pid}/task/{tid}")
        );
        assert_eq!(link(vfs, "/proc/self/exe").unwrap(), "main");
        assert_eq!(vfs.read_file("/proc/self/cmdline").unwrap(), b"main\0");
        assert_eq!(text(vfs, "/proc/self/comm"), "tester\n");

        // Signals: a handler, an ignored signal, a blocked one.
        let on = |handler| SigAction {
            handler,
            ..Default::default()
        };
        sys.rt_sigaction(SIGUSR1, Some(on(handler as *const () as usize)))
            .unwrap();
        sys.rt_sigaction(SIGTERM, Some(on(SIG_IGN))).unwrap();
        sys.rt_sigprocmask(SIG_BLOCK, Some(1 << (SIGUSR2 - 1)))
            .unwrap();

        // A second thread, which waits until told to end.
        let done = Rc::new(Cell::new(false));
        let d = done.clone();
        let other = common::spawn(sys, move || {
            while !d.get() {
                uk_sched::yield_now();
            }
            0
        });
        uk_sched::yield_now();

        let stat = text(vfs, "/proc/self/stat");
        assert!(
            stat.starts_with(&format!("{pid} (tester) R 0 0 0 0 -1 ")),
            "{stat}"
        );
        let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..]
            .split_whitespace()
            .collect();
        assert_eq!(fields.len(), 50, "fields 3 to 52: {stat}");
        assert_eq!(fields[20 - 3], "2", "num_threads");
        assert_eq!(
            fields[32 - 3],
            (1u64 << (SIGUSR2 - 1)).to_string(),
            "blocked"
        );
        assert_eq!(
            fields[33 - 3],
            (1u64 << (SIGTERM - 1)).to_string(),
            "ignored"
        );
        assert_eq!(
            fields[34 - 3],
            (1u64 << (SIGUSR1 - 1)).to_string(),
            "caught"
        );

        let status = text(vfs, "/proc/self/status");
        for line in [
            "Name:\ttester\n".to_string(),
            format!("Pid:\t{pid}\n"),
            "PPid:\t0\n".to_string(),
            "Threads:\t2\n".to_string(),
            "SigBlk:\t0000000000000800\n".to_string(),
            "SigIgn:\t0000000000004000\n".to_string(),
            "SigCgt:\t0000000000000200\n".to_string(),
        ] {
            assert!(status.contains(&line), "{line:?} not in {status}");
        }
        let mut tids = vec![tid.to_string(), other.to_string()];
        tids.sort_by_key(|t| t.parse::<u32>().unwrap());
        assert_eq!(listing(vfs, &format!("/proc/{pid}/task")), tids);
        // The other thread: its own id, the creator's name, waiting or runnable.
        let t = text(vfs, &format!("/proc/self/task/{other}/stat"));
        assert!(t.starts_with(&format!("{other} (tester) ")), "{t}");

        // Mappings: anonymous, a private copy of a file, a shared ramfs mapping.
        let anon = sys
            .mmap(
                0,
                3 * PAGE_SIZE,
                PROT_READ | PROT_WRITE,
                MAP_PRIVATE | MAP_ANONYMOUS,
                -1,
                0,
            )
            .unwrap();
        vfs.write_file("/data", &[7u8; 2 * PAGE_SIZE], 0o644)
            .unwrap();
        let fd = vfs.open("/data", O_RDWR, 0).unwrap();
        let private = sys
            .mmap(0, PAGE_SIZE, PROT_READ, MAP_PRIVATE, fd, PAGE_SIZE as u64)
            .unwrap();
        let shared = sys
            .mmap(0, 2 * PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)
            .unwrap();
        let maps = text(vfs, "/proc/self/maps");
        let covering = |addr: usize| {
            maps.lines()
                .find(|l| {
                    let (range, _) = l.split_once(' ').unwrap();
                    let (a, b) = range.split_once('-').unwrap();
                    let a = usize::from_str_radix(a, 16).unwrap();
                    let b = usize::from_str_radix(b, 16).unwrap();
                    a <= addr && addr < b
                })
                .unwrap_or_else(|| panic!("{addr:#x} not in {maps}"))
                .to_string()
        };
        let ino = vfs.fstat(fd).unwrap().ino;
        assert!(covering(anon + PAGE_SIZE).ends_with(" rw-p 00000000 00:00 0 "));
        let line = covering(private);
        assert!(line.contains(" rw-p 00001000 "), "{line}");
        assert!(
            line.contains(&format!(" {ino} ")) && line.ends_with(" /data"),
            "{line}"
        );
        let line = covering(shared + PAGE_SIZE);
        assert!(
            line.contains(" rw-s 00000000 ") && line.ends_with(" /data"),
            "{line}"
        );
        assert_eq!(
            line.split_once(' ').unwrap().0,
            format!("{shared:08x}-{:08x}", shared + 2 * PAGE_SIZE),
            "one line for both pages"
        );
        // Unmapped: no longer listed.
        sys.munmap(anon, 3 * PAGE_SIZE).unwrap();
        assert!(!text(vfs, "/proc/self/maps").contains(&format!("{anon:08x}-")));
        let status = text(vfs, "/proc/self/status");
        assert!(status.contains("VmRSS:\t      12 kB\n"), "{status}");

        // Descriptors.
        assert_eq!(link(vfs, &format!("/proc/self/fd/{fd}")).unwrap(), "/data");
        assert!(listing(vfs, "/proc/self/fd").contains(&fd.to_string()));
        vfs.close(fd).unwrap();
        assert_eq!(
            link(vfs, &format!("/proc/self/fd/{fd}")),
            Err(Errno::ENOENT)
        );
        sys.munmap(private, PAGE_SIZE).unwrap();
        sys.munmap(shared, 2 * PAGE_SIZE).unwrap();
        done.set(true);
        0
    });
    assert_eq!(status, Some(0));
}

#[test]
fn processes_come_and_go_in_proc() {
    let w = world();
    let sys = w.sys;
    let vfs = vfs_for(sys);
    let status = w.run(move || {
        let me = sys.getpid().unwrap();
        let go = Rc::new(Cell::new(false));
        let g = go.clone();
        let (entry, arg) = boxed(move || {
            while !g.get() {
                uk_sched::yield_now();
            }
            0
        });
        let a = CloneArgs::from_legacy(CLONE_VM | CLONE_FS | CLONE_FILES | 17, 0, 0, 0, 0);
        let child = sys
            .clone(&a, Via::Clone, ChildStart::Call { entry, arg })
            .unwrap();
        let pids = listing(vfs, "/proc");
        assert!(pids.contains(&me.to_string()) && pids.contains(&child.to_string()));
        let stat = text(vfs, &format!("/proc/{child}/stat"));
        assert!(stat.starts_with(&format!("{child} (uk-rs) ")), "{stat}");
        assert!(stat.contains(&format!(") R {me} ")) || stat.contains(&format!(") S {me} ")));
        // What it was started as is its creator's, as after fork.
        assert_eq!(
            vfs.read_file(format!("/proc/{child}/cmdline")).unwrap(),
            b"main\0"
        );
        let open = vfs
            .open(format!("/proc/{child}/status"), O_RDONLY, 0)
            .unwrap();
        go.set(true);
        while sys.process_count() > 1 {
            uk_sched::yield_now();
        }
        // Ended, not waited for: a zombie, listed with state Z and no threads.
        assert!(listing(vfs, "/proc").contains(&child.to_string()));
        let stat = text(vfs, &format!("/proc/{child}/stat"));
        assert!(stat.starts_with(&format!("{child} () Z {me} ")), "{stat}");
        let status = text(vfs, &format!("/proc/{child}/status"));
        assert!(status.contains("State:\tZ (zombie)\n") && status.contains("Threads:\t0\n"));
        assert_eq!(text(vfs, &format!("/proc/{child}/maps")), "");
        assert_eq!(
            listing(vfs, &format!("/proc/{child}/task")),
            Vec::<String>::new()
        );
        assert_eq!(
            listing(vfs, &format!("/proc/{child}/fd")),
            Vec::<String>::new(),
            "no descriptors"
        );
        // Waited for: gone.
        assert_eq!(sys.wait4(child, 0).unwrap().map(|r| r.pid), Some(child));
        assert_eq!(vfs.stat(format!("/proc/{child}")), Err(Errno::ENOENT));
        assert!(!listing(vfs, "/proc").contains(&child.to_string()));
        assert_eq!(vfs.read(open, &mut [0u8; 64]), Err(Errno::ESRCH));
        assert_eq!(
            vfs.open(format!("/proc/{child}/stat"), O_RDONLY, 0),
            Err(Errno::ENOENT)
        );
        0
    });
    assert_eq!(status, Some(0));
}

#[test]
fn the_system_files_match_sysinfo_and_uname() {
    let w = world();
    let sys = w.sys;
    let vfs = vfs_for(sys);
    let status = w.run(move || {
        let uts = uname();
        let field = |f: &[u8]| {
            let end = f.iter().position(|&c| c == 0).unwrap();
            String::from_utf8(f[..end].to_vec()).unwrap()
        };
        let version = text(vfs, "/proc/version");
        assert_eq!(
            version,
            format!(
                "Linux version {} (root@{}) (rustc) {}\n",
                field(&uts.release),
                field(&uts.nodename),
                field(&uts.version)
            )
        );
        assert_eq!(text(vfs, "/proc/cpuinfo"), "processor\t: 0\n\n");
        let meminfo = text(vfs, "/proc/meminfo");
        let info = sys.sysinfo();
        assert!(meminfo.starts_with(&format!("MemTotal:       {:8} kB\n", info.totalram / 1024)));
        assert!(text(vfs, "/proc/uptime").ends_with(" 0.00\n"));
        assert_eq!(
            text(vfs, "/proc/mounts"),
            "ramfs / ramfs rw 0 0\ndevfs /dev devfs rw 0 0\nproc /proc proc rw 0 0\n"
        );
        0
    });
    assert_eq!(status, Some(0));
}
