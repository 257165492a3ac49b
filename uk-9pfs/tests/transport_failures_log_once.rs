//! A transport that fails call after call (a virtio device dead after a timeout) is logged
//! once, not at every call; once it carries a message again, its next failure is logged
//! anew. Its own process: the logger is global.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use uk_9pfs::wire::{QT_DIR, Qid, Reply, Request, VERSION_9P2000_L};
use uk_9pfs::{NinePFs, Transport, TransportError};
use uk_vfs::{Errno, O_RDONLY, RamFs, Vfs};

static LINES: Mutex<Vec<String>> = Mutex::new(Vec::new());

struct Capture;
impl log::Log for Capture {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }
    fn log(&self, record: &log::Record<'_>) {
        LINES.lock().unwrap().push(record.args().to_string());
    }
    fn flush(&self) {}
}

/// A server that answers Tversion and Tattach (a directory) and ENOENT to the rest, while
/// `alive`; then every round trip fails.
struct Flaky {
    alive: Arc<AtomicBool>,
}

impl Transport for Flaky {
    fn max_message_size(&self) -> usize {
        8192
    }
    fn round_trip(&mut self, request: &[u8], reply: &mut [u8]) -> Result<usize, TransportError> {
        if !self.alive.load(Ordering::Relaxed) {
            return Err(TransportError::Io);
        }
        let (tag, request) = Request::decode(request).map_err(|_| TransportError::Io)?;
        let answer = match request {
            Request::Version { msize, .. } => Reply::Version {
                msize,
                version: VERSION_9P2000_L,
            },
            Request::Attach { .. } => Reply::Attach {
                qid: Qid {
                    kind: QT_DIR,
                    version: 0,
                    path: 1,
                },
            },
            _ => Reply::Lerror { ecode: 2 },
        };
        let mut out = Vec::new();
        answer
            .encode(tag, &mut out)
            .map_err(|_| TransportError::Io)?;
        reply[..out.len()].copy_from_slice(&out);
        Ok(out.len())
    }
}

fn lines() -> Vec<String> {
    LINES.lock().unwrap().clone()
}

#[test]
fn failures_in_a_row_are_logged_once() {
    log::set_logger(&Capture).unwrap();
    log::set_max_level(log::LevelFilter::Trace);
    let alive = Arc::new(AtomicBool::new(true));
    let transport = Flaky {
        alive: alive.clone(),
    };
    let vfs = Vfs::new(RamFs::new());
    vfs.mkdir("/share", 0o755).unwrap();
    vfs.mount("/share", NinePFs::mount(transport, b"").unwrap())
        .unwrap();
    assert_eq!(vfs.open("/share/missing", O_RDONLY, 0), Err(Errno::ENOENT));
    assert_eq!(lines(), Vec::<String>::new());

    alive.store(false, Ordering::Relaxed);
    for _ in 0..3 {
        assert_eq!(vfs.open("/share/gone", O_RDONLY, 0), Err(Errno::EIO));
        assert_eq!(vfs.stat("/share/other").err(), Some(Errno::EIO));
    }
    let logged = lines();
    assert_eq!(logged.len(), 1, "{logged:#?}");
    assert!(logged[0].contains("transport failed: Io"), "{logged:#?}");

    // Carrying messages again, then failing again: logged again, once.
    alive.store(true, Ordering::Relaxed);
    assert_eq!(vfs.open("/share/missing", O_RDONLY, 0), Err(Errno::ENOENT));
    alive.store(false, Ordering::Relaxed);
    assert_eq!(vfs.open("/share/gone", O_RDONLY, 0), Err(Errno::EIO));
    assert_eq!(vfs.open("/share/gone", O_RDONLY, 0), Err(Errno::EIO));
    assert_eq!(lines().len(), 2, "{:#?}", lines());
}
