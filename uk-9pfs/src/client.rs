//! A synchronous 9P2000.L client: version negotiation, fids, and one typed method per
//! operation.

use alloc::boxed::Box;
use alloc::collections::BTreeSet;
use alloc::vec;
use alloc::vec::Vec;
use core::fmt;

use uk_vfs::Errno;

use crate::transport::{Transport, TransportError};
use crate::wire::{
    self, Attr, DirData, NOFID, NOTAG, Qid, RREAD_OVERHEAD, Reply, Request, SetAttr, StatFs,
    TWRITE_OVERHEAD, VERSION_9P2000_L, WireError,
};

/// A file handle on the server, chosen by the client.
pub type Fid = u32;

/// The `msize` the client offers when the transport carries more: 64 KiB of payload
/// plus headers, so a page-aligned 64 KiB read or write fits one message.
pub const DEFAULT_MSIZE: u32 = 64 * 1024 + 4096;
/// The smallest `msize` the client accepts: a header, a full `Rgetattr`, and room for a
/// 255-byte name in every message that carries one.
pub const MIN_MSIZE: u32 = 512;

/// Why a 9P operation failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// The transport could not carry the message.
    Transport(TransportError),
    /// The reply was not a well-formed message.
    Wire(WireError),
    /// The server answered `Rlerror` with this error.
    Server(Errno),
    /// The reply has another type than the request asks for.
    UnexpectedReply {
        /// The type of the reply the request asks for.
        expected: u8,
        /// The type that came.
        got: u8,
    },
    /// The reply carries another tag than the request.
    TagMismatch {
        /// The request's tag.
        expected: u16,
        /// The reply's tag.
        got: u16,
    },
    /// The server speaks another protocol version (the bytes it answered, at most 64).
    UnsupportedVersion(Vec<u8>),
    /// The negotiated `msize` is below [`MIN_MSIZE`].
    MsizeTooSmall(u32),
    /// Every fid number is in use.
    OutOfFids,
    /// A walk reached fewer names than it was given (the server's partial walk).
    WalkIncomplete,
}

impl Error {
    /// The `errno` this error gives at the VFS boundary: the server's own for
    /// [`Error::Server`], `ENOENT` for a partial walk, `EPROTONOSUPPORT` for another
    /// version, `ENFILE` without fids, `EIO` for everything the transport or a malformed
    /// reply causes.
    pub fn errno(&self) -> Errno {
        match self {
            Error::Server(e) => *e,
            Error::WalkIncomplete => Errno::ENOENT,
            Error::UnsupportedVersion(_) => Errno::EPROTONOSUPPORT,
            Error::OutOfFids => Errno::ENFILE,
            _ => Errno::EIO,
        }
    }
}

impl From<Error> for Errno {
    fn from(e: Error) -> Errno {
        e.errno()
    }
}

impl From<TransportError> for Error {
    fn from(e: TransportError) -> Error {
        Error::Transport(e)
    }
}

impl From<WireError> for Error {
    fn from(e: WireError) -> Error {
        Error::Wire(e)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Transport(e) => write!(f, "9P transport failed: {e:?}"),
            Error::Wire(e) => write!(f, "bad 9P reply: {e}"),
            Error::Server(e) => write!(f, "9P server error: {e}"),
            Error::UnexpectedReply { expected, got } => {
                write!(f, "9P reply of type {got}, expected {expected}")
            }
            Error::TagMismatch { expected, got } => {
                write!(f, "9P reply with tag {got}, expected {expected}")
            }
            Error::UnsupportedVersion(v) => write!(
                f,
                "9P server speaks {:?}, not 9P2000.L",
                alloc::string::String::from_utf8_lossy(v)
            ),
            Error::MsizeTooSmall(m) => write!(f, "9P msize {m} is below the minimum {MIN_MSIZE}"),
            Error::OutOfFids => f.write_str("no free 9P fid"),
            Error::WalkIncomplete => f.write_str("9P walk stopped before the last name"),
        }
    }
}

/// The `Errno` for an `Rlerror` code: Linux numbers pass through, anything the
/// `Errno` table does not know (or 0) is `EIO`.
pub fn errno_from_ecode(ecode: u32) -> Errno {
    match i32::try_from(ecode) {
        Ok(n) if n > 0 && Errno::new(n).name().is_some() => Errno::new(n),
        _ => Errno::EIO,
    }
}

/// Fid numbers: clunked ones are recycled, so a long-running guest never runs out and a
/// server's fid table stays dense. The set of numbers in use guards the free list: a
/// clunk of a number the client never handed out (or already took back) frees nothing,
/// so no number is ever handed out twice.
#[derive(Debug, Default)]
struct Fids {
    next: u32,
    free: Vec<u32>,
    in_use: BTreeSet<u32>,
}

impl Fids {
    fn alloc(&mut self) -> Result<Fid, Error> {
        let fid = match self.free.pop() {
            Some(f) => f,
            None if self.next < NOFID => {
                self.next += 1;
                self.next - 1
            }
            None => return Err(Error::OutOfFids),
        };
        self.in_use.insert(fid);
        Ok(fid)
    }
    fn release(&mut self, fid: Fid) {
        if self.in_use.remove(&fid) {
            self.free.push(fid);
        }
    }
}

/// The result of [`Client::lopen`] and [`Client::lcreate`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Opened {
    /// The file's qid.
    pub qid: Qid,
    /// The server's atomic I/O unit (0: up to `msize`).
    pub iounit: u32,
}

/// A 9P2000.L session over one transport.
///
/// Every method sends one request (or, for large reads and writes, several) and waits
/// for its reply: one request is outstanding at a time, so the client keeps one request
/// and one reply buffer and reuses them. Share it behind a lock (`NinePFs` uses a
/// `spin::Mutex`).
pub struct Client<T: Transport> {
    transport: T,
    msize: u32,
    request: Vec<u8>,
    reply: Vec<u8>,
    fids: Fids,
    tag: u16,
    /// The transport's last round trip failed. Failures in a row are logged once: a dead
    /// device (uk-virtio's after a timeout) fails every later call alike.
    transport_failing: bool,
}

impl<T: Transport + ?Sized> Transport for Box<T> {
    fn max_message_size(&self) -> usize {
        (**self).max_message_size()
    }
    fn round_trip(&mut self, request: &[u8], reply: &mut [u8]) -> Result<usize, TransportError> {
        (**self).round_trip(request, reply)
    }
}

impl<T: Transport> Client<T> {
    /// Negotiates the version: offers `msize = min(transport maximum, DEFAULT_MSIZE)` and
    /// `9P2000.L`, and keeps the server's (smaller or equal) `msize`.
    ///
    /// # Errors
    ///
    /// [`Error::UnsupportedVersion`] if the server answers another version,
    /// [`Error::MsizeTooSmall`] if the transport or the server allows less than
    /// [`MIN_MSIZE`], and transport or decoding errors.
    pub fn new(transport: T) -> Result<Self, Error> {
        let offer = transport
            .max_message_size()
            .min(DEFAULT_MSIZE as usize)
            .try_into()
            .unwrap_or(DEFAULT_MSIZE);
        if offer < MIN_MSIZE {
            return Err(Error::MsizeTooSmall(offer));
        }
        let mut client = Client {
            transport,
            msize: offer,
            request: Vec::new(),
            reply: vec![0; offer as usize],
            fids: Fids::default(),
            tag: 0,
            transport_failing: false,
        };
        let req = Request::Version {
            msize: offer,
            version: VERSION_9P2000_L,
        };
        let msize = match client.call_tagged(&req, NOTAG)? {
            Reply::Version { msize, version } => {
                if version != VERSION_9P2000_L {
                    let shown = &version[..version.len().min(64)];
                    return Err(Error::UnsupportedVersion(shown.to_vec()));
                }
                msize
            }
            _ => return Err(bad_reply()),
        };
        // A server may lower msize, never raise it: take the smaller either way.
        let msize = msize.min(offer);
        if msize < MIN_MSIZE {
            return Err(Error::MsizeTooSmall(msize));
        }
        client.msize = msize;
        client.reply.truncate(msize as usize);
        client.request.reserve(msize as usize);
        Ok(client)
    }

    /// The negotiated largest message.
    pub fn msize(&self) -> u32 {
        self.msize
    }

    /// Fids allocated and not yet clunked.
    pub fn open_fids(&self) -> usize {
        self.fids.in_use.len()
    }

    /// The transport (for a driver's statistics).
    pub fn transport(&self) -> &T {
        &self.transport
    }

    /// The largest payload of one `Tread`/`Rread`.
    fn max_read(&self) -> usize {
        self.msize as usize - RREAD_OVERHEAD
    }

    /// The largest payload of one `Twrite`.
    fn max_write(&self) -> usize {
        self.msize as usize - TWRITE_OVERHEAD
    }

    fn next_tag(&mut self) -> u16 {
        let tag = self.tag;
        // NOTAG belongs to Tversion: skip it.
        self.tag = if tag >= NOTAG - 1 { 0 } else { tag + 1 };
        tag
    }

    /// Sends `req` and returns its reply, checked for tag and type; `Rlerror` is
    /// [`Error::Server`].
    fn call(&mut self, req: &Request<'_>) -> Result<Reply<'_>, Error> {
        let tag = self.next_tag();
        self.call_tagged(req, tag)
    }

    fn call_tagged(&mut self, req: &Request<'_>, tag: u16) -> Result<Reply<'_>, Error> {
        req.encode(tag, &mut self.request)?;
        if self.request.len() > self.msize as usize {
            log::warn!(
                "9pfs: a request of {} bytes, over msize",
                self.request.len()
            );
            return Err(Error::Transport(TransportError::TooLarge));
        }
        let n = match self.transport.round_trip(&self.request, &mut self.reply) {
            Ok(n) => {
                self.transport_failing = false;
                n
            }
            Err(e) => {
                if !core::mem::replace(&mut self.transport_failing, true) {
                    log::warn!(
                        "9pfs: 9P transport failed: {e:?}; further failures in a row are not logged"
                    );
                }
                return Err(Error::Transport(e));
            }
        };
        let Some(bytes) = self.reply.get(..n) else {
            log::warn!("9pfs: the transport claims a reply of {n} bytes, over msize");
            return Err(Error::Transport(TransportError::Io));
        };
        let (got_tag, reply) = Reply::decode(bytes)?;
        if got_tag != tag {
            return Err(Error::TagMismatch {
                expected: tag,
                got: got_tag,
            });
        }
        let expected = req.message_type() + 1;
        match reply {
            Reply::Lerror { ecode } => Err(Error::Server(errno_from_ecode(ecode))),
            r if r.message_type() == expected => Ok(r),
            r => Err(Error::UnexpectedReply {
                expected,
                got: r.message_type(),
            }),
        }
    }

    /// Attaches a new fid to the root of the tree `aname` as `uname`/`n_uname`; returns
    /// the fid and the root's qid.
    ///
    /// # Errors
    ///
    /// The server's error (for example `ENOENT` for an unknown `aname`), or a transport
    /// or decoding error.
    pub fn attach(
        &mut self,
        uname: &[u8],
        aname: &[u8],
        n_uname: u32,
    ) -> Result<(Fid, Qid), Error> {
        let fid = self.fids.alloc()?;
        let req = Request::Attach {
            fid,
            afid: NOFID,
            uname,
            aname,
            n_uname,
        };
        match self.call(&req) {
            Ok(Reply::Attach { qid }) => Ok((fid, qid)),
            Ok(_) => Err(bad_reply()),
            Err(e) => {
                self.fids.release(fid);
                Err(e)
            }
        }
    }

    /// Walks from `fid` through `names` (any number; sent 16 per message) to a new fid;
    /// returns it and the qid of the last name (`None` for a clone: no names).
    ///
    /// # Errors
    ///
    /// The server's error (`ENOENT`, `ENOTDIR`), [`Error::WalkIncomplete`] when the server
    /// walked only part of the names, or a transport or decoding error. No fid is left
    /// allocated on error.
    pub fn walk(&mut self, fid: Fid, names: &[&[u8]]) -> Result<(Fid, Option<Qid>), Error> {
        let newfid = self.fids.alloc()?;
        let mut from = fid;
        let mut last = None;
        let mut chunks = names.chunks(wire::MAX_WALK_NAMES);
        let mut first = true;
        loop {
            let chunk = chunks.next().unwrap_or(&[]);
            if !first && chunk.is_empty() {
                break;
            }
            let req = Request::Walk {
                fid: from,
                newfid,
                names: chunk.to_vec(),
            };
            let outcome = match self.call(&req) {
                Ok(Reply::Walk { qids }) if qids.len() == chunk.len() => Ok(qids.last().copied()),
                // A partial walk leaves newfid untouched (9P): nothing to clunk.
                Ok(Reply::Walk { .. }) => Err(Error::WalkIncomplete),
                Ok(_) => Err(bad_reply()),
                Err(e) => Err(e),
            };
            match outcome {
                Ok(q) => last = q.or(last),
                Err(e) => {
                    if from == newfid {
                        // The first chunks made newfid exist on the server.
                        let _ = self.clunk(newfid);
                    } else {
                        self.fids.release(newfid);
                    }
                    return Err(e);
                }
            }
            first = false;
            from = newfid;
        }
        Ok((newfid, last))
    }

    /// Opens `fid` (not yet opened) with Linux open flags.
    ///
    /// # Errors
    ///
    /// The server's error (`EACCES`, `EISDIR`, ...), or a transport or decoding error.
    pub fn lopen(&mut self, fid: Fid, flags: u32) -> Result<Opened, Error> {
        match self.call(&Request::Lopen { fid, flags })? {
            Reply::Lopen { qid, iounit } => Ok(Opened { qid, iounit }),
            _ => Err(bad_reply()),
        }
    }

    /// Creates and opens `name` in the directory `fid`, which then stands for the new,
    /// open file.
    ///
    /// # Errors
    ///
    /// The server's error (`EEXIST`, ...), or a transport or decoding error.
    pub fn lcreate(
        &mut self,
        fid: Fid,
        name: &[u8],
        flags: u32,
        mode: u32,
        gid: u32,
    ) -> Result<Opened, Error> {
        let req = Request::Lcreate {
            fid,
            name,
            flags,
            mode,
            gid,
        };
        match self.call(&req)? {
            Reply::Lcreate { qid, iounit } => Ok(Opened { qid, iounit }),
            _ => Err(bad_reply()),
        }
    }

    /// Reads from the open `fid` at `offset` into `buf`, in as many messages as `msize`
    /// needs; stops at the end of the file (a short or empty reply). Returns the bytes read.
    ///
    /// # Errors
    ///
    /// The server's or transport's error if the first message fails; after some data, the
    /// data read so far.
    pub fn read(&mut self, fid: Fid, offset: u64, buf: &mut [u8]) -> Result<usize, Error> {
        let mut done = 0;
        while done < buf.len() {
            let want = (buf.len() - done).min(self.max_read());
            let req = Request::Read {
                fid,
                offset: offset.saturating_add(done as u64),
                count: want as u32,
            };
            let data = match self.call(&req) {
                Ok(Reply::Read { data }) => data,
                Ok(_) => return Err(bad_reply()),
                Err(e) if done == 0 => return Err(e),
                Err(_) => break,
            };
            // A server that sends more than asked is broken: never copy past `want`.
            if data.len() > want {
                return Err(Error::Wire(WireError::Malformed));
            }
            buf[done..done + data.len()].copy_from_slice(data);
            done += data.len();
            if data.len() < want {
                break;
            }
        }
        Ok(done)
    }

    /// Writes `data` to the open `fid` at `offset`, in as many messages as `msize` needs;
    /// stops at a short write. Returns the bytes written.
    ///
    /// # Errors
    ///
    /// The server's or transport's error if the first message fails; after some data, the
    /// count written so far.
    pub fn write(&mut self, fid: Fid, offset: u64, data: &[u8]) -> Result<usize, Error> {
        let mut done = 0;
        while done < data.len() {
            let chunk = &data[done..data.len().min(done + self.max_write())];
            let req = Request::Write {
                fid,
                offset: offset.saturating_add(done as u64),
                data: chunk,
            };
            let count = match self.call(&req) {
                Ok(Reply::Write { count }) => count as usize,
                Ok(_) => return Err(bad_reply()),
                Err(e) if done == 0 => return Err(e),
                Err(_) => break,
            };
            if count > chunk.len() {
                return Err(Error::Wire(WireError::Malformed));
            }
            done += count;
            if count < chunk.len() {
                break;
            }
        }
        Ok(done)
    }

    /// Forgets `fid` on the server and recycles its number (also when the server reports
    /// an error: 9P says a clunked fid is gone either way).
    ///
    /// # Errors
    ///
    /// The server's or transport's error.
    pub fn clunk(&mut self, fid: Fid) -> Result<(), Error> {
        let result = self.call(&Request::Clunk { fid }).map(|_| ());
        self.fids.release(fid);
        result
    }

    /// Reads the attributes `request_mask` (`GETATTR_BASIC`, ...) of `fid`.
    ///
    /// # Errors
    ///
    /// The server's error, or a transport or decoding error.
    pub fn getattr(&mut self, fid: Fid, request_mask: u64) -> Result<Attr, Error> {
        match self.call(&Request::Getattr { fid, request_mask })? {
            Reply::Getattr(a) => Ok(a),
            _ => Err(bad_reply()),
        }
    }

    /// Sets the attributes `attr.valid` names.
    ///
    /// # Errors
    ///
    /// The server's error, or a transport or decoding error.
    pub fn setattr(&mut self, fid: Fid, attr: &SetAttr) -> Result<(), Error> {
        self.call(&Request::Setattr { fid, attr: *attr })
            .map(|_| ())
    }

    /// Lists the open directory `fid` from the server's cookie `offset` (0: the start),
    /// one message's worth; calls `each` per entry until it returns `false`. Returns the
    /// number of entries the server sent (0 at the end).
    ///
    /// # Errors
    ///
    /// The server's error, or a transport or decoding error.
    pub fn readdir(
        &mut self,
        fid: Fid,
        offset: u64,
        each: &mut dyn FnMut(wire::Dirent<'_>) -> bool,
    ) -> Result<usize, Error> {
        let count = self.max_read() as u32;
        let data: DirData<'_> = match self.call(&Request::Readdir { fid, offset, count })? {
            Reply::Readdir { data } => data,
            _ => return Err(bad_reply()),
        };
        for e in data.iter() {
            if !each(e) {
                break;
            }
        }
        Ok(data.iter().count())
    }

    /// Makes the directory `name` in `dfid`.
    ///
    /// # Errors
    ///
    /// The server's error (`EEXIST`, ...), or a transport or decoding error.
    pub fn mkdir(&mut self, dfid: Fid, name: &[u8], mode: u32, gid: u32) -> Result<Qid, Error> {
        let req = Request::Mkdir {
            dfid,
            name,
            mode,
            gid,
        };
        match self.call(&req)? {
            Reply::Mkdir { qid } => Ok(qid),
            _ => Err(bad_reply()),
        }
    }

    /// Removes `name` from `dfid`; `flags` is 0 or [`wire::AT_REMOVEDIR`].
    ///
    /// # Errors
    ///
    /// The server's error (`ENOENT`, `ENOTEMPTY`, `EISDIR`, ...), or a transport or
    /// decoding error.
    pub fn unlinkat(&mut self, dfid: Fid, name: &[u8], flags: u32) -> Result<(), Error> {
        self.call(&Request::Unlinkat { dfid, name, flags })
            .map(|_| ())
    }

    /// Renames `old_name` in `old_dfid` to `new_name` in `new_dfid` (replacing a target
    /// as rename(2) does).
    ///
    /// # Errors
    ///
    /// The server's error, or a transport or decoding error.
    pub fn renameat(
        &mut self,
        old_dfid: Fid,
        old_name: &[u8],
        new_dfid: Fid,
        new_name: &[u8],
    ) -> Result<(), Error> {
        let req = Request::Renameat {
            old_dfid,
            old_name,
            new_dfid,
            new_name,
        };
        self.call(&req).map(|_| ())
    }

    /// Makes the symbolic link `name` → `target` in `dfid`.
    ///
    /// # Errors
    ///
    /// The server's error, or a transport or decoding error.
    pub fn symlink(
        &mut self,
        dfid: Fid,
        name: &[u8],
        target: &[u8],
        gid: u32,
    ) -> Result<Qid, Error> {
        let req = Request::Symlink {
            fid: dfid,
            name,
            target,
            gid,
        };
        match self.call(&req)? {
            Reply::Symlink { qid } => Ok(qid),
            _ => Err(bad_reply()),
        }
    }

    /// The target of the symbolic link `fid`.
    ///
    /// # Errors
    ///
    /// The server's error (`EINVAL` for a non-link), or a transport or decoding error.
    pub fn readlink(&mut self, fid: Fid) -> Result<Vec<u8>, Error> {
        match self.call(&Request::Readlink { fid })? {
            Reply::Readlink { target } => Ok(target.to_vec()),
            _ => Err(bad_reply()),
        }
    }

    /// Adds the hard link `name` in `dfid` to the file `fid`.
    ///
    /// # Errors
    ///
    /// The server's error, or a transport or decoding error.
    pub fn link(&mut self, dfid: Fid, fid: Fid, name: &[u8]) -> Result<(), Error> {
        self.call(&Request::Link { dfid, fid, name }).map(|_| ())
    }

    /// Flushes the open `fid` to stable storage (only its data with `datasync`).
    ///
    /// # Errors
    ///
    /// The server's error, or a transport or decoding error.
    pub fn fsync(&mut self, fid: Fid, datasync: bool) -> Result<(), Error> {
        let req = Request::Fsync {
            fid,
            datasync: u32::from(datasync),
        };
        self.call(&req).map(|_| ())
    }

    /// The counts of the filesystem holding `fid`.
    ///
    /// # Errors
    ///
    /// The server's error, or a transport or decoding error.
    pub fn statfs(&mut self, fid: Fid) -> Result<StatFs, Error> {
        match self.call(&Request::Statfs { fid })? {
            Reply::Statfs(s) => Ok(s),
            _ => Err(bad_reply()),
        }
    }
}

/// `call` has checked the reply's type against the request's, so a method's `match` never
/// meets another variant; should it, the reply is treated as malformed rather than
/// trusted (no panic on anything a server sends).
#[cold]
fn bad_reply() -> Error {
    Error::Wire(WireError::Malformed)
}
