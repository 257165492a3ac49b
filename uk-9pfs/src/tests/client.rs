//! The client against the std::fs server: negotiation, fids, walks, and replies a
//! broken server could send.

use std::boxed::Box;
use std::string::ToString;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::vec::Vec;
use std::{fs, vec};

use uk_vfs::{Errno, O_CREAT, O_RDWR, RamFs, Vfs};

use super::server::{Cookies, Loopback, Server, Tamper, TempDir};
use crate::client::{DEFAULT_MSIZE, errno_from_ecode};
use crate::wire::{self, Reply, TREAD};
use crate::{Client, Error, NinePFs, TransportError};

fn server(dir: &TempDir) -> Arc<Mutex<Server>> {
    Arc::new(Mutex::new(Server::new(dir.path(), Cookies::Index)))
}

#[test]
fn another_version_is_refused_with_a_clear_error() {
    let dir = TempDir::new("version");
    let srv = server(&dir);
    srv.lock().unwrap().version_answer = Some(b"9P2000.u".to_vec());
    let err = NinePFs::mount(Loopback::new(&srv, 8192), b"")
        .err()
        .expect("mount must fail");
    assert_eq!(err, Error::UnsupportedVersion(b"9P2000.u".to_vec()));
    assert_eq!(err.errno(), Errno::EPROTONOSUPPORT);
    let shown = err.to_string();
    assert!(
        shown.contains("9P2000.u") && shown.contains("9P2000.L"),
        "{shown}"
    );
    // Nothing was attached.
    assert_eq!(srv.lock().unwrap().open_fids(), 0);
    assert_eq!(Errno::from(err), Errno::EPROTONOSUPPORT);
}

#[test]
fn msize_is_the_smallest_of_transport_server_and_default() {
    let dir = TempDir::new("msize");
    let srv = server(&dir);
    let c = Client::new(Loopback::new(&srv, 1 << 20)).unwrap();
    assert_eq!(c.msize(), DEFAULT_MSIZE);
    let c = Client::new(Loopback::new(&srv, 4096)).unwrap();
    assert_eq!(c.msize(), 4096);
    srv.lock().unwrap().max_msize = 2048;
    let c = Client::new(Loopback::new(&srv, 1 << 20)).unwrap();
    assert_eq!(c.msize(), 2048);
    srv.lock().unwrap().max_msize = 100;
    assert_eq!(
        Client::new(Loopback::new(&srv, 1 << 20)).err(),
        Some(Error::MsizeTooSmall(100))
    );
    assert_eq!(
        Client::new(Loopback::new(&srv, 64)).err(),
        Some(Error::MsizeTooSmall(64))
    );
}

#[test]
fn fids_are_recycled_and_failed_walks_leave_none() {
    let dir = TempDir::new("fids");
    fs::create_dir(dir.path().join("a")).unwrap();
    let srv = server(&dir);
    let mut c = Client::new(Loopback::new(&srv, 8192)).unwrap();
    let (root, qid) = c.attach(b"root", b"", 0).unwrap();
    assert!(qid.is_dir());
    let (f1, q) = c.walk(root, &[b"a"]).unwrap();
    assert!(q.unwrap().is_dir());
    let (f2, q) = c.walk(root, &[]).unwrap();
    assert_eq!(q, None);
    assert_eq!(c.open_fids(), 3);
    c.clunk(f1).unwrap();
    let (f3, _) = c.walk(root, &[]).unwrap();
    assert_eq!(f3, f1, "the clunked number is reused");
    // A missing first name: the server's ENOENT; a missing later one: a partial walk.
    let before = srv.lock().unwrap().open_fids();
    assert_eq!(
        c.walk(root, &[b"nope"]).err(),
        Some(Error::Server(Errno::ENOENT))
    );
    let e = c.walk(root, &[b"a", b"nope"]).err().unwrap();
    assert_eq!(e, Error::WalkIncomplete);
    assert_eq!(e.errno(), Errno::ENOENT);
    assert_eq!(srv.lock().unwrap().open_fids(), before);
    assert_eq!(c.open_fids(), 3);
    // Clunking an unknown fid is the server's EBADF, and the number is still released.
    c.clunk(f2).unwrap();
    assert_eq!(c.clunk(f2), Err(Error::Server(Errno::EBADF)));
    // ...but only once: the two next fids differ (no number handed out twice).
    let (g1, _) = c.walk(root, &[]).unwrap();
    let (g2, _) = c.walk(root, &[]).unwrap();
    assert_ne!(g1, g2);
    assert_eq!(c.open_fids(), 4);
}

#[test]
fn walks_longer_than_16_names_take_several_messages() {
    let dir = TempDir::new("deep");
    let names: Vec<Vec<u8>> = (0..20).map(|i| std::format!("d{i}").into_bytes()).collect();
    let mut p = dir.path().to_path_buf();
    for n in &names {
        p.push(std::str::from_utf8(n).unwrap());
    }
    fs::create_dir_all(&p).unwrap();
    let srv = server(&dir);
    let mut c = Client::new(Loopback::new(&srv, 8192)).unwrap();
    let (root, _) = c.attach(b"root", b"", 0).unwrap();
    let refs: Vec<&[u8]> = names.iter().map(|n| n.as_slice()).collect();
    let (fid, qid) = c.walk(root, &refs).unwrap();
    use std::os::unix::fs::MetadataExt;
    assert_eq!(qid.unwrap().path, fs::metadata(&p).unwrap().ino());
    assert_eq!(srv.lock().unwrap().count(wire::TWALK), 2);
    c.clunk(fid).unwrap();
    // A failure in the second message clunks what the first made.
    let mut bad = refs.clone();
    bad[18] = b"missing";
    assert!(c.walk(root, &bad).is_err());
    assert_eq!(srv.lock().unwrap().open_fids(), 1);
    assert_eq!(c.open_fids(), 1);
}

#[test]
fn ecodes_map_to_errno() {
    assert_eq!(errno_from_ecode(2), Errno::ENOENT);
    assert_eq!(errno_from_ecode(39), Errno::ENOTEMPTY);
    assert_eq!(errno_from_ecode(0), Errno::EIO);
    assert_eq!(errno_from_ecode(4000), Errno::EIO);
    assert_eq!(errno_from_ecode(u32::MAX), Errno::EIO);
}

/// What the tampering transport does to `Rread` replies.
#[derive(Clone, Copy)]
#[repr(u8)]
enum Break {
    Nothing,
    DropLastByte,
    WrongTag,
    WrongType,
    UnknownErrno,
    KnownErrno,
    ShortSize,
    TooMuchData,
    Empty,
}

fn tampered(mode: Arc<AtomicU8>) -> Tamper {
    Box::new(move |ty, reply: &mut Vec<u8>| {
        if ty != TREAD {
            return;
        }
        let tag = u16::from_le_bytes([reply[5], reply[6]]);
        let m = mode.load(Ordering::Relaxed);
        let lerror = |ecode| {
            let mut out = vec![];
            Reply::Lerror { ecode }.encode(tag, &mut out).unwrap();
            out
        };
        match m {
            x if x == Break::DropLastByte as u8 => {
                reply.pop();
            }
            x if x == Break::WrongTag as u8 => reply[5] ^= 1,
            x if x == Break::WrongType as u8 => reply[4] = wire::TWRITE + 1,
            x if x == Break::UnknownErrno as u8 => *reply = lerror(9999),
            x if x == Break::KnownErrno as u8 => *reply = lerror(13),
            x if x == Break::ShortSize as u8 => reply[0] = reply[0].wrapping_sub(1),
            x if x == Break::TooMuchData as u8 => {
                // A well-formed Rread with more bytes than the 4 asked for.
                let mut out = vec![];
                Reply::Read { data: &[7; 64] }
                    .encode(tag, &mut out)
                    .unwrap();
                *reply = out;
            }
            x if x == Break::Empty as u8 => reply.clear(),
            _ => {}
        }
    })
}

#[test]
fn malformed_replies_are_eio_at_the_vfs() {
    let dir = TempDir::new("tamper");
    fs::write(dir.path().join("f"), b"0123456789").unwrap();
    let srv = server(&dir);
    let mode = Arc::new(AtomicU8::new(Break::Nothing as u8));
    let mut t = Loopback::new(&srv, 8192);
    t.tamper = Some(tampered(mode.clone()));
    let vfs = Vfs::new(RamFs::new());
    vfs.mkdir("/host", 0o755).unwrap();
    vfs.mount("/host", NinePFs::mount(t, b"").unwrap()).unwrap();
    let fd = vfs.open("/host/f", O_RDWR | O_CREAT, 0o644).unwrap();
    let mut buf = [0u8; 4];
    assert_eq!(vfs.pread(fd, &mut buf, 0), Ok(4));
    for (m, want) in [
        (Break::DropLastByte, Errno::EIO),
        (Break::WrongTag, Errno::EIO),
        (Break::WrongType, Errno::EIO),
        (Break::UnknownErrno, Errno::EIO),
        (Break::KnownErrno, Errno::EACCES),
        (Break::ShortSize, Errno::EIO),
        (Break::TooMuchData, Errno::EIO),
        (Break::Empty, Errno::EIO),
    ] {
        mode.store(m as u8, Ordering::Relaxed);
        assert_eq!(vfs.pread(fd, &mut buf, 0), Err(want), "mode {}", m as u8);
    }
    // The session survives: a good reply works again.
    mode.store(Break::Nothing as u8, Ordering::Relaxed);
    assert_eq!(vfs.pread(fd, &mut buf, 2), Ok(4));
    assert_eq!(&buf, b"2345");
    vfs.close(fd).unwrap();
}

#[test]
fn a_transport_failure_is_eio() {
    struct Failing(bool);
    impl crate::Transport for Failing {
        fn max_message_size(&self) -> usize {
            4096
        }
        fn round_trip(&mut self, req: &[u8], reply: &mut [u8]) -> Result<usize, TransportError> {
            if self.0 {
                return Err(TransportError::Io);
            }
            self.0 = true;
            let (tag, _) = wire::Request::decode(req).unwrap();
            let mut out = vec![];
            Reply::Version {
                msize: 4096,
                version: wire::VERSION_9P2000_L,
            }
            .encode(tag, &mut out)
            .unwrap();
            reply[..out.len()].copy_from_slice(&out);
            Ok(out.len())
        }
    }
    let e = NinePFs::mount(Failing(false), b"").err().unwrap();
    assert_eq!(e, Error::Transport(TransportError::Io));
    assert_eq!(Errno::from(e), Errno::EIO);
}
