//! Property tests: encode/decode round trips, and arbitrary, truncated and mutated
//! bytes into every decoder and through the client — typed errors, never a panic.

use std::boxed::Box;
use std::sync::{Arc, Mutex};
use std::vec::Vec;
use std::{fs, vec};

use proptest::prelude::*;

use super::server::{Cookies, Loopback, Server, TempDir};
use crate::client::Client;
use crate::wire::*;
use crate::{Transport, TransportError};

fn qid(kind: u8, path: u64) -> Qid {
    Qid {
        kind,
        version: 0x1234_5678,
        path,
    }
}

fn dir_bytes() -> Vec<u8> {
    let mut out = vec![];
    for (i, name) in [&b"."[..], b"..", b"a file", b"d"].iter().enumerate() {
        Dirent {
            qid: qid(0, i as u64),
            offset: i as u64 + 1,
            kind: 8,
            name,
        }
        .encode(&mut out)
        .unwrap();
    }
    out
}

/// One valid example of every reply, encoded.
fn sample_replies() -> Vec<Vec<u8>> {
    let dirs = dir_bytes();
    let replies = vec![
        Reply::Lerror { ecode: 2 },
        Reply::Version {
            msize: 8192,
            version: VERSION_9P2000_L,
        },
        Reply::Attach {
            qid: qid(QT_DIR, 1),
        },
        Reply::Walk {
            qids: vec![qid(QT_DIR, 2), qid(QT_FILE, 3)],
        },
        Reply::Lopen {
            qid: qid(0, 4),
            iounit: 0,
        },
        Reply::Lcreate {
            qid: qid(0, 5),
            iounit: 4096,
        },
        Reply::Symlink {
            qid: qid(QT_SYMLINK, 6),
        },
        Reply::Readlink { target: b"../x" },
        Reply::Getattr(Attr {
            valid: GETATTR_BASIC,
            qid: qid(0, 7),
            mode: 0o100644,
            size: 12,
            ..Attr::default()
        }),
        Reply::Setattr,
        Reply::Readdir {
            data: DirData::parse(&dirs).unwrap(),
        },
        Reply::Fsync,
        Reply::Link,
        Reply::Mkdir {
            qid: qid(QT_DIR, 8),
        },
        Reply::Renameat,
        Reply::Unlinkat,
        Reply::Read { data: b"payload" },
        Reply::Write { count: 7 },
        Reply::Clunk,
        Reply::Statfs(StatFs::default()),
    ];
    replies
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let mut out = vec![];
            r.encode(i as u16, &mut out).unwrap();
            // And each decodes back to itself.
            assert_eq!(Reply::decode(&out), Ok((i as u16, r.clone())));
            out
        })
        .collect()
}

#[test]
fn every_prefix_of_every_reply_is_an_error() {
    for msg in sample_replies() {
        for len in 0..msg.len() {
            // Both a prefix with its original size field and one whose size field agrees
            // with its length (a well-framed but short body).
            assert!(
                Reply::decode(&msg[..len]).is_err(),
                "prefix {len} of {msg:?}"
            );
            if len >= 4 {
                let mut fixed = msg[..len].to_vec();
                fixed[..4].copy_from_slice(&(len as u32).to_le_bytes());
                let r = Reply::decode(&fixed);
                // Empty-bodied replies are complete at 7 bytes; anything shorter fails.
                if len < msg.len() && !(len == 7 && msg.len() == 7) {
                    assert!(r.is_err(), "short body {len} of {msg:?}: {r:?}");
                }
            }
        }
    }
}

#[test]
fn trailing_bytes_and_size_disagreement_are_errors() {
    for msg in sample_replies() {
        let mut longer = msg.clone();
        longer.push(0);
        assert!(matches!(
            Reply::decode(&longer),
            Err(WireError::SizeMismatch { .. })
        ));
        let n = longer.len() as u32;
        longer[..4].copy_from_slice(&n.to_le_bytes());
        assert_eq!(Reply::decode(&longer), Err(WireError::TrailingBytes));
    }
}

#[test]
fn requests_round_trip() {
    let names: Vec<&[u8]> = vec![b"a", b"bb", b""];
    let reqs = vec![
        Request::Version {
            msize: 1,
            version: b"v",
        },
        Request::Attach {
            fid: 1,
            afid: NOFID,
            uname: b"root",
            aname: b"",
            n_uname: 0,
        },
        Request::Walk {
            fid: 1,
            newfid: 2,
            names,
        },
        Request::Lopen { fid: 3, flags: 2 },
        Request::Lcreate {
            fid: 3,
            name: b"n",
            flags: 0o302,
            mode: 0o644,
            gid: 0,
        },
        Request::Symlink {
            fid: 3,
            name: b"l",
            target: b"t",
            gid: 0,
        },
        Request::Readlink { fid: 4 },
        Request::Getattr {
            fid: 4,
            request_mask: GETATTR_BASIC,
        },
        Request::Setattr {
            fid: 4,
            attr: SetAttr {
                valid: SETATTR_SIZE,
                size: 9,
                ..SetAttr::default()
            },
        },
        Request::Readdir {
            fid: 5,
            offset: u64::MAX,
            count: 100,
        },
        Request::Fsync {
            fid: 5,
            datasync: 1,
        },
        Request::Link {
            dfid: 1,
            fid: 2,
            name: b"h",
        },
        Request::Mkdir {
            dfid: 1,
            name: b"d",
            mode: 0o755,
            gid: 0,
        },
        Request::Renameat {
            old_dfid: 1,
            old_name: b"a",
            new_dfid: 2,
            new_name: b"b",
        },
        Request::Unlinkat {
            dfid: 1,
            name: b"d",
            flags: AT_REMOVEDIR,
        },
        Request::Read {
            fid: 6,
            offset: 7,
            count: 8,
        },
        Request::Write {
            fid: 6,
            offset: 7,
            data: b"data",
        },
        Request::Clunk { fid: 6 },
        Request::Statfs { fid: 1 },
    ];
    for (i, r) in reqs.iter().enumerate() {
        let mut out = vec![];
        r.encode(i as u16, &mut out).unwrap();
        assert_eq!(
            out.len(),
            u32::from_le_bytes(out[..4].try_into().unwrap()) as usize
        );
        assert_eq!(Request::decode(&out), Ok((i as u16, r.clone())));
        for len in 0..out.len() {
            assert!(Request::decode(&out[..len]).is_err());
        }
    }
    // Too long to encode: a typed error, not a truncated message.
    let long = vec![b'x'; 70_000];
    let mut out = vec![];
    assert_eq!(
        Request::Mkdir {
            dfid: 1,
            name: &long,
            mode: 0,
            gid: 0
        }
        .encode(0, &mut out),
        Err(WireError::TooLong)
    );
}

/// A transport that answers the version properly, then whatever the test says.
struct Evil {
    answers: Vec<Vec<u8>>,
    versioned: bool,
}

impl Transport for Evil {
    fn max_message_size(&self) -> usize {
        4096
    }
    fn round_trip(&mut self, req: &[u8], reply: &mut [u8]) -> Result<usize, TransportError> {
        let out = if !self.versioned {
            self.versioned = true;
            let mut out = vec![];
            Reply::Version {
                msize: 4096,
                version: VERSION_9P2000_L,
            }
            .encode(NOTAG, &mut out)
            .unwrap();
            out
        } else if self.answers.is_empty() {
            // Answer with the right tag and an empty body of the right type, so the
            // client keeps going where that is valid.
            let tag = u16::from_le_bytes([req[5], req[6]]);
            let mut out = vec![0, 0, 0, 0, req[4] + 1];
            out.extend_from_slice(&tag.to_le_bytes());
            let n = out.len() as u32;
            out[..4].copy_from_slice(&n.to_le_bytes());
            out
        } else {
            self.answers.remove(0)
        };
        let n = out.len().min(reply.len());
        reply[..n].copy_from_slice(&out[..n]);
        Ok(n)
    }
}

/// Calls every client operation once; all results are ignored, only panics matter.
fn exercise<T: Transport>(c: &mut Client<T>) {
    let mut buf = vec![0u8; 10_000];
    let _ = c.attach(b"root", b"", 0);
    let _ = c.walk(0, &[b"a", b"b"]);
    let _ = c.walk(0, &[]);
    let _ = c.lopen(1, 0);
    let _ = c.lcreate(1, b"x", 0o102, 0o644, 0);
    let _ = c.read(1, 0, &mut buf);
    let _ = c.write(1, 0, &buf);
    let _ = c.getattr(1, GETATTR_BASIC);
    let _ = c.setattr(1, &SetAttr::default());
    let _ = c.readdir(1, 0, &mut |_| true);
    let _ = c.mkdir(0, b"d", 0o755, 0);
    let _ = c.unlinkat(0, b"d", AT_REMOVEDIR);
    let _ = c.renameat(0, b"a", 0, b"b");
    let _ = c.symlink(0, b"l", b"t", 0);
    let _ = c.readlink(1);
    let _ = c.link(0, 1, b"h");
    let _ = c.fsync(1, false);
    let _ = c.statfs(0);
    let _ = c.clunk(1);
}

#[test]
fn empty_bodies_where_fields_are_due_are_errors() {
    let mut c = Client::new(Evil {
        answers: vec![],
        versioned: false,
    })
    .unwrap();
    assert!(c.attach(b"root", b"", 0).is_err());
    assert!(c.getattr(0, GETATTR_BASIC).is_err());
    assert!(c.read(0, 0, &mut [0; 8]).is_err());
    // Empty-bodied replies are right for these.
    assert!(c.clunk(0).is_ok());
    assert!(c.setattr(0, &SetAttr::default()).is_ok());
    exercise(&mut c);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_bytes_never_panic_a_decoder(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = Reply::decode(&bytes);
        let _ = Request::decode(&bytes);
        let _ = DirData::parse(&bytes).map(|d| d.iter().count());
    }

    #[test]
    fn framed_arbitrary_bodies_never_panic(ty in any::<u8>(), body in proptest::collection::vec(any::<u8>(), 0..120)) {
        // A correct header with a random body reaches every type's field parser.
        let mut msg = vec![0, 0, 0, 0, ty, 1, 0];
        msg.extend_from_slice(&body);
        let n = msg.len() as u32;
        msg[..4].copy_from_slice(&n.to_le_bytes());
        if let Ok((tag, r)) = Reply::decode(&msg) {
            // Whatever decodes re-encodes to the same bytes.
            let mut again = vec![];
            r.encode(tag, &mut again).unwrap();
            prop_assert_eq!(again, msg.clone());
        }
        let _ = Request::decode(&msg);
    }

    #[test]
    fn mutated_replies_never_panic(which in 0usize..20, at in any::<prop::sample::Index>(), xor in 1u8..=255) {
        let msgs = sample_replies();
        let mut msg = msgs[which % msgs.len()].clone();
        let i = at.index(msg.len());
        msg[i] ^= xor;
        let r = Reply::decode(&msg);
        if i < 4 {
            let is_size_mismatch = matches!(r, Err(WireError::SizeMismatch { .. }));
            prop_assert!(is_size_mismatch);
        }
    }

    #[test]
    fn arbitrary_replies_never_panic_the_client(answers in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..64), 0..30)) {
        let mut c = Client::new(Evil { answers, versioned: false }).unwrap();
        exercise(&mut c);
    }

    #[test]
    fn mutated_server_replies_never_panic_the_client(seed in any::<u64>(), every in 1usize..6) {
        // The real server's replies, one in `every` with a byte flipped or cut short.
        let dir = TempDir::new("mutate");
        fs::write(dir.path().join("a"), b"some data").unwrap();
        fs::create_dir(dir.path().join("d")).unwrap();
        let srv = Arc::new(Mutex::new(Server::new(dir.path(), Cookies::Index)));
        let mut t = Loopback::new(&srv, 4096);
        let mut n = 0usize;
        let mut state = seed;
        t.tamper = Some(Box::new(move |_, reply: &mut Vec<u8>| {
            n += 1;
            if n == 1 || n % every != 0 || reply.is_empty() {
                return; // keep Rversion intact
            }
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let i = (state >> 33) as usize % reply.len();
            if state & 1 == 0 {
                reply[i] ^= (state >> 8) as u8 | 1;
            } else {
                reply.truncate(i);
            }
        }));
        let mut c = Client::new(t).unwrap();
        if let Ok((root, _)) = c.attach(b"root", b"", 0) {
            if let Ok((f, _)) = c.walk(root, &[b"a"]) {
                let _ = c.lopen(f, DOTL_RDONLY);
                let _ = c.read(f, 0, &mut [0u8; 64]);
                let _ = c.getattr(f, GETATTR_BASIC);
                let _ = c.clunk(f);
            }
            if let Ok((f, _)) = c.walk(root, &[b"d"]) {
                let _ = c.lopen(f, DOTL_RDONLY | DOTL_DIRECTORY);
                let _ = c.readdir(f, 0, &mut |_| true);
                let _ = c.clunk(f);
            }
        }
    }
}
