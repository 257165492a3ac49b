//! A 9P2000.L server over `std::fs`, and a transport that calls it in-process.
//!
//! Fids are paths (as QEMU's `local` backend keeps them), renames move the paths of the
//! fids below them, and every error is the host's own `errno`.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, FileExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::vec::Vec;
use std::{boxed::Box, format, vec};

use crate::transport::{Transport, TransportError};
use crate::wire::*;

const EBADF: i32 = libc::EBADF;
const EINVAL: i32 = libc::EINVAL;

/// How the server numbers readdir positions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cookies {
    /// 1, 2, 3, ... in name order (tmpfs-like; not stable if the directory changes).
    Index,
    /// A 63-bit hash of the name, entries in hash order (ext4-like; stable).
    Hash,
}

enum Open {
    File(File),
    Dir,
}

struct FidState {
    path: PathBuf,
    open: Option<Open>,
}

/// The server's state; tests inspect it through the shared handle.
pub struct Server {
    root: PathBuf,
    fids: HashMap<u32, FidState>,
    msize: u32,
    /// The largest `msize` the server accepts.
    pub max_msize: u32,
    /// What `Rversion` answers (`None`: echo 9P2000.L).
    pub version_answer: Option<Vec<u8>>,
    /// Readdir cookie style.
    pub cookies: Cookies,
    /// Messages received, by type.
    pub counts: HashMap<u8, usize>,
    /// The largest request received.
    pub largest_request: usize,
}

fn errno_of(e: io::Error) -> i32 {
    e.raw_os_error().unwrap_or(libc::EIO)
}

fn fnv(name: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in name {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

fn qid_of(meta: &fs::Metadata) -> Qid {
    let ft = meta.file_type();
    Qid {
        kind: if ft.is_dir() {
            QT_DIR
        } else if ft.is_symlink() {
            QT_SYMLINK
        } else {
            QT_FILE
        },
        version: meta.mtime() as u32,
        path: meta.ino(),
    }
}

fn dtype_of(meta: &fs::Metadata) -> u8 {
    let ft = meta.file_type();
    if ft.is_dir() {
        4
    } else if ft.is_symlink() {
        10
    } else {
        8
    }
}

fn valid_name(name: &[u8]) -> Result<&OsStr, i32> {
    if name.is_empty() || name.contains(&b'/') || name == b"." || name == b".." {
        return Err(EINVAL);
    }
    Ok(OsStr::from_bytes(name))
}

type Answer = Result<Vec<u8>, i32>;

impl Server {
    /// A server exporting `root`.
    pub fn new(root: &Path, cookies: Cookies) -> Self {
        Server {
            root: root.to_path_buf(),
            fids: HashMap::new(),
            msize: 0,
            max_msize: 1 << 20,
            version_answer: None,
            cookies,
            counts: HashMap::new(),
            largest_request: 0,
        }
    }

    /// Fids in use.
    pub fn open_fids(&self) -> usize {
        self.fids.len()
    }

    /// Messages of type `ty` received.
    pub fn count(&self, ty: u8) -> usize {
        self.counts.get(&ty).copied().unwrap_or(0)
    }

    /// Answers one request.
    pub fn handle(&mut self, request: &[u8]) -> Vec<u8> {
        self.largest_request = self.largest_request.max(request.len());
        let (tag, req) = match Request::decode(request) {
            Ok(x) => x,
            Err(_) => {
                return encode(
                    NOTAG,
                    &Reply::Lerror {
                        ecode: EINVAL as u32,
                    },
                );
            }
        };
        *self.counts.entry(req.message_type()).or_default() += 1;
        if self.msize != 0 && request.len() > self.msize as usize {
            return encode(
                tag,
                &Reply::Lerror {
                    ecode: libc::EMSGSIZE as u32,
                },
            );
        }
        match self.dispatch(tag, req) {
            Ok(out) => out,
            Err(e) => encode(tag, &Reply::Lerror { ecode: e as u32 }),
        }
    }

    fn fid(&self, fid: u32) -> Result<&FidState, i32> {
        self.fids.get(&fid).ok_or(EBADF)
    }

    fn new_fid(&self, fid: u32) -> Result<(), i32> {
        if self.fids.contains_key(&fid) {
            Err(EBADF)
        } else {
            Ok(())
        }
    }

    fn file(&self, fid: u32) -> Result<&File, i32> {
        match &self.fid(fid)?.open {
            Some(Open::File(f)) => Ok(f),
            _ => Err(EBADF),
        }
    }

    fn dispatch(&mut self, tag: u16, req: Request<'_>) -> Answer {
        let ok = |r: Reply<'_>| Ok(encode(tag, &r));
        match req {
            Request::Version { msize, .. } => {
                self.fids.clear();
                self.msize = msize.min(self.max_msize);
                let v = self
                    .version_answer
                    .clone()
                    .unwrap_or_else(|| VERSION_9P2000_L.to_vec());
                ok(Reply::Version {
                    msize: self.msize,
                    version: &v,
                })
            }
            Request::Attach { fid, aname, .. } => {
                self.new_fid(fid)?;
                let path = if aname.is_empty() {
                    self.root.clone()
                } else {
                    self.root.join(valid_name(aname)?)
                };
                let meta = fs::symlink_metadata(&path).map_err(errno_of)?;
                self.fids.insert(fid, FidState { path, open: None });
                ok(Reply::Attach { qid: qid_of(&meta) })
            }
            Request::Walk { fid, newfid, names } => {
                let st = self.fid(fid)?;
                if st.open.is_some() {
                    return Err(EBADF);
                }
                if newfid != fid {
                    self.new_fid(newfid)?;
                }
                let mut path = st.path.clone();
                let mut qids = vec![];
                for (i, name) in names.iter().enumerate() {
                    let is_dir = fs::symlink_metadata(&path).is_ok_and(|m| m.is_dir());
                    if !is_dir {
                        if i == 0 {
                            return Err(libc::ENOTDIR);
                        }
                        break;
                    }
                    let next = if *name == b".." {
                        if path == self.root {
                            path.clone()
                        } else {
                            path.parent().map(Path::to_path_buf).unwrap_or(path.clone())
                        }
                    } else {
                        path.join(valid_name(name)?)
                    };
                    match fs::symlink_metadata(&next) {
                        Ok(m) => qids.push(qid_of(&m)),
                        Err(e) if i == 0 => return Err(errno_of(e)),
                        Err(_) => break,
                    }
                    path = next;
                }
                if qids.len() == names.len() {
                    self.fids.insert(newfid, FidState { path, open: None });
                }
                ok(Reply::Walk { qids })
            }
            Request::Lopen { fid, flags } => {
                let st = self.fid(fid)?;
                if st.open.is_some() {
                    return Err(EBADF);
                }
                let meta = fs::symlink_metadata(&st.path).map_err(errno_of)?;
                let open = if meta.is_dir() {
                    if flags & 3 != DOTL_RDONLY {
                        return Err(libc::EISDIR);
                    }
                    Open::Dir
                } else {
                    if flags & DOTL_DIRECTORY != 0 {
                        return Err(libc::ENOTDIR);
                    }
                    let acc = flags & 3;
                    let f = OpenOptions::new()
                        .read(acc != DOTL_WRONLY)
                        .write(acc != DOTL_RDONLY)
                        .truncate(flags & DOTL_TRUNC != 0)
                        .open(&st.path)
                        .map_err(errno_of)?;
                    Open::File(f)
                };
                self.fids.get_mut(&fid).ok_or(EBADF)?.open = Some(open);
                ok(Reply::Lopen {
                    qid: qid_of(&meta),
                    iounit: 0,
                })
            }
            Request::Lcreate {
                fid,
                name,
                flags,
                mode,
                ..
            } => {
                let st = self.fid(fid)?;
                if st.open.is_some() {
                    return Err(EBADF);
                }
                let path = st.path.join(valid_name(name)?);
                let acc = flags & 3;
                let mut o = OpenOptions::new();
                o.read(acc != DOTL_WRONLY)
                    .write(acc != DOTL_RDONLY)
                    .mode(mode);
                if flags & DOTL_EXCL != 0 {
                    o.create_new(true);
                } else {
                    o.create(true);
                }
                let f = o.open(&path).map_err(errno_of)?;
                let meta = f.metadata().map_err(errno_of)?;
                self.fids.insert(
                    fid,
                    FidState {
                        path,
                        open: Some(Open::File(f)),
                    },
                );
                ok(Reply::Lcreate {
                    qid: qid_of(&meta),
                    iounit: 0,
                })
            }
            Request::Symlink {
                fid, name, target, ..
            } => {
                let path = self.fid(fid)?.path.join(valid_name(name)?);
                std::os::unix::fs::symlink(OsStr::from_bytes(target), &path).map_err(errno_of)?;
                let meta = fs::symlink_metadata(&path).map_err(errno_of)?;
                ok(Reply::Symlink { qid: qid_of(&meta) })
            }
            Request::Readlink { fid } => {
                let t = fs::read_link(&self.fid(fid)?.path).map_err(errno_of)?;
                ok(Reply::Readlink {
                    target: t.as_os_str().as_bytes(),
                })
            }
            Request::Getattr { fid, .. } => {
                let st = self.fid(fid)?;
                let meta = match &st.open {
                    Some(Open::File(f)) => f.metadata(),
                    _ => fs::symlink_metadata(&st.path),
                }
                .map_err(errno_of)?;
                ok(Reply::Getattr(Attr {
                    valid: GETATTR_BASIC,
                    qid: qid_of(&meta),
                    mode: meta.mode(),
                    uid: meta.uid(),
                    gid: meta.gid(),
                    nlink: meta.nlink(),
                    rdev: meta.rdev(),
                    size: meta.size(),
                    blksize: meta.blksize(),
                    blocks: meta.blocks(),
                    atime_sec: meta.atime() as u64,
                    atime_nsec: meta.atime_nsec() as u64,
                    mtime_sec: meta.mtime() as u64,
                    mtime_nsec: meta.mtime_nsec() as u64,
                    ctime_sec: meta.ctime() as u64,
                    ctime_nsec: meta.ctime_nsec() as u64,
                    ..Attr::default()
                }))
            }
            Request::Setattr { fid, attr } => {
                let path = self.fid(fid)?.path.clone();
                if attr.valid & SETATTR_MODE != 0 {
                    fs::set_permissions(&path, fs::Permissions::from_mode(attr.mode & 0o7777))
                        .map_err(errno_of)?;
                }
                if attr.valid & SETATTR_SIZE != 0 {
                    OpenOptions::new()
                        .write(true)
                        .open(&path)
                        .and_then(|f| f.set_len(attr.size))
                        .map_err(errno_of)?;
                }
                if attr.valid & (SETATTR_ATIME | SETATTR_MTIME) != 0 {
                    set_times(&path, &attr)?;
                }
                if attr.valid & (SETATTR_UID | SETATTR_GID) != 0 {
                    // As QEMU's server: lchown on the node itself, -1 for an id not given.
                    let id = |bit: u32, id: u32| (attr.valid & bit != 0).then_some(id);
                    std::os::unix::fs::lchown(
                        &path,
                        id(SETATTR_UID, attr.uid),
                        id(SETATTR_GID, attr.gid),
                    )
                    .map_err(errno_of)?;
                }
                ok(Reply::Setattr)
            }
            Request::Readdir { fid, offset, count } => {
                let st = self.fid(fid)?;
                if !matches!(st.open, Some(Open::Dir)) {
                    return Err(EBADF);
                }
                let data = self.list(&st.path, offset, count as usize)?;
                let data = DirData::parse(&data).map_err(|_| libc::EIO)?;
                ok(Reply::Readdir { data })
            }
            Request::Fsync { fid, .. } => {
                self.file(fid)?.sync_all().map_err(errno_of)?;
                ok(Reply::Fsync)
            }
            Request::Link { dfid, fid, name } => {
                let new = self.fid(dfid)?.path.join(valid_name(name)?);
                fs::hard_link(&self.fid(fid)?.path, new).map_err(errno_of)?;
                ok(Reply::Link)
            }
            Request::Mkdir {
                dfid, name, mode, ..
            } => {
                let path = self.fid(dfid)?.path.join(valid_name(name)?);
                fs::DirBuilder::new()
                    .mode(mode)
                    .create(&path)
                    .map_err(errno_of)?;
                let meta = fs::symlink_metadata(&path).map_err(errno_of)?;
                ok(Reply::Mkdir { qid: qid_of(&meta) })
            }
            Request::Renameat {
                old_dfid,
                old_name,
                new_dfid,
                new_name,
            } => {
                let old = self.fid(old_dfid)?.path.join(valid_name(old_name)?);
                let new = self.fid(new_dfid)?.path.join(valid_name(new_name)?);
                fs::rename(&old, &new).map_err(errno_of)?;
                // Fids follow the renamed file, as QEMU's do.
                for st in self.fids.values_mut() {
                    if let Ok(rest) = st.path.strip_prefix(&old) {
                        st.path = new.join(rest);
                    }
                }
                ok(Reply::Renameat)
            }
            Request::Unlinkat { dfid, name, flags } => {
                let path = self.fid(dfid)?.path.join(valid_name(name)?);
                if flags & AT_REMOVEDIR != 0 {
                    fs::remove_dir(&path)
                } else {
                    fs::remove_file(&path)
                }
                .map_err(errno_of)?;
                ok(Reply::Unlinkat)
            }
            Request::Read { fid, offset, count } => {
                let count = (count as usize).min(self.msize as usize - RREAD_OVERHEAD);
                let mut buf = vec![0u8; count];
                let n = self
                    .file(fid)?
                    .read_at(&mut buf, offset)
                    .map_err(errno_of)?;
                ok(Reply::Read { data: &buf[..n] })
            }
            Request::Write { fid, offset, data } => {
                let n = self.file(fid)?.write_at(data, offset).map_err(errno_of)?;
                ok(Reply::Write { count: n as u32 })
            }
            Request::Clunk { fid } => {
                self.fids.remove(&fid).ok_or(EBADF)?;
                ok(Reply::Clunk)
            }
            Request::Statfs { fid } => {
                // The host filesystem's counts, as QEMU's server answers.
                let st = rustix::fs::statfs(&self.fid(fid)?.path).map_err(|e| e.raw_os_error())?;
                ok(Reply::Statfs(StatFs {
                    fs_type: st.f_type as u32,
                    bsize: st.f_bsize as u32,
                    blocks: st.f_blocks,
                    bfree: st.f_bfree,
                    bavail: st.f_bavail,
                    files: st.f_files,
                    ffree: st.f_ffree,
                    // libc keeps `fsid_t`'s words private; the id is not checked here.
                    fsid: 0,
                    namelen: st.f_namelen as u32,
                }))
            }
        }
    }

    /// The directory's entries after the cookie `offset`, packed up to `count` bytes.
    fn list(&self, dir: &Path, offset: u64, count: usize) -> Answer {
        let mut names: Vec<Vec<u8>> = vec![b".".to_vec(), b"..".to_vec()];
        for e in fs::read_dir(dir).map_err(errno_of)? {
            names.push(e.map_err(errno_of)?.file_name().as_bytes().to_vec());
        }
        let mut keyed: Vec<(u64, Vec<u8>)> = match self.cookies {
            Cookies::Index => {
                names.sort();
                names
                    .into_iter()
                    .enumerate()
                    .map(|(i, n)| (i as u64 + 1, n))
                    .collect()
            }
            Cookies::Hash => names
                .into_iter()
                // Large, like ext4's: past the client's direct range.
                .map(|n| ((fnv(&n) >> 1) | (1 << 40), n))
                .collect(),
        };
        keyed.sort();
        let mut out = Vec::new();
        for (key, name) in keyed.into_iter().filter(|(k, _)| *k > offset) {
            let path = match name.as_slice() {
                b"." => dir.to_path_buf(),
                b".." if dir == self.root => dir.to_path_buf(),
                b".." => dir.parent().unwrap_or(dir).to_path_buf(),
                n => dir.join(OsStr::from_bytes(n)),
            };
            let Ok(meta) = fs::symlink_metadata(&path) else {
                continue; // removed meanwhile
            };
            let e = Dirent {
                qid: qid_of(&meta),
                offset: key,
                kind: dtype_of(&meta),
                name: &name,
            };
            if out.len() + e.encoded_len() > count {
                break;
            }
            e.encode(&mut out).map_err(|_| EINVAL)?;
        }
        Ok(out)
    }
}

fn encode(tag: u16, r: &Reply<'_>) -> Vec<u8> {
    let mut out = Vec::new();
    r.encode(tag, &mut out).expect("test server reply encodes");
    out
}

/// What a test does to a reply before the client sees it: `(request type, reply)`.
pub type Tamper = Box<dyn FnMut(u8, &mut Vec<u8>) + Send>;

/// A transport that hands each request to a shared [`Server`].
pub struct Loopback {
    /// The server.
    pub server: Arc<Mutex<Server>>,
    /// `max_message_size`.
    pub max: usize,
    /// Applied to every reply, when set.
    pub tamper: Option<Tamper>,
}

impl Loopback {
    /// A transport carrying up to `max` bytes.
    pub fn new(server: &Arc<Mutex<Server>>, max: usize) -> Self {
        Loopback {
            server: server.clone(),
            max,
            tamper: None,
        }
    }
}

impl Transport for Loopback {
    fn max_message_size(&self) -> usize {
        self.max
    }
    fn round_trip(&mut self, request: &[u8], reply: &mut [u8]) -> Result<usize, TransportError> {
        if request.len() > self.max {
            return Err(TransportError::TooLarge);
        }
        let mut out = self.server.lock().unwrap().handle(request);
        if let Some(t) = &mut self.tamper {
            t(request.get(4).copied().unwrap_or(0), &mut out);
        }
        let dst = reply.get_mut(..out.len()).ok_or(TransportError::TooLarge)?;
        dst.copy_from_slice(&out);
        Ok(out.len())
    }
}

/// A fresh directory under the system's temporary directory, removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    /// A new, empty directory whose name includes `label`.
    pub fn new(label: &str) -> Self {
        static N: AtomicUsize = AtomicUsize::new(0);
        let p = std::env::temp_dir().join(format!(
            "uk-9pfs-{}-{}-{label}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = fs::remove_dir_all(&p);
        fs::create_dir(&p).unwrap();
        TempDir(p)
    }
    /// Its path.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// `Tsetattr`'s time bits, as QEMU's server applies them: `utimensat` on the node itself.
fn set_times(path: &Path, attr: &SetAttr) -> Result<(), i32> {
    use rustix::fs::{AtFlags, CWD, Timespec, Timestamps, UTIME_NOW, UTIME_OMIT};
    let time = |now: u32, set: u32, sec: u64, nsec: u64| match attr.valid & (now | set) {
        0 => Timespec {
            tv_sec: 0,
            tv_nsec: UTIME_OMIT,
        },
        v if v == now => Timespec {
            tv_sec: 0,
            tv_nsec: UTIME_NOW,
        },
        _ => Timespec {
            tv_sec: sec as i64,
            tv_nsec: nsec as _,
        },
    };
    let times = Timestamps {
        last_access: time(
            SETATTR_ATIME,
            SETATTR_ATIME_SET,
            attr.atime_sec,
            attr.atime_nsec,
        ),
        last_modification: time(
            SETATTR_MTIME,
            SETATTR_MTIME_SET,
            attr.mtime_sec,
            attr.mtime_nsec,
        ),
    };
    rustix::fs::utimensat(CWD, path, &times, AtFlags::SYMLINK_NOFOLLOW)
        .map_err(|e| e.raw_os_error())
}
