//! End to end: uk-vfs → NinePFs → Client → Loopback → the std::fs server → a host
//! directory, checked both through the VFS and on the host.

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::sync::{Arc, Mutex};
use std::vec::Vec;
use std::{format, fs, vec};

use uk_vfs::*;

use super::server::{Cookies, Loopback, Server, TempDir};
use crate::NinePFs;
use crate::wire::{TFSYNC, TREAD, TREADDIR, TSETATTR, TWRITE};

struct Setup {
    vfs: Vfs,
    fs: Arc<NinePFs>,
    server: Arc<Mutex<Server>>,
    dir: TempDir,
}

fn setup_with(label: &str, cookies: Cookies, max: usize) -> Setup {
    let dir = TempDir::new(label);
    let server = Arc::new(Mutex::new(Server::new(dir.path(), cookies)));
    let fs = NinePFs::mount(Loopback::new(&server, max), b"").unwrap();
    let vfs = Vfs::new(RamFs::new());
    vfs.mkdir("/host", 0o755).unwrap();
    vfs.mount("/host", fs.clone()).unwrap();
    Setup {
        vfs,
        fs,
        server,
        dir,
    }
}

fn setup(label: &str) -> Setup {
    setup_with(label, Cookies::Index, 64 * 1024)
}

fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 7 + i / 251) as u8).collect()
}

fn write_all(vfs: &Vfs, fd: Fd, data: &[u8]) {
    let mut done = 0;
    while done < data.len() {
        let n = vfs.write(fd, &data[done..]).unwrap();
        assert!(n > 0);
        done += n;
    }
}

/// `(d_ino, d_off, d_type, name)` of each `linux_dirent64` record.
fn parse_dirents(buf: &[u8]) -> Vec<(u64, u64, u8, Vec<u8>)> {
    let mut out = vec![];
    let mut at = 0;
    while at < buf.len() {
        let ino = u64::from_ne_bytes(buf[at..at + 8].try_into().unwrap());
        let off = u64::from_ne_bytes(buf[at + 8..at + 16].try_into().unwrap());
        let reclen = u16::from_ne_bytes(buf[at + 16..at + 18].try_into().unwrap()) as usize;
        let dtype = buf[at + 18];
        let name = &buf[at + 19..at + reclen];
        let end = name.iter().position(|&c| c == 0).unwrap();
        out.push((ino, off, dtype, name[..end].to_vec()));
        at += reclen;
    }
    out
}

fn list(vfs: &Vfs, path: &str, bufsize: usize) -> Vec<(u64, u64, u8, Vec<u8>)> {
    let fd = vfs.open(path, O_RDONLY | O_DIRECTORY, 0).unwrap();
    let mut buf = vec![0u8; bufsize];
    let mut out = vec![];
    loop {
        let n = vfs.getdents64(fd, &mut buf).unwrap();
        if n == 0 {
            break;
        }
        out.extend(parse_dirents(&buf[..n]));
    }
    vfs.close(fd).unwrap();
    out
}

#[test]
fn large_file_round_trip_splits_io_and_lands_on_the_host() {
    // An 8 KiB transport: msize 8192, so 200 000 bytes take ~25 writes and reads.
    let s = setup_with("large", Cookies::Index, 8192);
    assert_eq!(s.fs.msize(), 8192);
    let data = pattern(200_000);
    let fd = s.vfs.open("/host/big", O_CREAT | O_RDWR, 0o644).unwrap();
    write_all(&s.vfs, fd, &data);
    let writes = s.server.lock().unwrap().count(TWRITE);
    assert!(
        writes >= 200_000usize.div_ceil(8192 - 23),
        "{writes} Twrite messages"
    );
    // One pread of the whole file, split into many Treads by the client.
    let mut back = vec![0u8; 250_000];
    let before = s.server.lock().unwrap().count(TREAD);
    let n = s.vfs.pread(fd, &mut back, 0).unwrap();
    assert_eq!(n, 200_000);
    assert_eq!(&back[..n], &data[..]);
    let reads = s.server.lock().unwrap().count(TREAD) - before;
    assert!(
        reads >= 200_000usize.div_ceil(8192 - 11),
        "{reads} Tread messages"
    );
    // No request ever exceeded msize (the server refuses those with EMSGSIZE).
    assert!(s.server.lock().unwrap().largest_request <= 8192);
    // A read at an unaligned offset across message boundaries.
    let mut mid = vec![0u8; 20_000];
    assert_eq!(s.vfs.pread(fd, &mut mid, 12_345).unwrap(), 20_000);
    assert_eq!(mid, data[12_345..32_345]);
    // At and past the end.
    assert_eq!(s.vfs.pread(fd, &mut mid, 200_000).unwrap(), 0);
    assert_eq!(s.vfs.pread(fd, &mut mid, 199_990).unwrap(), 10);
    s.vfs.close(fd).unwrap();

    let st = s.vfs.stat("/host/big").unwrap();
    assert_eq!(st.size, 200_000);
    assert_eq!(st.file_type(), Some(FileType::Regular));
    assert_eq!(st.mode & 0o777, 0o644);
    let host = s.dir.path().join("big");
    assert_eq!(fs::read(&host).unwrap(), data);
    assert_eq!(st.ino, fs::metadata(&host).unwrap().ino());
    // read_file asks for the whole file at once: the client splits it into messages, so
    // 200 000 bytes at msize 8192 take ~25 Treads plus the one that finds the end, not one
    // per 4 KiB.
    let before = s.server.lock().unwrap().count(TREAD);
    assert_eq!(s.vfs.read_file("/host/big").unwrap(), data);
    let reads = s.server.lock().unwrap().count(TREAD) - before;
    assert!(
        reads <= 200_000usize.div_ceil(8192 - 11) + 1,
        "{reads} Tread messages"
    );
}

#[test]
fn stat_reports_types_and_host_files_are_visible() {
    let s = setup("stat");
    fs::write(s.dir.path().join("from-host"), b"hello from the host").unwrap();
    fs::create_dir(s.dir.path().join("hd")).unwrap();
    assert_eq!(
        s.vfs.read_file("/host/from-host").unwrap(),
        b"hello from the host"
    );
    let st = s.vfs.stat("/host/from-host").unwrap();
    assert_eq!(st.size, 19);
    assert_eq!(st.file_type(), Some(FileType::Regular));
    let meta = fs::metadata(s.dir.path().join("from-host")).unwrap();
    assert_eq!(st.mode, meta.mode());
    assert_eq!(st.nlink, 1);
    assert_eq!(st.uid, meta.uid());
    assert_eq!(st.mtime.sec, meta.mtime());
    assert_eq!(
        s.vfs.stat("/host/hd").unwrap().file_type(),
        Some(FileType::Directory)
    );
    assert_eq!(
        s.vfs.stat("/host").unwrap().file_type(),
        Some(FileType::Directory)
    );
    // st_dev tells the 9P mount from the ramfs root.
    assert_ne!(
        s.vfs.stat("/host").unwrap().dev,
        s.vfs.stat("/").unwrap().dev
    );
    // chmod through the guest reaches the host.
    s.vfs.chmod("/host/from-host", 0o600).unwrap();
    assert_eq!(meta_mode(&s, "from-host"), 0o600);
    // statfs reports the host filesystem holding the shared directory, as Linux's client.
    let sf = s.vfs.statfs("/host/hd").unwrap();
    let host = rustix::fs::statfs(s.dir.path()).unwrap();
    assert_eq!(sf.fs_type, host.f_type as u64);
    assert_eq!((sf.bsize, sf.blocks), (host.f_bsize as u64, host.f_blocks));
    assert_eq!((sf.namelen, sf.flags & ST_VALID), (255, ST_VALID));
    assert_ne!(
        sf,
        s.vfs.statfs("/").unwrap(),
        "the ramfs root is another filesystem"
    );
}

fn meta_mode(s: &Setup, name: &str) -> u32 {
    fs::metadata(s.dir.path().join(name))
        .unwrap()
        .permissions()
        .mode()
        & 0o7777
}

fn check_listing(cookies: Cookies) {
    let s = setup_with("listing", cookies, 16 * 1024);
    s.vfs.mkdir("/host/many", 0o755).unwrap();
    let mut expected = BTreeMap::new();
    for i in 0..150 {
        let name = format!("entry-{i:03}-{}", "x".repeat(i % 40));
        match i % 10 {
            0 => {
                s.vfs.mkdir(format!("/host/many/{name}"), 0o755).unwrap();
                expected.insert(name.into_bytes(), DT_DIR);
            }
            1 => {
                s.vfs
                    .symlink("nowhere", format!("/host/many/{name}"))
                    .unwrap();
                expected.insert(name.into_bytes(), DT_LNK);
            }
            _ => {
                s.vfs
                    .write_file(format!("/host/many/{name}"), name.as_bytes(), 0o644)
                    .unwrap();
                expected.insert(name.into_bytes(), DT_REG);
            }
        }
    }
    // Small buffers: many getdents64 calls, each resuming at the last d_off.
    for bufsize in [256, 1000, 64 * 1024] {
        let got = list(&s.vfs, "/host/many", bufsize);
        assert_eq!(got[0].3, b".");
        assert_eq!(got[1].3, b"..");
        assert_eq!(got[0].0, s.vfs.stat("/host/many").unwrap().ino);
        assert_eq!(got[1].0, s.vfs.stat("/host").unwrap().ino);
        let rest: BTreeMap<Vec<u8>, u8> = got[2..]
            .iter()
            .map(|(_, _, t, n)| (n.clone(), *t))
            .collect();
        assert_eq!(rest.len(), got.len() - 2, "no entry repeated");
        assert_eq!(rest, expected, "buffer {bufsize}");
        for (ino, _, _, name) in &got[2..] {
            let path = format!("/host/many/{}", std::str::from_utf8(name).unwrap());
            assert_eq!(*ino, s.vfs.lstat(&path).unwrap().ino);
        }
        // Every position is below DIR_END and strictly increasing in the VFS's sense of
        // "resumes here"; seeking to one resumes just after its entry.
        for (_, off, _, _) in &got {
            assert!(*off < DIR_END);
        }
    }
    let got = list(&s.vfs, "/host/many", 64 * 1024);
    let fd = s.vfs.open("/host/many", O_RDONLY | O_DIRECTORY, 0).unwrap();
    let mut buf = vec![0u8; 64 * 1024];
    for k in [0, 1, 2, 70, 148, 151] {
        s.vfs.lseek(fd, got[k].1 as i64, SEEK_SET).unwrap();
        let n = s.vfs.getdents64(fd, &mut buf).unwrap();
        let resumed = parse_dirents(&buf[..n]);
        let names: Vec<_> = resumed.iter().map(|e| e.3.clone()).collect();
        let want: Vec<_> = got[k + 1..].iter().map(|e| e.3.clone()).collect();
        assert_eq!(names, want, "resume after entry {k}");
    }
    s.vfs.close(fd).unwrap();
    // Each Treaddir carried many entries, not one per message.
    assert!(s.server.lock().unwrap().count(TREADDIR) < 150);
}

#[test]
fn getdents_lists_more_than_100_entries_with_small_cookies() {
    check_listing(Cookies::Index);
}

#[test]
fn getdents_lists_more_than_100_entries_with_hash_cookies() {
    check_listing(Cookies::Hash);
}

#[test]
fn listing_resumed_after_removals_loses_and_repeats_nothing() {
    // With stable (hash) cookies, entries present throughout are each listed exactly once
    // even when others are removed on the host between getdents64 calls.
    let s = setup_with("stable", Cookies::Hash, 16 * 1024);
    s.vfs.mkdir("/host/d", 0o755).unwrap();
    for i in 0..120 {
        fs::write(s.dir.path().join(format!("d/f{i}")), b"").unwrap();
    }
    let fd = s.vfs.open("/host/d", O_RDONLY | O_DIRECTORY, 0).unwrap();
    let mut buf = vec![0u8; 512];
    let mut seen = vec![];
    let mut removed = BTreeSet::new();
    let mut round = 0;
    loop {
        let n = s.vfs.getdents64(fd, &mut buf).unwrap();
        if n == 0 {
            break;
        }
        seen.extend(parse_dirents(&buf[..n]).into_iter().map(|e| e.3));
        // Remove two files every round: one maybe seen, one maybe not.
        for i in [round * 7 % 120, (round * 13 + 5) % 120] {
            if fs::remove_file(s.dir.path().join(format!("d/f{i}"))).is_ok() {
                removed.insert(format!("f{i}").into_bytes());
            }
        }
        round += 1;
    }
    s.vfs.close(fd).unwrap();
    let set: BTreeSet<_> = seen.iter().cloned().collect();
    assert_eq!(set.len(), seen.len(), "an entry was repeated");
    for i in 0..120 {
        let name = format!("f{i}").into_bytes();
        if !removed.contains(&name) {
            assert!(set.contains(&name), "f{i} was lost");
        }
    }
    assert!(round > 5);
}

#[test]
fn mkdir_rmdir_unlink_and_their_errors() {
    let s = setup("dirs");
    let host = s.dir.path();
    s.vfs.mkdir("/host/d", 0o750).unwrap();
    assert!(host.join("d").is_dir());
    assert_eq!(meta_mode(&s, "d"), 0o750);
    assert_eq!(s.vfs.mkdir("/host/d", 0o755), Err(Errno::EEXIST));
    s.vfs.write_file("/host/d/f", b"x", 0o644).unwrap();
    assert_eq!(s.vfs.rmdir("/host/d"), Err(Errno::ENOTEMPTY));
    assert_eq!(s.vfs.unlink("/host/d"), Err(Errno::EISDIR));
    assert_eq!(s.vfs.rmdir("/host/d/f"), Err(Errno::ENOTDIR));
    s.vfs.unlink("/host/d/f").unwrap();
    assert!(!host.join("d/f").exists());
    assert_eq!(s.vfs.unlink("/host/d/f"), Err(Errno::ENOENT));
    s.vfs.rmdir("/host/d").unwrap();
    assert!(!host.join("d").exists());
    assert_eq!(s.vfs.rmdir("/host/d"), Err(Errno::ENOENT));
    // Missing files and directories.
    assert_eq!(s.vfs.open("/host/missing", O_RDONLY, 0), Err(Errno::ENOENT));
    assert_eq!(s.vfs.open("/host/no/such", O_RDONLY, 0), Err(Errno::ENOENT));
    assert_eq!(s.vfs.stat("/host/missing").err(), Some(Errno::ENOENT));
    // O_EXCL on an existing file comes back as the server's EEXIST.
    s.vfs.write_file("/host/e", b"", 0o644).unwrap();
    assert_eq!(
        s.vfs.open("/host/e", O_CREAT | O_EXCL | O_WRONLY, 0o644),
        Err(Errno::EEXIST)
    );
    // A file in place of a directory.
    assert_eq!(s.vfs.open("/host/e/x", O_RDONLY, 0), Err(Errno::ENOTDIR));
    // The host made a name the guest then creates: the server's EEXIST.
    fs::create_dir(host.join("hostdir")).unwrap();
    assert_eq!(s.vfs.mkdir("/host/hostdir", 0o755), Err(Errno::EEXIST));
}

#[test]
fn rename_moves_files_and_directories() {
    let s = setup("rename");
    let host = s.dir.path();
    s.vfs.write_file("/host/a", b"alpha", 0o644).unwrap();
    s.vfs.rename("/host/a", "/host/b").unwrap();
    assert!(!host.join("a").exists());
    assert_eq!(fs::read(host.join("b")).unwrap(), b"alpha");
    // Across directories, and a whole tree.
    s.vfs.mkdir_all("/host/x/y").unwrap();
    s.vfs.write_file("/host/x/y/z", b"deep", 0o644).unwrap();
    s.vfs.rename("/host/b", "/host/x/y/b").unwrap();
    s.vfs.rename("/host/x", "/host/w").unwrap();
    assert_eq!(fs::read(host.join("w/y/b")).unwrap(), b"alpha");
    assert_eq!(s.vfs.read_file("/host/w/y/z").unwrap(), b"deep");
    // Onto an existing file: replaced.
    s.vfs.write_file("/host/c", b"old", 0o644).unwrap();
    s.vfs.write_file("/host/d", b"new", 0o644).unwrap();
    s.vfs.rename("/host/d", "/host/c").unwrap();
    assert_eq!(fs::read(host.join("c")).unwrap(), b"new");
    assert!(!host.join("d").exists());
    // RENAME_NOREPLACE.
    s.vfs.write_file("/host/d", b"again", 0o644).unwrap();
    assert_eq!(
        s.vfs
            .renameat2(AT_FDCWD, "/host/d", AT_FDCWD, "/host/c", RENAME_NOREPLACE),
        Err(Errno::EEXIST)
    );
    s.vfs
        .renameat2(AT_FDCWD, "/host/d", AT_FDCWD, "/host/e", RENAME_NOREPLACE)
        .unwrap();
    assert_eq!(fs::read(host.join("e")).unwrap(), b"again");
    // A directory onto a non-empty one: the server's ENOTEMPTY.
    s.vfs.mkdir("/host/empty", 0o755).unwrap();
    assert_eq!(
        s.vfs.rename("/host/empty", "/host/w"),
        Err(Errno::ENOTEMPTY)
    );
    // Into itself: the VFS's EINVAL (directory vnodes are shared, so it can tell).
    assert_eq!(s.vfs.rename("/host/w", "/host/w/y/in"), Err(Errno::EINVAL));
    // Missing source.
    assert_eq!(s.vfs.rename("/host/nope", "/host/q"), Err(Errno::ENOENT));
    // Across mounts.
    assert_eq!(s.vfs.rename("/host/e", "/e"), Err(Errno::EXDEV));
}

#[test]
fn cwd_follows_renames_and_dotdot_crosses_back_to_the_mount() {
    let s = setup("cwd");
    s.vfs.mkdir_all("/host/a/b").unwrap();
    s.vfs.chdir("/host/a/b").unwrap();
    assert_eq!(s.vfs.cwd().unwrap(), b"/host/a/b");
    s.vfs.rename("/host/a", "/host/c").unwrap();
    assert_eq!(s.vfs.cwd().unwrap(), b"/host/c/b");
    s.vfs.write_file("../../top", b"t", 0o644).unwrap();
    assert_eq!(fs::read(s.dir.path().join("top")).unwrap(), b"t");
    s.vfs.chdir("../../..").unwrap();
    assert_eq!(s.vfs.cwd().unwrap(), b"/");
    // A removed working directory has no name.
    s.vfs.chdir("/host/c/b").unwrap();
    s.vfs.rmdir("/host/c/b").unwrap();
    assert_eq!(s.vfs.cwd(), Err(Errno::ENOENT));
    s.vfs.chdir("/").unwrap();
}

#[test]
fn symlink_readlink_and_hard_link() {
    let s = setup("links");
    let host = s.dir.path();
    s.vfs
        .write_file("/host/target", b"pointed at", 0o644)
        .unwrap();
    s.vfs.symlink("target", "/host/l").unwrap();
    let mut buf = [0u8; 64];
    let n = s.vfs.readlink("/host/l", &mut buf).unwrap();
    assert_eq!(&buf[..n], b"target");
    assert_eq!(fs::read_link(host.join("l")).unwrap().as_os_str(), "target");
    assert_eq!(
        s.vfs.lstat("/host/l").unwrap().file_type(),
        Some(FileType::Symlink)
    );
    // The VFS follows it through the 9P vnode's readlink.
    assert_eq!(s.vfs.read_file("/host/l").unwrap(), b"pointed at");
    assert_eq!(s.vfs.readlink("/host/target", &mut buf), Err(Errno::EINVAL));
    assert_eq!(s.vfs.symlink("x", "/host/l"), Err(Errno::EEXIST));
    // A link made on the host.
    std::os::unix::fs::symlink("/abs/path", host.join("hl")).unwrap();
    let n = s.vfs.readlink("/host/hl", &mut buf).unwrap();
    assert_eq!(&buf[..n], b"/abs/path");
    // Hard link.
    s.vfs.link("/host/target", "/host/hard").unwrap();
    assert_eq!(fs::metadata(host.join("target")).unwrap().nlink(), 2);
    assert_eq!(s.vfs.stat("/host/hard").unwrap().nlink, 2);
    assert_eq!(
        s.vfs.stat("/host/hard").unwrap().ino,
        s.vfs.stat("/host/target").unwrap().ino
    );
}

#[test]
fn truncate_shrinks_and_grows() {
    let s = setup("truncate");
    let host = s.dir.path().join("t");
    s.vfs
        .write_file("/host/t", &pattern(10_000), 0o644)
        .unwrap();
    s.vfs.truncate("/host/t", 100).unwrap();
    assert_eq!(s.vfs.stat("/host/t").unwrap().size, 100);
    assert_eq!(fs::read(&host).unwrap(), pattern(100));
    let fd = s.vfs.open("/host/t", O_RDWR, 0).unwrap();
    s.vfs.ftruncate(fd, 300).unwrap();
    let mut buf = vec![0xffu8; 400];
    assert_eq!(s.vfs.pread(fd, &mut buf, 0).unwrap(), 300);
    assert_eq!(&buf[..100], &pattern(100)[..]);
    assert!(buf[100..300].iter().all(|&b| b == 0));
    s.vfs.close(fd).unwrap();
    // O_TRUNC and O_APPEND.
    let fd = s.vfs.open("/host/t", O_WRONLY | O_TRUNC, 0).unwrap();
    assert_eq!(fs::metadata(&host).unwrap().len(), 0);
    s.vfs.write(fd, b"one").unwrap();
    s.vfs.close(fd).unwrap();
    let fd = s.vfs.open("/host/t", O_WRONLY | O_APPEND, 0).unwrap();
    s.vfs.write(fd, b"two").unwrap();
    s.vfs.close(fd).unwrap();
    assert_eq!(fs::read(&host).unwrap(), b"onetwo");
    assert_eq!(s.vfs.truncate("/host", 0), Err(Errno::EISDIR));
}

#[test]
fn no_fid_leaks() {
    let s = setup("fids");
    s.vfs.mkdir_all("/host/a/b/c").unwrap();
    for i in 0..20 {
        let p = format!("/host/a/b/f{i}");
        s.vfs.write_file(&p, b"data", 0o644).unwrap();
        assert_eq!(s.vfs.read_file(&p).unwrap(), b"data");
        s.vfs.stat(&p).unwrap();
    }
    let _ = list(&s.vfs, "/host/a/b", 128);
    s.vfs.symlink("b/f1", "/host/a/l").unwrap();
    let _ = s.vfs.read_file("/host/a/l").unwrap();
    s.vfs.rename("/host/a/b/f0", "/host/a/g").unwrap();
    s.vfs.unlink("/host/a/g").unwrap();
    let _ = s.vfs.open("/host/a/missing", O_RDONLY, 0);
    let _ = s.vfs.mkdir("/host/a", 0o755);
    let _ = s.vfs.rmdir("/host/a");
    // Held open: the vnode and its fids stay...
    let fd = s.vfs.open("/host/a/b/f3", O_RDONLY, 0).unwrap();
    let mut b = [0u8; 4];
    s.vfs.read(fd, &mut b).unwrap();
    assert!(s.server.lock().unwrap().open_fids() > 1);
    // ...and go with the last descriptor.
    s.vfs.close(fd).unwrap();
    assert_eq!(s.server.lock().unwrap().open_fids(), 1, "only the root fid");
    assert_eq!(s.fs.open_fids(), 1);
    let server = s.server.clone();
    drop(s);
    assert_eq!(server.lock().unwrap().open_fids(), 0);
}

#[test]
fn fsync_reaches_the_server_for_files_open_for_writing() {
    let s = setup("fsync");
    let fd = s.vfs.open("/host/f", O_CREAT | O_RDWR, 0o644).unwrap();
    assert_eq!(s.vfs.write(fd, b"data").unwrap(), 4);
    s.vfs.fsync(fd).unwrap();
    assert_eq!(s.server.lock().unwrap().count(TFSYNC), 1);
    s.vfs.close(fd).unwrap();
    // A directory opened for listing has nothing to flush.
    let dir = s.vfs.open("/host", O_RDONLY | O_DIRECTORY, 0).unwrap();
    s.vfs.fsync(dir).unwrap();
    assert_eq!(s.server.lock().unwrap().count(TFSYNC), 1);
    s.vfs.close(dir).unwrap();
    assert_ne!(
        s.vfs.stat("/host/f").unwrap().dev,
        s.vfs.stat("/").unwrap().dev,
        "the mount has a device number of its own"
    );
}

#[test]
fn utimensat_sets_times_on_the_host() {
    let s = setup("utimens");
    fs::write(s.dir.path().join("f"), b"x").unwrap();
    std::os::unix::fs::symlink("f", s.dir.path().join("l")).unwrap();
    let at = |sec, nsec| TimeChange::Set(Timespec { sec, nsec });
    let host = |name: &str| fs::symlink_metadata(s.dir.path().join(name)).unwrap();
    s.vfs
        .utimensat(
            AT_FDCWD,
            Some(b"/host/f"),
            [at(1_000_000, 5), at(2_000_000, 999_999_999)],
            0,
        )
        .unwrap();
    let m = host("f");
    assert_eq!((m.atime(), m.atime_nsec()), (1_000_000, 5));
    assert_eq!((m.mtime(), m.mtime_nsec()), (2_000_000, 999_999_999));
    let st = s.vfs.stat("/host/f").unwrap();
    assert_eq!(
        st.mtime,
        Timespec {
            sec: 2_000_000,
            nsec: 999_999_999
        }
    );
    // Omitted stays, "now" is the host's clock.
    s.vfs
        .utimensat(
            AT_FDCWD,
            Some(b"/host/f"),
            [TimeChange::Omit, TimeChange::Now],
            0,
        )
        .unwrap();
    let m = host("f");
    assert_eq!(m.atime(), 1_000_000);
    assert!(m.mtime() > 2_000_000, "mtime is the host's now");
    // The link itself, and through an open file.
    s.vfs
        .utimensat(
            AT_FDCWD,
            Some(b"/host/l"),
            [at(7, 0); 2],
            AT_SYMLINK_NOFOLLOW,
        )
        .unwrap();
    assert_eq!(host("l").mtime(), 7);
    assert_ne!(host("f").mtime(), 7);
    let fd = s.vfs.open("/host/f", O_RDONLY, 0).unwrap();
    s.vfs.utimensat(fd, None, [at(8, 0); 2], 0).unwrap();
    assert_eq!(host("f").mtime(), 8);
    s.vfs.close(fd).unwrap();
    // A missing file is the server's ENOENT, and nothing changes.
    assert_eq!(
        s.vfs
            .utimensat(AT_FDCWD, Some(b"/host/nope"), [at(9, 0); 2], 0),
        Err(Errno::ENOENT)
    );
    assert_eq!(host("f").mtime(), 8);
}

#[test]
fn chown_reaches_the_host_through_tsetattr() {
    let s = setup("chown");
    fs::write(s.dir.path().join("f"), b"x").unwrap();
    std::os::unix::fs::symlink("f", s.dir.path().join("l")).unwrap();
    let host = |name: &str| fs::symlink_metadata(s.dir.path().join(name)).unwrap();
    let setattrs = || s.server.lock().unwrap().count(TSETATTR);
    // Ids the host lets this process give: any as root, else the ones it owns the file with.
    let (uid, gid) = match (host("f").uid(), host("f").gid()) {
        (0, _) => (4321, 8765),
        ids => ids,
    };
    s.vfs.chown("/host/f", uid, gid).unwrap();
    assert_eq!((host("f").uid(), host("f").gid()), (uid, gid));
    let st = s.vfs.stat("/host/f").unwrap();
    assert_eq!(
        (st.uid, st.gid),
        (uid, gid),
        "stat reports the host's owner"
    );
    // -1 leaves an id alone; both -1 sends nothing.
    let before = setattrs();
    s.vfs.chown("/host/f", u32::MAX, u32::MAX).unwrap();
    assert_eq!(setattrs(), before);
    let fd = s.vfs.open("/host/f", O_RDONLY, 0).unwrap();
    s.vfs.fchown(fd, u32::MAX, gid).unwrap();
    assert_eq!(setattrs(), before + 1);
    assert_eq!((host("f").uid(), host("f").gid()), (uid, gid));
    s.vfs.close(fd).unwrap();
    // The link itself with lchown; the target stays.
    s.vfs.lchown("/host/l", uid, u32::MAX).unwrap();
    assert_eq!(host("l").uid(), uid);
    // A missing file is the server's ENOENT.
    assert_eq!(s.vfs.chown("/host/nope", uid, gid), Err(Errno::ENOENT));
}
