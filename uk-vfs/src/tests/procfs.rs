//! procfs against a fake process layer: formats, errors, links, listings, refusals.

use alloc::boxed::Box;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec;
use alloc::vec::Vec;

use spin::{Mutex, Once};

use crate::procfs::{MapEntry, ProcFs, ProcSource, ProcessInfo, SystemInfo, ThreadInfo};
use crate::*;

/// A process layer with processes set by the test.
struct Fake {
    vfs: Once<&'static Vfs>,
    procs: Mutex<Vec<ProcessInfo>>,
    caller: Mutex<Option<(u32, u32)>>,
    maps: Vec<MapEntry>,
}

impl ProcSource for Fake {
    fn pids(&self) -> Vec<u32> {
        let mut pids: Vec<u32> = self.procs.lock().iter().map(|p| p.pid).collect();
        pids.sort_unstable();
        pids
    }
    fn caller(&self) -> Option<(u32, u32)> {
        *self.caller.lock()
    }
    fn process(&self, pid: u32) -> Option<ProcessInfo> {
        self.procs.lock().iter().find(|p| p.pid == pid).cloned()
    }
    fn maps(&self, pid: u32) -> Option<Vec<MapEntry>> {
        self.process(pid).map(|_| self.maps.clone())
    }
    fn files(&self, pid: u32) -> Option<&Vfs> {
        self.process(pid)?;
        self.vfs.get().copied()
    }
    fn system(&self) -> SystemInfo {
        SystemInfo {
            mem_total: 100 << 20,
            mem_free: 60 << 20,
            uptime_ns: 12_345_678_901,
            cpus: 2,
            sysname: "Linux".into(),
            nodename: "uk-rs".into(),
            release: "6.1.0-uk-rs".into(),
            version: "uk-rs 0.1.0".into(),
            machine: "x86_64".into(),
        }
    }
}

fn thread(tid: u32, name: &[u8], runnable: bool) -> ThreadInfo {
    ThreadInfo {
        tid,
        name: name.to_vec(),
        runnable,
        blocked: 1 << 9,
        pending: 0,
        cpu_ns: 250_000_000,
        nice: 0,
        policy: 0,
        voluntary_switches: 3,
        involuntary_switches: 4,
    }
}

fn process(pid: u32, ppid: u32, tids: &[u32]) -> ProcessInfo {
    ProcessInfo {
        pid,
        ppid,
        pgid: 0,
        sid: 0,
        threads: tids.iter().map(|&t| thread(t, b"prog", t == pid)).collect(),
        cmdline: b"prog\0-v\0".to_vec(),
        exe: b"prog".to_vec(),
        cpu_ns: 1_500_000_000,
        vm_bytes: 400 << 10,
        vm_peak_bytes: 800 << 10,
        pending: 0,
        ignored: 1 << 12,
        caught: 1 << 9 | 1 << 11,
        zombie: false,
    }
}

/// A VFS with a ramfs root, devfs on `/dev`, `/etc/motd`, and procfs on `/proc` showing
/// processes 1 (threads 1, 3) and 7 (threads 7, 8); the caller is thread 8 of 7.
fn world() -> (&'static Vfs, &'static Fake) {
    let fake: &'static Fake = Box::leak(Box::new(Fake {
        vfs: Once::new(),
        procs: Mutex::new(vec![process(1, 0, &[1, 3]), process(7, 1, &[7, 8])]),
        caller: Mutex::new(Some((7, 8))),
        maps: vec![
            MapEntry {
                start: 0x10_0000,
                end: 0x10_4000,
                read: true,
                write: true,
                shared: false,
                name: b"[heap]".to_vec(),
                ..MapEntry::default()
            },
            MapEntry {
                start: 0x20_0000,
                end: 0x20_2000,
                read: true,
                write: true,
                ..MapEntry::default()
            },
            MapEntry {
                start: 0x7f00_0000_1000,
                end: 0x7f00_0000_3000,
                read: true,
                write: true,
                shared: true,
                offset: 0x1000,
                dev: makedev(0, 5),
                ino: 42,
                name: b"/dev/shm/x".to_vec(),
                ..MapEntry::default()
            },
        ],
    }));
    let vfs: &'static Vfs = Box::leak(Box::new(Vfs::new(RamFs::new())));
    fake.vfs.call_once(|| vfs);
    vfs.mkdir("/dev", 0o755).unwrap();
    vfs.mount("/dev", DevFs::new()).unwrap();
    vfs.mkdir("/proc", 0o555).unwrap();
    vfs.mount("/proc", ProcFs::new(fake)).unwrap();
    vfs.mkdir("/etc", 0o755).unwrap();
    vfs.write_file("/etc/motd", b"hello", 0o644).unwrap();
    (vfs, fake)
}

fn text(vfs: &Vfs, path: &str) -> String {
    String::from_utf8(vfs.read_file(path).unwrap()).unwrap()
}

fn link(vfs: &Vfs, path: &str) -> Result<String, Errno> {
    let mut buf = [0u8; 256];
    let n = vfs.readlink(path, &mut buf)?;
    Ok(String::from_utf8(buf[..n].to_vec()).unwrap())
}

fn names(vfs: &Vfs, path: &str, chunk: usize) -> Vec<String> {
    let fd = vfs.open(path, O_RDONLY | O_DIRECTORY, 0).unwrap();
    let mut out = Vec::new();
    let mut buf = vec![0u8; chunk];
    loop {
        let n = vfs.getdents64(fd, &mut buf).unwrap();
        if n == 0 {
            break;
        }
        for d in dirents(&buf[..n]) {
            out.push(String::from_utf8(d.name.to_vec()).unwrap());
        }
    }
    vfs.close(fd).unwrap();
    out
}

#[test]
fn stat_has_linux_fields_in_order() {
    let (vfs, _) = world();
    let stat = text(vfs, "/proc/self/stat");
    assert!(stat.starts_with("7 (prog) R 1 0 0 0 -1 "), "{stat}");
    assert!(stat.ends_with('\n'));
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    // Fields 3 to 52.
    assert_eq!(fields.len(), 50, "{stat}");
    let field = |n: usize| fields[n - 3];
    assert_eq!(field(14), "150", "utime in ticks");
    assert_eq!(field(18), "20", "priority");
    assert_eq!(field(20), "2", "threads");
    assert_eq!(field(23), (400u64 << 10).to_string(), "vsize");
    assert_eq!(field(24), "100", "rss pages");
    assert_eq!(field(32), (1u64 << 9).to_string(), "blocked");
    assert_eq!(field(33), (1u64 << 12).to_string(), "ignored");
    assert_eq!(field(34), (1u64 << 9 | 1 << 11).to_string(), "caught");
    assert_eq!(field(38), "17", "exit signal");
    // A thread's own stat carries its id and its time.
    let t = text(vfs, "/proc/7/task/8/stat");
    assert!(t.starts_with("8 (prog) S 1 "), "{t}");
    assert_eq!(t.split_whitespace().nth(13), Some("25"));
}

#[test]
fn status_cmdline_comm_and_system_files() {
    let (vfs, _) = world();
    let status = text(vfs, "/proc/7/status");
    for line in [
        "Name:\tprog\n",
        "State:\tR (running)\n",
        "Tgid:\t7\n",
        "Pid:\t7\n",
        "PPid:\t1\n",
        "VmPeak:\t     800 kB\n",
        "VmRSS:\t     400 kB\n",
        "Threads:\t2\n",
        "SigBlk:\t0000000000000200\n",
        "SigIgn:\t0000000000001000\n",
        "SigCgt:\t0000000000000a00\n",
        "voluntary_ctxt_switches:\t3\n",
    ] {
        assert!(status.contains(line), "{line:?} missing from {status}");
    }
    assert!(text(vfs, "/proc/7/task/8/status").contains("\nPid:\t8\nPPid:\t1\n"));
    assert_eq!(vfs.read_file("/proc/7/cmdline").unwrap(), b"prog\0-v\0");
    assert_eq!(text(vfs, "/proc/self/comm"), "prog\n");
    assert_eq!(
        text(vfs, "/proc/meminfo"),
        "MemTotal:         102400 kB\nMemFree:           61440 kB\n\
         MemAvailable:      61440 kB\nBuffers:               0 kB\n\
         Cached:                0 kB\nSwapCached:            0 kB\n\
         SwapTotal:             0 kB\nSwapFree:              0 kB\n"
    );
    assert_eq!(text(vfs, "/proc/uptime"), "12.34 0.00\n");
    assert_eq!(
        text(vfs, "/proc/cpuinfo"),
        "processor\t: 0\n\nprocessor\t: 1\n\n"
    );
    assert_eq!(
        text(vfs, "/proc/version"),
        "Linux version 6.1.0-uk-rs (root@uk-rs) (rustc) uk-rs 0.1.0\n"
    );
}

#[test]
fn maps_lines_as_linux_prints_them() {
    let (vfs, _) = world();
    let maps = text(vfs, "/proc/self/maps");
    let lines: Vec<&str> = maps.lines().collect();
    assert_eq!(lines.len(), 3);
    assert_eq!(
        lines[0],
        "00100000-00104000 rw-p 00000000 00:00 0                                  [heap]"
    );
    assert_eq!(lines[0].find('['), Some(73));
    assert_eq!(lines[1], "00200000-00202000 rw-p 00000000 00:00 0 ");
    assert_eq!(
        lines[2],
        "7f0000001000-7f0000003000 rw-s 00001000 00:05 42                         /dev/shm/x"
    );
}

#[test]
fn mounts_list_the_vfs_mounts() {
    let (vfs, _) = world();
    assert_eq!(link(vfs, "/proc/mounts").unwrap(), "self/mounts");
    assert_eq!(
        text(vfs, "/proc/mounts"),
        "ramfs / ramfs rw 0 0\ndevfs /dev devfs rw 0 0\nproc /proc proc rw 0 0\n"
    );
}

#[test]
fn self_links_follow_the_caller() {
    let (vfs, fake) = world();
    assert_eq!(link(vfs, "/proc/self").unwrap(), "7");
    assert_eq!(link(vfs, "/proc/thread-self").unwrap(), "7/task/8");
    assert_eq!(link(vfs, "/proc/self/exe").unwrap(), "prog");
    assert_eq!(vfs.lstat("/proc/self").unwrap().mode & S_IFMT, S_IFLNK);
    assert_eq!(vfs.stat("/proc/self").unwrap().mode & S_IFMT, S_IFDIR);
    *fake.caller.lock() = Some((1, 3));
    assert_eq!(link(vfs, "/proc/self").unwrap(), "1");
    assert!(text(vfs, "/proc/thread-self/stat").starts_with("3 (prog) S 0 "));
    *fake.caller.lock() = None;
    assert_eq!(link(vfs, "/proc/self"), Err(Errno::ENOENT));
    assert_eq!(vfs.open("/proc/self/stat", O_RDONLY, 0), Err(Errno::ENOENT));
}

#[test]
fn fd_links_name_what_is_open() {
    let (vfs, _) = world();
    let file = vfs.open("/etc/motd", O_RDONLY, 0).unwrap();
    let dir = vfs.open("/etc", O_RDONLY | O_DIRECTORY, 0).unwrap();
    let null = vfs.open("/dev/../dev/./null", O_WRONLY, 0).unwrap();
    let [r, w] = vfs.pipe2(0).unwrap();
    let efd = vfs.eventfd2(0, 0).unwrap();
    let ep = vfs.epoll_create1(0).unwrap();
    let mfd = vfs.memfd_create(b"buf", 0).unwrap();
    vfs.symlink("/etc/motd", "/motd-link").unwrap();
    let via_link = vfs.open("/motd-link", O_RDONLY, 0).unwrap();
    let created = vfs.open("/etc/new", O_CREAT | O_WRONLY, 0o644).unwrap();
    let fd = |n: Fd| format!("/proc/self/fd/{n}");
    assert_eq!(link(vfs, &fd(file)).unwrap(), "/etc/motd");
    assert_eq!(link(vfs, &fd(dir)).unwrap(), "/etc");
    assert_eq!(link(vfs, &fd(null)).unwrap(), "/dev/null");
    let ino = vfs.fstat(r).unwrap().ino;
    assert_eq!(link(vfs, &fd(r)).unwrap(), format!("pipe:[{ino}]"));
    assert_eq!(link(vfs, &fd(w)).unwrap(), format!("pipe:[{ino}]"));
    assert_eq!(link(vfs, &fd(efd)).unwrap(), "anon_inode:[eventfd]");
    assert_eq!(link(vfs, &fd(ep)).unwrap(), "anon_inode:[eventpoll]");
    assert_eq!(link(vfs, &fd(mfd)).unwrap(), "/memfd:buf (deleted)");
    assert_eq!(link(vfs, &fd(via_link)).unwrap(), "/etc/motd");
    assert_eq!(link(vfs, &fd(created)).unwrap(), "/etc/new");
    assert_eq!(link(vfs, "/proc/self/fd/99"), Err(Errno::ENOENT));
    assert_eq!(link(vfs, "/proc/self/fd/01"), Err(Errno::ENOENT));
    // The listing holds exactly the open descriptors.
    let listed = names(vfs, "/proc/7/fd", 4096);
    let mut want: Vec<String> = vec![".".into(), "..".into()];
    want.extend(vfs.fd_numbers().iter().map(|n| n.to_string()));
    // The listing's own descriptor, the lowest free one.
    want.push(vfs.fd_numbers().len().to_string());
    assert_eq!(listed, want);
    // A rename is followed; an unlinked file is "(deleted)" and still opens through its
    // link, as Linux's magic links do.
    vfs.rename("/etc/motd", "/etc/motd2").unwrap();
    assert_eq!(link(vfs, &fd(file)).unwrap(), "/etc/motd2");
    vfs.unlink("/etc/motd2").unwrap();
    assert_eq!(link(vfs, &fd(file)).unwrap(), "/etc/motd (deleted)");
    let again = vfs.open(fd(file), O_RDONLY, 0).unwrap();
    let mut buf = [0u8; 8];
    assert_eq!(vfs.read(again, &mut buf).unwrap(), 5);
    assert_eq!(&buf[..5], b"hello");
    assert_eq!(link(vfs, &fd(again)).unwrap(), "/etc/motd (deleted)");
    // With O_CREAT too: the open file, nothing made in /etc.
    let before = vfs.read_file("/etc/new").map(|_| ());
    let created_again = vfs.open(fd(file), O_CREAT | O_RDWR, 0o644).unwrap();
    assert_eq!(
        vfs.fstat(created_again).unwrap().ino,
        vfs.fstat(file).unwrap().ino
    );
    assert_eq!(vfs.stat("/etc/motd (deleted)"), Err(Errno::ENOENT));
    assert_eq!(vfs.read_file("/etc/new").map(|_| ()), before);
    assert_eq!(
        vfs.open(fd(file), O_CREAT | O_EXCL | O_RDWR, 0o644),
        Err(Errno::EEXIST)
    );
    assert_eq!(
        vfs.open(format!("/proc/self/fd/{dir}"), O_CREAT | O_RDWR, 0o644),
        Err(Errno::EISDIR)
    );
    assert_eq!(
        vfs.stat(fd(again)).unwrap().ino,
        vfs.fstat(file).unwrap().ino
    );
    assert_eq!(vfs.lstat(fd(again)).unwrap().mode, S_IFLNK | 0o500);
    assert_eq!(vfs.lstat(fd(created)).unwrap().mode, S_IFLNK | 0o300);
    assert_eq!(vfs.lstat(fd(mfd)).unwrap().mode, S_IFLNK | 0o700);
    // A pipe cannot be reopened by its link.
    assert_eq!(vfs.open(fd(r), O_RDONLY, 0), Err(Errno::ENOENT));
    // A closed descriptor's link is gone.
    vfs.close(null).unwrap();
    assert_eq!(link(vfs, &fd(null)), Err(Errno::ENOENT));
    // A procfs file's own descriptor.
    let me = vfs.open("/proc/meminfo", O_RDONLY, 0).unwrap();
    assert_eq!(link(vfs, &fd(me)).unwrap(), "/proc/meminfo");
}

#[test]
fn listings_hold_the_processes_and_resume_anywhere() {
    let (vfs, fake) = world();
    let whole = names(vfs, "/proc", 4096);
    assert_eq!(
        whole,
        [
            ".",
            "..",
            "cpuinfo",
            "meminfo",
            "mounts",
            "self",
            "thread-self",
            "uptime",
            "version",
            "1",
            "7"
        ]
    );
    // Resumed after every record (buffers of one record), the same names.
    assert_eq!(names(vfs, "/proc", 32), whole);
    assert_eq!(
        names(vfs, "/proc/7", 4096)[2..],
        [
            "cmdline", "comm", "exe", "fd", "maps", "mounts", "stat", "status", "task"
        ]
    );
    assert_eq!(names(vfs, "/proc/7/task", 4096)[2..], ["7", "8"]);
    assert_eq!(
        names(vfs, "/proc/7/task/8", 4096)[2..],
        ["comm", "stat", "status"]
    );
    // A listing positioned before a process that leaves, then resumed: the process is
    // not listed, and nothing is repeated.
    let fd = vfs.open("/proc", O_RDONLY | O_DIRECTORY, 0).unwrap();
    // Room for `.`, `..` and the seven fixed entries, not for `1`.
    let mut buf = vec![0u8; 264];
    let n = vfs.getdents64(fd, &mut buf).unwrap();
    let first: Vec<Vec<u8>> = dirents(&buf[..n]).map(|d| d.name.to_vec()).collect();
    assert!(!first.contains(&b"1".to_vec()));
    fake.procs.lock().retain(|p| p.pid != 1);
    fake.procs.lock().push(process(12, 7, &[12]));
    let mut rest = Vec::new();
    loop {
        let n = vfs.getdents64(fd, &mut buf).unwrap();
        if n == 0 {
            break;
        }
        rest.extend(dirents(&buf[..n]).map(|d| d.name.to_vec()));
    }
    let mut all = first;
    all.extend(rest);
    assert!(all.contains(&b"7".to_vec()) && all.contains(&b"12".to_vec()));
    assert!(!all.contains(&b"1".to_vec()));
    let mut dedup = all.clone();
    dedup.sort();
    dedup.dedup();
    assert_eq!(dedup.len(), all.len());
    // Directory types in the records.
    let st = vfs.stat("/proc/7").unwrap();
    assert_eq!(st.mode, S_IFDIR | 0o555);
    assert_eq!(vfs.stat("/proc/7/stat").unwrap().mode, S_IFREG | 0o444);
    assert_eq!(vfs.stat("/proc/7/stat").unwrap().size, 0);
}

#[test]
fn a_process_that_is_gone_is_enoent_and_its_open_files_esrch() {
    let (vfs, fake) = world();
    let stat = vfs.open("/proc/1/stat", O_RDONLY, 0).unwrap();
    let dir = vfs.open("/proc/1", O_RDONLY | O_DIRECTORY, 0).unwrap();
    vfs.chdir("/proc/1/task").unwrap();
    assert_eq!(vfs.cwd().unwrap(), b"/proc/1/task");
    fake.procs.lock().retain(|p| p.pid != 1);
    assert_eq!(vfs.stat("/proc/1"), Err(Errno::ENOENT));
    assert_eq!(vfs.open("/proc/1/stat", O_RDONLY, 0), Err(Errno::ENOENT));
    assert_eq!(vfs.read(stat, &mut [0u8; 64]), Err(Errno::ESRCH));
    assert_eq!(vfs.getdents64(dir, &mut [0u8; 512]), Err(Errno::ENOENT));
    assert_eq!(vfs.stat("1"), Err(Errno::ENOENT));
    assert_eq!(vfs.stat("/proc/99/stat"), Err(Errno::ENOENT));
    assert_eq!(vfs.stat("/proc/7/task/9"), Err(Errno::ENOENT));
    assert_eq!(vfs.stat("/proc/7/nothing"), Err(Errno::ENOENT));
    assert_eq!(vfs.stat("/proc/07"), Err(Errno::ENOENT));
    assert_eq!(vfs.stat("/proc/7/stat/x"), Err(Errno::ENOTDIR));
    // A zombie: state Z, no threads, no descriptors.
    fake.procs.lock().push(ProcessInfo {
        pid: 5,
        ppid: 7,
        zombie: true,
        ..ProcessInfo::default()
    });
    assert!(text(vfs, "/proc/5/stat").starts_with("5 () Z 7 "));
    assert!(text(vfs, "/proc/5/status").contains("\nState:\tZ (zombie)\n"));
}

#[test]
fn a_snapshot_is_taken_at_the_first_read() {
    let (vfs, fake) = world();
    let fd = vfs.open("/proc/7/status", O_RDONLY, 0).unwrap();
    let mut first = [0u8; 10];
    assert_eq!(vfs.read(fd, &mut first).unwrap(), 10);
    fake.procs.lock()[1].ppid = 5;
    let mut rest = vec![0u8; 4096];
    let n = vfs.read(fd, &mut rest).unwrap();
    let mut whole = first.to_vec();
    whole.extend_from_slice(&rest[..n]);
    assert!(String::from_utf8(whole).unwrap().contains("PPid:\t1\n"));
    // A new open sees the change.
    assert!(text(vfs, "/proc/7/status").contains("PPid:\t5\n"));
}

#[test]
fn everything_is_read_only_with_linux_errors() {
    let (vfs, _) = world();
    let before = names(vfs, "/proc", 4096);
    // Root may open for writing, as on Linux; writes fail with EIO.
    let fd = vfs.open("/proc/meminfo", O_WRONLY, 0).unwrap();
    assert_eq!(vfs.write(fd, b"1"), Err(Errno::EIO));
    let fd = vfs.open("/proc/self/stat", O_RDWR | O_APPEND, 0).unwrap();
    assert_eq!(vfs.write(fd, b"1"), Err(Errno::EIO));
    assert_eq!(vfs.pwrite(fd, b"1", 0), Err(Errno::EIO));
    // No negative entries: a new name is ENOENT, an existing one EEXIST.
    assert_eq!(
        vfs.open("/proc/new", O_CREAT | O_WRONLY, 0o644),
        Err(Errno::ENOENT)
    );
    assert_eq!(
        vfs.open("/proc/self/new", O_CREAT | O_WRONLY, 0o644),
        Err(Errno::ENOENT)
    );
    assert_eq!(
        vfs.open("/proc/meminfo", O_CREAT | O_EXCL | O_WRONLY, 0o644),
        Err(Errno::EEXIST)
    );
    assert_eq!(vfs.mkdir("/proc/x", 0o755), Err(Errno::ENOENT));
    assert_eq!(vfs.mkdir("/proc/self/fd/x", 0o755), Err(Errno::ENOENT));
    assert_eq!(vfs.symlink("a", "/proc/x"), Err(Errno::ENOENT));
    assert_eq!(vfs.link("/etc/motd", "/proc/y"), Err(Errno::EXDEV));
    assert_eq!(vfs.unlink("/proc/meminfo"), Err(Errno::EPERM));
    assert_eq!(vfs.unlink("/proc/self"), Err(Errno::EPERM));
    assert_eq!(vfs.unlink("/proc/nothing"), Err(Errno::ENOENT));
    assert_eq!(vfs.rmdir("/proc/7"), Err(Errno::EPERM));
    assert_eq!(vfs.rmdir("/proc/7/fd"), Err(Errno::EPERM));
    assert_eq!(vfs.rename("/proc/meminfo", "/proc/x"), Err(Errno::ENOENT));
    assert_eq!(
        vfs.rename("/proc/meminfo", "/proc/version"),
        Err(Errno::EPERM)
    );
    assert_eq!(vfs.chmod("/proc/meminfo", 0o666), Err(Errno::EPERM));
    assert_eq!(vfs.chown("/proc/meminfo", 1, 1), Err(Errno::EPERM));
    // Truncation succeeds and changes nothing, as on Linux.
    vfs.truncate("/proc/meminfo", 0).unwrap();
    let fd = vfs.open("/proc/meminfo", O_WRONLY | O_TRUNC, 0).unwrap();
    vfs.close(fd).unwrap();
    assert!(text(vfs, "/proc/meminfo").starts_with("MemTotal:"));
    assert_eq!(names(vfs, "/proc", 4096), before);
    assert_eq!(
        vfs.statfs("/proc").unwrap().fs_type,
        crate::procfs::PROC_SUPER_MAGIC
    );
    // Not mappable.
    let fd = vfs.open("/proc/meminfo", O_RDONLY, 0).unwrap();
    assert_eq!(
        vfs.map_check(fd, 0, 1, false, false).err(),
        Some(Errno::ENODEV)
    );
}
