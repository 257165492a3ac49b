//! Host benchmarks of uk-vfs against Linux tmpfs (`/dev/shm`), in one run.
//!
//! Each operation runs three ways: the typed API (`direct`), the registered syscall
//! handlers through `uk_syscall::dispatch` with raw pointers (`syscall`, what a binary
//! reaches), and the same system call on a file in Linux tmpfs (`tmpfs`). Operations:
//! `open`+`close` of `/bench/dir/file`, `stat` of it, a 4 KiB `pread`, a 4 KiB `pwrite`, and
//! `getdents64` over a directory of 1 000 entries (rewind and list all with a 64 KiB
//! buffer). Before divan runs, the mean TSC cycles of `open`, `close` and `stat` on the typed API are
//! printed from the time stamp counter.
//!
//! Run with `cargo bench -p uk-vfs`.

use std::ffi::CString;
use std::sync::OnceLock;

use divan::{Bencher, black_box};
use uk_syscall::{Sysno, dispatch};
use uk_vfs::*;

const FILE: &str = "/bench/dir/file";
const BIG_DIR: &str = "/bench/big";

fn main() {
    print_open_cycles();
    divan::main();
}

fn prepare(vfs: &Vfs) {
    vfs.mkdir_all("/bench/dir").unwrap();
    vfs.write_file(FILE, &[7u8; 8192], 0o644).unwrap();
    vfs.mkdir_all(BIG_DIR).unwrap();
    for i in 0..1000 {
        vfs.write_file(format!("{BIG_DIR}/entry-{i:04}"), b"", 0o644)
            .unwrap();
    }
}

fn direct() -> &'static Vfs {
    static V: OnceLock<Vfs> = OnceLock::new();
    V.get_or_init(|| {
        let v = Vfs::new(RamFs::new());
        prepare(&v);
        v
    })
}

fn global() -> &'static Vfs {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| prepare(global::vfs()));
    global::vfs()
}

/// The tmpfs twin of the tree, under a fresh directory in /dev/shm.
fn tmpfs() -> &'static str {
    static ROOT: OnceLock<String> = OnceLock::new();
    ROOT.get_or_init(|| {
        let root = format!("/dev/shm/uk-vfs-bench-{}", std::process::id());
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(format!("{root}/bench/dir")).unwrap();
        std::fs::write(format!("{root}{FILE}"), [7u8; 8192]).unwrap();
        std::fs::create_dir_all(format!("{root}{BIG_DIR}")).unwrap();
        for i in 0..1000 {
            std::fs::write(format!("{root}{BIG_DIR}/entry-{i:04}"), b"").unwrap();
        }
        root
    })
}

fn host_path(p: &str) -> CString {
    CString::new(format!("{}{p}", tmpfs())).unwrap()
}

fn sys(n: Sysno, a: [usize; 6]) -> isize {
    dispatch(n as usize, &a)
}

#[cfg(target_arch = "x86_64")]
fn print_open_cycles() {
    fn tsc() -> u64 {
        // SAFETY: rdtsc has no preconditions on x86_64.
        unsafe { core::arch::x86_64::_rdtsc() }
    }
    let v = direct();
    let (mut open, mut close, mut stat) = (0u64, 0u64, 0u64);
    // Batches of 8 descriptors keep the table and the open files in the cache, as a
    // program that opens and closes files as it goes does.
    let mut fds = [0; 8];
    let rounds = 25_000u64;
    for _ in 0..rounds {
        let t0 = tsc();
        for fd in fds.iter_mut() {
            *fd = v.open(black_box(FILE), O_RDONLY, 0).unwrap();
        }
        let t1 = tsc();
        for &fd in &fds {
            v.close(fd).unwrap();
        }
        let t2 = tsc();
        for _ in 0..fds.len() {
            black_box(v.stat(black_box(FILE)).unwrap());
        }
        let t3 = tsc();
        open += t1 - t0;
        close += t2 - t1;
        stat += t3 - t2;
    }
    let per = |total: u64| total / (rounds * fds.len() as u64);
    println!(
        "uk-vfs typed API, path {FILE}: open {} TSC cycles, close {}, stat {}",
        per(open),
        per(close),
        per(stat)
    );
}

#[cfg(not(target_arch = "x86_64"))]
fn print_open_cycles() {}

mod open_close {
    use super::*;

    #[divan::bench]
    fn direct(b: Bencher) {
        let v = super::direct();
        b.bench(|| {
            let fd = v.open(black_box(FILE), O_RDONLY, 0).unwrap();
            v.close(fd).unwrap();
        });
    }

    #[divan::bench]
    fn syscall(b: Bencher) {
        global();
        let p = CString::new(FILE).unwrap();
        b.bench(|| {
            let fd = sys(
                Sysno::openat,
                [
                    AT_FDCWD as usize,
                    black_box(p.as_ptr()) as usize,
                    0,
                    0,
                    0,
                    0,
                ],
            );
            sys(Sysno::close, [fd as usize, 0, 0, 0, 0, 0]);
        });
    }

    #[divan::bench]
    fn tmpfs(b: Bencher) {
        let p = host_path(FILE);
        b.bench(|| {
            // SAFETY: a valid NUL-terminated path; the descriptor is closed right away.
            unsafe {
                let fd = libc::open(black_box(p.as_ptr()), libc::O_RDONLY);
                libc::close(fd);
            }
        });
    }
}

mod stat {
    use super::*;

    #[divan::bench]
    fn direct(b: Bencher) {
        let v = super::direct();
        b.bench(|| v.stat(black_box(FILE)).unwrap());
    }

    #[divan::bench]
    fn syscall(b: Bencher) {
        global();
        let p = CString::new(FILE).unwrap();
        let mut st = [0u8; 256];
        b.bench_local(|| {
            sys(
                Sysno::newfstatat,
                [
                    AT_FDCWD as usize,
                    black_box(p.as_ptr()) as usize,
                    st.as_mut_ptr() as usize,
                    0,
                    0,
                    0,
                ],
            )
        });
    }

    #[divan::bench]
    fn tmpfs(b: Bencher) {
        let p = host_path(FILE);
        b.bench(|| {
            // SAFETY: a valid path and a `stat` record to fill.
            unsafe {
                let mut st: libc::stat = std::mem::zeroed();
                libc::stat(black_box(p.as_ptr()), &mut st)
            }
        });
    }
}

mod read_4k {
    use super::*;

    #[divan::bench]
    fn direct(b: Bencher) {
        let v = super::direct();
        let fd = v.open(FILE, O_RDONLY, 0).unwrap();
        let mut buf = [0u8; 4096];
        b.bench_local(|| v.pread(fd, black_box(&mut buf), 0).unwrap());
    }

    #[divan::bench]
    fn syscall(b: Bencher) {
        let fd = global().open(FILE, O_RDONLY, 0).unwrap();
        let mut buf = [0u8; 4096];
        b.bench_local(|| {
            sys(
                Sysno::pread64,
                [
                    fd as usize,
                    black_box(buf.as_mut_ptr()) as usize,
                    4096,
                    0,
                    0,
                    0,
                ],
            )
        });
    }

    #[divan::bench]
    fn tmpfs(b: Bencher) {
        let p = host_path(FILE);
        // SAFETY: a valid path.
        let fd = unsafe { libc::open(p.as_ptr(), libc::O_RDONLY) };
        let mut buf = [0u8; 4096];
        // SAFETY: `buf` holds 4096 bytes.
        b.bench_local(|| unsafe { libc::pread(fd, black_box(buf.as_mut_ptr()).cast(), 4096, 0) });
    }
}

mod write_4k {
    use super::*;

    #[divan::bench]
    fn direct(b: Bencher) {
        let v = super::direct();
        let fd = v.open(FILE, O_RDWR, 0).unwrap();
        let buf = [1u8; 4096];
        b.bench_local(|| v.pwrite(fd, black_box(&buf), 0).unwrap());
    }

    #[divan::bench]
    fn syscall(b: Bencher) {
        let fd = global().open(FILE, O_RDWR, 0).unwrap();
        let buf = [1u8; 4096];
        b.bench_local(|| {
            sys(
                Sysno::pwrite64,
                [fd as usize, black_box(buf.as_ptr()) as usize, 4096, 0, 0, 0],
            )
        });
    }

    #[divan::bench]
    fn tmpfs(b: Bencher) {
        let p = host_path(FILE);
        // SAFETY: a valid path.
        let fd = unsafe { libc::open(p.as_ptr(), libc::O_RDWR) };
        let buf = [1u8; 4096];
        // SAFETY: `buf` holds 4096 bytes.
        b.bench_local(|| unsafe { libc::pwrite(fd, black_box(buf.as_ptr()).cast(), 4096, 0) });
    }
}

mod getdents64_1000 {
    use super::*;

    #[divan::bench]
    fn direct(b: Bencher) {
        let v = super::direct();
        let fd = v.open(BIG_DIR, O_RDONLY | O_DIRECTORY, 0).unwrap();
        let mut buf = vec![0u8; 65536];
        b.bench_local(|| {
            v.lseek(fd, 0, SEEK_SET).unwrap();
            let n = v.getdents64(fd, black_box(&mut buf)).unwrap();
            assert!(n > 1000 * 24);
        });
    }

    #[divan::bench]
    fn syscall(b: Bencher) {
        let fd = global().open(BIG_DIR, O_RDONLY | O_DIRECTORY, 0).unwrap() as usize;
        let mut buf = vec![0u8; 65536];
        b.bench_local(|| {
            sys(Sysno::lseek, [fd, 0, 0, 0, 0, 0]);
            let n = sys(
                Sysno::getdents64,
                [fd, black_box(buf.as_mut_ptr()) as usize, 65536, 0, 0, 0],
            );
            assert!(n > 1000 * 24);
        });
    }

    #[divan::bench]
    fn tmpfs(b: Bencher) {
        let p = host_path(BIG_DIR);
        // SAFETY: a valid path.
        let fd = unsafe { libc::open(p.as_ptr(), libc::O_RDONLY | libc::O_DIRECTORY) };
        let mut buf = vec![0u8; 65536];
        b.bench_local(|| {
            // SAFETY: `buf` holds 65536 bytes; `fd` is a directory this bench opened.
            let n = unsafe {
                libc::lseek(fd, 0, libc::SEEK_SET);
                libc::syscall(libc::SYS_getdents64, fd, black_box(buf.as_mut_ptr()), 65536)
            };
            assert!(n > 1000 * 24);
        });
    }
}
