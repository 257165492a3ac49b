//! 9P2000.L messages: encoding and bounds-checked decoding.
//!
//! Every message is `size[4] type[1] tag[2] body`, little-endian, where `size` counts the
//! whole message. Strings are `len[2] bytes` (9P strings are bytes: a host file name need
//! not be UTF-8, so none is checked).
//!
//! Both directions are here: the client encodes [`Request`]s and decodes [`Reply`]s, the
//! host tests' server does the opposite. Decoding never panics and never trusts a length
//! field: a message that is short, longer than its fields, or whose `size` disagrees with
//! the bytes delivered gives a [`WireError`].

use alloc::vec::Vec;
use core::fmt;

/// The protocol version this crate speaks.
pub const VERSION_9P2000_L: &[u8] = b"9P2000.L";
/// The tag of `Tversion`/`Rversion`.
pub const NOTAG: u16 = 0xFFFF;
/// "No fid" (`afid` of an `Tattach` without authentication).
pub const NOFID: u32 = 0xFFFF_FFFF;
/// Bytes of `size[4] type[1] tag[2]`.
pub const HEADER_SIZE: usize = 7;
/// Most names one `Twalk` may carry (`MAXWELEM`).
pub const MAX_WALK_NAMES: usize = 16;
/// Bytes of an `Rread` (and `Rreaddir`) besides its data: header and `count[4]`.
pub const RREAD_OVERHEAD: usize = HEADER_SIZE + 4;
/// Bytes of a `Twrite` besides its data: header, `fid[4] offset[8] count[4]`.
pub const TWRITE_OVERHEAD: usize = HEADER_SIZE + 16;

/// `Rlerror`: an error number from the server.
pub const RLERROR: u8 = 7;
/// `Tstatfs`.
pub const TSTATFS: u8 = 8;
/// `Tlopen`.
pub const TLOPEN: u8 = 12;
/// `Tlcreate`.
pub const TLCREATE: u8 = 14;
/// `Tsymlink`.
pub const TSYMLINK: u8 = 16;
/// `Treadlink`.
pub const TREADLINK: u8 = 22;
/// `Tgetattr`.
pub const TGETATTR: u8 = 24;
/// `Tsetattr`.
pub const TSETATTR: u8 = 26;
/// `Treaddir`.
pub const TREADDIR: u8 = 40;
/// `Tfsync`.
pub const TFSYNC: u8 = 50;
/// `Tlink`.
pub const TLINK: u8 = 70;
/// `Tmkdir`.
pub const TMKDIR: u8 = 72;
/// `Trenameat`.
pub const TRENAMEAT: u8 = 74;
/// `Tunlinkat`.
pub const TUNLINKAT: u8 = 76;
/// `Tversion`.
pub const TVERSION: u8 = 100;
/// `Tattach`.
pub const TATTACH: u8 = 104;
/// `Twalk`.
pub const TWALK: u8 = 110;
/// `Tread`.
pub const TREAD: u8 = 116;
/// `Twrite`.
pub const TWRITE: u8 = 118;
/// `Tclunk`.
pub const TCLUNK: u8 = 120;

/// Qid type: a directory.
pub const QT_DIR: u8 = 0x80;
/// Qid type: a symbolic link.
pub const QT_SYMLINK: u8 = 0x02;
/// Qid type: a plain file (or any other non-directory, non-link).
pub const QT_FILE: u8 = 0x00;

/// `Tgetattr` mask: mode, nlink, uid, gid, rdev, times, ino, size, blocks.
pub const GETATTR_BASIC: u64 = 0x0000_07ff;
/// `Rgetattr` valid bit: the creation time.
pub const GETATTR_BTIME: u64 = 0x0000_0800;

/// `Tsetattr` valid bit: set the mode.
pub const SETATTR_MODE: u32 = 0x0000_0001;
/// `Tsetattr` valid bit: set the owner.
pub const SETATTR_UID: u32 = 0x0000_0002;
/// `Tsetattr` valid bit: set the group.
pub const SETATTR_GID: u32 = 0x0000_0004;
/// `Tsetattr` valid bit: set the size (truncate).
pub const SETATTR_SIZE: u32 = 0x0000_0008;
/// `Tsetattr` valid bit: set the access time (to now, unless `SETATTR_ATIME_SET`).
pub const SETATTR_ATIME: u32 = 0x0000_0010;
/// `Tsetattr` valid bit: set the modification time (to now, unless `SETATTR_MTIME_SET`).
pub const SETATTR_MTIME: u32 = 0x0000_0020;
/// `Tsetattr` valid bit: set the change time.
pub const SETATTR_CTIME: u32 = 0x0000_0040;
/// `Tsetattr` valid bit: the access time is the one given.
pub const SETATTR_ATIME_SET: u32 = 0x0000_0080;
/// `Tsetattr` valid bit: the modification time is the one given.
pub const SETATTR_MTIME_SET: u32 = 0x0000_0100;

/// `Tlopen`/`Tlcreate` flag: read only. The 9P2000.L open flags are Linux's x86 values on
/// every architecture (aarch64 Linux numbers `O_DIRECTORY` differently).
pub const DOTL_RDONLY: u32 = 0;
/// Open flag: write only.
pub const DOTL_WRONLY: u32 = 0o1;
/// Open flag: read and write.
pub const DOTL_RDWR: u32 = 0o2;
/// Open flag: create.
pub const DOTL_CREATE: u32 = 0o100;
/// Open flag: fail if the name exists.
pub const DOTL_EXCL: u32 = 0o200;
/// Open flag: truncate.
pub const DOTL_TRUNC: u32 = 0o1000;
/// Open flag: append.
pub const DOTL_APPEND: u32 = 0o2000;
/// Open flag: must be a directory.
pub const DOTL_DIRECTORY: u32 = 0o200000;

/// `Tunlinkat` flag: remove a directory.
pub const AT_REMOVEDIR: u32 = 0x200;

/// Why bytes are not a well-formed message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WireError {
    /// The message ends before one of its fields.
    Truncated,
    /// The `size` field says `declared` bytes but `actual` were delivered.
    SizeMismatch {
        /// The message's `size` field.
        declared: u32,
        /// The bytes delivered.
        actual: usize,
    },
    /// The fields end before the message does.
    TrailingBytes,
    /// The type byte is not a message this crate knows in this direction.
    UnknownType(u8),
    /// An `Rreaddir` entry or a `Twalk` name count is malformed.
    Malformed,
    /// A string longer than 65535 bytes, or a message longer than 4 GiB, cannot be encoded.
    TooLong,
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WireError::Truncated => f.write_str("9P message truncated"),
            WireError::SizeMismatch { declared, actual } => write!(
                f,
                "9P size field says {declared} bytes, {actual} were delivered"
            ),
            WireError::TrailingBytes => f.write_str("9P message has bytes after its fields"),
            WireError::UnknownType(t) => write!(f, "unknown 9P message type {t}"),
            WireError::Malformed => f.write_str("malformed 9P message body"),
            WireError::TooLong => f.write_str("9P string or message too long to encode"),
        }
    }
}

/// A server's unique identity of a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Qid {
    /// `QT_DIR`, `QT_SYMLINK`, `QT_FILE`, ...
    pub kind: u8,
    /// Changes when the file changes (server-defined).
    pub version: u32,
    /// Unique per file on the server: the inode number, in effect.
    pub path: u64,
}

impl Qid {
    /// Whether the qid names a directory.
    pub fn is_dir(&self) -> bool {
        self.kind & QT_DIR != 0
    }
    /// Whether the qid names a symbolic link.
    pub fn is_symlink(&self) -> bool {
        self.kind & QT_SYMLINK != 0
    }
}

/// The attributes of `Rgetattr`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Attr {
    /// Which fields are valid (`GETATTR_*`).
    pub valid: u64,
    /// The file's qid.
    pub qid: Qid,
    /// Type and permission bits (Linux `st_mode`).
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Hard links.
    pub nlink: u64,
    /// Device number of a device file.
    pub rdev: u64,
    /// Size in bytes.
    pub size: u64,
    /// Preferred I/O size.
    pub blksize: u64,
    /// 512-byte blocks allocated.
    pub blocks: u64,
    /// Last access: seconds.
    pub atime_sec: u64,
    /// Last access: nanoseconds.
    pub atime_nsec: u64,
    /// Last modification: seconds.
    pub mtime_sec: u64,
    /// Last modification: nanoseconds.
    pub mtime_nsec: u64,
    /// Last change: seconds.
    pub ctime_sec: u64,
    /// Last change: nanoseconds.
    pub ctime_nsec: u64,
    /// Creation: seconds.
    pub btime_sec: u64,
    /// Creation: nanoseconds.
    pub btime_nsec: u64,
    /// Inode generation (reserved).
    pub generation: u64,
    /// Data version (reserved).
    pub data_version: u64,
}

/// The fields of `Tsetattr`; `valid` (`SETATTR_*`) says which the server applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SetAttr {
    /// Which fields to set.
    pub valid: u32,
    /// New mode.
    pub mode: u32,
    /// New owner.
    pub uid: u32,
    /// New group.
    pub gid: u32,
    /// New size.
    pub size: u64,
    /// New access time: seconds.
    pub atime_sec: u64,
    /// New access time: nanoseconds.
    pub atime_nsec: u64,
    /// New modification time: seconds.
    pub mtime_sec: u64,
    /// New modification time: nanoseconds.
    pub mtime_nsec: u64,
}

/// The filesystem counts of `Rstatfs` (Linux `struct statfs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StatFs {
    /// Filesystem type magic.
    pub fs_type: u32,
    /// Block size.
    pub bsize: u32,
    /// Total blocks.
    pub blocks: u64,
    /// Free blocks.
    pub bfree: u64,
    /// Free blocks for unprivileged users.
    pub bavail: u64,
    /// Total inodes.
    pub files: u64,
    /// Free inodes.
    pub ffree: u64,
    /// Filesystem id.
    pub fsid: u64,
    /// Longest name.
    pub namelen: u32,
}

/// One entry of an `Rreaddir`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dirent<'a> {
    /// The entry's qid.
    pub qid: Qid,
    /// The server's cookie that resumes the listing just after this entry.
    pub offset: u64,
    /// Its `DT_*` type.
    pub kind: u8,
    /// Its name.
    pub name: &'a [u8],
}

impl Dirent<'_> {
    /// Bytes of this entry on the wire.
    pub fn encoded_len(&self) -> usize {
        13 + 8 + 1 + 2 + self.name.len()
    }

    /// Appends this entry's wire form to `out` (for a server building an `Rreaddir`).
    ///
    /// # Errors
    ///
    /// [`WireError::TooLong`] for a name longer than 65535 bytes.
    pub fn encode(&self, out: &mut Vec<u8>) -> Result<(), WireError> {
        let mut w = Writer(out);
        w.qid(&self.qid);
        w.u64(self.offset);
        w.u8(self.kind);
        w.str(self.name)
    }
}

/// The validated entries of an `Rreaddir`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DirData<'a>(&'a [u8]);

impl<'a> DirData<'a> {
    /// Validates `data` as a sequence of entries.
    ///
    /// # Errors
    ///
    /// [`WireError::Truncated`] when an entry runs past the end.
    pub fn parse(data: &'a [u8]) -> Result<Self, WireError> {
        let mut r = Reader::new(data);
        while !r.is_empty() {
            read_dirent(&mut r)?;
        }
        Ok(DirData(data))
    }

    /// The raw bytes.
    pub fn bytes(&self) -> &'a [u8] {
        self.0
    }

    /// The entries, in the server's order.
    pub fn iter(&self) -> DirIter<'a> {
        DirIter(Reader::new(self.0))
    }
}

/// An iterator over [`DirData`].
#[derive(Debug, Clone)]
pub struct DirIter<'a>(Reader<'a>);

impl<'a> Iterator for DirIter<'a> {
    type Item = Dirent<'a>;
    fn next(&mut self) -> Option<Dirent<'a>> {
        if self.0.is_empty() {
            return None;
        }
        // Validated by `DirData::parse`; an error here still ends the listing, never panics.
        read_dirent(&mut self.0).ok()
    }
}

fn read_dirent<'a>(r: &mut Reader<'a>) -> Result<Dirent<'a>, WireError> {
    Ok(Dirent {
        qid: r.qid()?,
        offset: r.u64()?,
        kind: r.u8()?,
        name: r.str()?,
    })
}

/// A T-message (client to server).
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(missing_docs)] // The fields are the protocol's, named as in its specification.
pub enum Request<'a> {
    /// Negotiates the version and the largest message.
    Version { msize: u32, version: &'a [u8] },
    /// Attaches `fid` to the root of the tree `aname`.
    Attach {
        fid: u32,
        afid: u32,
        uname: &'a [u8],
        aname: &'a [u8],
        n_uname: u32,
    },
    /// Walks `fid` through `names` to `newfid` (no names: clones the fid).
    Walk {
        fid: u32,
        newfid: u32,
        names: Vec<&'a [u8]>,
    },
    /// Opens `fid` with Linux open flags.
    Lopen { fid: u32, flags: u32 },
    /// Creates and opens `name` in the directory `fid`; `fid` becomes the new file.
    Lcreate {
        fid: u32,
        name: &'a [u8],
        flags: u32,
        mode: u32,
        gid: u32,
    },
    /// Makes the symbolic link `name` → `target` in the directory `fid`.
    Symlink {
        fid: u32,
        name: &'a [u8],
        target: &'a [u8],
        gid: u32,
    },
    /// Reads a symbolic link.
    Readlink { fid: u32 },
    /// Reads attributes.
    Getattr { fid: u32, request_mask: u64 },
    /// Sets attributes.
    Setattr { fid: u32, attr: SetAttr },
    /// Lists the open directory `fid` from the server's cookie `offset`.
    Readdir { fid: u32, offset: u64, count: u32 },
    /// Flushes a file to stable storage.
    Fsync { fid: u32, datasync: u32 },
    /// Adds the hard link `name` in the directory `dfid` to `fid`.
    Link { dfid: u32, fid: u32, name: &'a [u8] },
    /// Makes the directory `name` in `dfid`.
    Mkdir {
        dfid: u32,
        name: &'a [u8],
        mode: u32,
        gid: u32,
    },
    /// Renames `old_name` in `old_dfid` to `new_name` in `new_dfid`.
    Renameat {
        old_dfid: u32,
        old_name: &'a [u8],
        new_dfid: u32,
        new_name: &'a [u8],
    },
    /// Removes `name` from `dfid` (`AT_REMOVEDIR` for a directory).
    Unlinkat {
        dfid: u32,
        name: &'a [u8],
        flags: u32,
    },
    /// Reads at `offset`.
    Read { fid: u32, offset: u64, count: u32 },
    /// Writes `data` at `offset`.
    Write {
        fid: u32,
        offset: u64,
        data: &'a [u8],
    },
    /// Forgets `fid`.
    Clunk { fid: u32 },
    /// Filesystem counts.
    Statfs { fid: u32 },
}

/// An R-message (server to client).
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(missing_docs)] // The fields are the protocol's, named as in its specification.
pub enum Reply<'a> {
    /// The request failed with the Linux error number `ecode`.
    Lerror { ecode: u32 },
    /// The server's version and largest message.
    Version { msize: u32, version: &'a [u8] },
    /// The root's qid.
    Attach { qid: Qid },
    /// One qid per name walked.
    Walk { qids: Vec<Qid> },
    /// The opened file's qid and the largest I/O the server promises atomically (0: any).
    Lopen { qid: Qid, iounit: u32 },
    /// The created file's qid and iounit.
    Lcreate { qid: Qid, iounit: u32 },
    /// The link's qid.
    Symlink { qid: Qid },
    /// The link's target.
    Readlink { target: &'a [u8] },
    /// The attributes.
    Getattr(Attr),
    /// Attributes set.
    Setattr,
    /// Directory entries.
    Readdir { data: DirData<'a> },
    /// Flushed.
    Fsync,
    /// Linked.
    Link,
    /// The new directory's qid.
    Mkdir { qid: Qid },
    /// Renamed.
    Renameat,
    /// Removed.
    Unlinkat,
    /// The bytes read.
    Read { data: &'a [u8] },
    /// The bytes written.
    Write { count: u32 },
    /// Forgotten.
    Clunk,
    /// Filesystem counts.
    Statfs(StatFs),
}

impl Request<'_> {
    /// The message's type byte.
    pub fn message_type(&self) -> u8 {
        match self {
            Request::Version { .. } => TVERSION,
            Request::Attach { .. } => TATTACH,
            Request::Walk { .. } => TWALK,
            Request::Lopen { .. } => TLOPEN,
            Request::Lcreate { .. } => TLCREATE,
            Request::Symlink { .. } => TSYMLINK,
            Request::Readlink { .. } => TREADLINK,
            Request::Getattr { .. } => TGETATTR,
            Request::Setattr { .. } => TSETATTR,
            Request::Readdir { .. } => TREADDIR,
            Request::Fsync { .. } => TFSYNC,
            Request::Link { .. } => TLINK,
            Request::Mkdir { .. } => TMKDIR,
            Request::Renameat { .. } => TRENAMEAT,
            Request::Unlinkat { .. } => TUNLINKAT,
            Request::Read { .. } => TREAD,
            Request::Write { .. } => TWRITE,
            Request::Clunk { .. } => TCLUNK,
            Request::Statfs { .. } => TSTATFS,
        }
    }

    /// Replaces the contents of `out` with this message under `tag`.
    ///
    /// # Errors
    ///
    /// [`WireError::TooLong`] for a string over 65535 bytes, more than 65535 walk names,
    /// or a message over 4 GiB.
    pub fn encode(&self, tag: u16, out: &mut Vec<u8>) -> Result<(), WireError> {
        let mut w = Writer::start(out, self.message_type(), tag);
        match self {
            Request::Version { msize, version } => {
                w.u32(*msize);
                w.str(version)?;
            }
            Request::Attach {
                fid,
                afid,
                uname,
                aname,
                n_uname,
            } => {
                w.u32(*fid);
                w.u32(*afid);
                w.str(uname)?;
                w.str(aname)?;
                w.u32(*n_uname);
            }
            Request::Walk { fid, newfid, names } => {
                w.u32(*fid);
                w.u32(*newfid);
                w.u16(u16::try_from(names.len()).map_err(|_| WireError::TooLong)?);
                for n in names {
                    w.str(n)?;
                }
            }
            Request::Lopen { fid, flags } => {
                w.u32(*fid);
                w.u32(*flags);
            }
            Request::Lcreate {
                fid,
                name,
                flags,
                mode,
                gid,
            } => {
                w.u32(*fid);
                w.str(name)?;
                w.u32(*flags);
                w.u32(*mode);
                w.u32(*gid);
            }
            Request::Symlink {
                fid,
                name,
                target,
                gid,
            } => {
                w.u32(*fid);
                w.str(name)?;
                w.str(target)?;
                w.u32(*gid);
            }
            Request::Readlink { fid } | Request::Clunk { fid } | Request::Statfs { fid } => {
                w.u32(*fid)
            }
            Request::Getattr { fid, request_mask } => {
                w.u32(*fid);
                w.u64(*request_mask);
            }
            Request::Setattr { fid, attr } => {
                w.u32(*fid);
                w.u32(attr.valid);
                w.u32(attr.mode);
                w.u32(attr.uid);
                w.u32(attr.gid);
                w.u64(attr.size);
                w.u64(attr.atime_sec);
                w.u64(attr.atime_nsec);
                w.u64(attr.mtime_sec);
                w.u64(attr.mtime_nsec);
            }
            Request::Readdir { fid, offset, count } | Request::Read { fid, offset, count } => {
                w.u32(*fid);
                w.u64(*offset);
                w.u32(*count);
            }
            Request::Fsync { fid, datasync } => {
                w.u32(*fid);
                w.u32(*datasync);
            }
            Request::Link { dfid, fid, name } => {
                w.u32(*dfid);
                w.u32(*fid);
                w.str(name)?;
            }
            Request::Mkdir {
                dfid,
                name,
                mode,
                gid,
            } => {
                w.u32(*dfid);
                w.str(name)?;
                w.u32(*mode);
                w.u32(*gid);
            }
            Request::Renameat {
                old_dfid,
                old_name,
                new_dfid,
                new_name,
            } => {
                w.u32(*old_dfid);
                w.str(old_name)?;
                w.u32(*new_dfid);
                w.str(new_name)?;
            }
            Request::Unlinkat { dfid, name, flags } => {
                w.u32(*dfid);
                w.str(name)?;
                w.u32(*flags);
            }
            Request::Write { fid, offset, data } => {
                w.u32(*fid);
                w.u64(*offset);
                w.u32(u32::try_from(data.len()).map_err(|_| WireError::TooLong)?);
                w.bytes(data);
            }
        }
        w.finish()
    }
}

impl<'a> Request<'a> {
    /// Decodes a whole T-message; returns its tag and body.
    ///
    /// # Errors
    ///
    /// A [`WireError`] for anything but exactly one well-formed request.
    pub fn decode(bytes: &'a [u8]) -> Result<(u16, Request<'a>), WireError> {
        let (ty, tag, mut r) = frame(bytes)?;
        let req = match ty {
            TVERSION => Request::Version {
                msize: r.u32()?,
                version: r.str()?,
            },
            TATTACH => Request::Attach {
                fid: r.u32()?,
                afid: r.u32()?,
                uname: r.str()?,
                aname: r.str()?,
                n_uname: r.u32()?,
            },
            TWALK => {
                let fid = r.u32()?;
                let newfid = r.u32()?;
                let n = r.u16()? as usize;
                if n > MAX_WALK_NAMES {
                    return Err(WireError::Malformed);
                }
                let mut names = Vec::with_capacity(n);
                for _ in 0..n {
                    names.push(r.str()?);
                }
                Request::Walk { fid, newfid, names }
            }
            TLOPEN => Request::Lopen {
                fid: r.u32()?,
                flags: r.u32()?,
            },
            TLCREATE => Request::Lcreate {
                fid: r.u32()?,
                name: r.str()?,
                flags: r.u32()?,
                mode: r.u32()?,
                gid: r.u32()?,
            },
            TSYMLINK => Request::Symlink {
                fid: r.u32()?,
                name: r.str()?,
                target: r.str()?,
                gid: r.u32()?,
            },
            TREADLINK => Request::Readlink { fid: r.u32()? },
            TGETATTR => Request::Getattr {
                fid: r.u32()?,
                request_mask: r.u64()?,
            },
            TSETATTR => Request::Setattr {
                fid: r.u32()?,
                attr: SetAttr {
                    valid: r.u32()?,
                    mode: r.u32()?,
                    uid: r.u32()?,
                    gid: r.u32()?,
                    size: r.u64()?,
                    atime_sec: r.u64()?,
                    atime_nsec: r.u64()?,
                    mtime_sec: r.u64()?,
                    mtime_nsec: r.u64()?,
                },
            },
            TREADDIR => Request::Readdir {
                fid: r.u32()?,
                offset: r.u64()?,
                count: r.u32()?,
            },
            TFSYNC => Request::Fsync {
                fid: r.u32()?,
                datasync: r.u32()?,
            },
            TLINK => Request::Link {
                dfid: r.u32()?,
                fid: r.u32()?,
                name: r.str()?,
            },
            TMKDIR => Request::Mkdir {
                dfid: r.u32()?,
                name: r.str()?,
                mode: r.u32()?,
                gid: r.u32()?,
            },
            TRENAMEAT => Request::Renameat {
                old_dfid: r.u32()?,
                old_name: r.str()?,
                new_dfid: r.u32()?,
                new_name: r.str()?,
            },
            TUNLINKAT => Request::Unlinkat {
                dfid: r.u32()?,
                name: r.str()?,
                flags: r.u32()?,
            },
            TREAD => Request::Read {
                fid: r.u32()?,
                offset: r.u64()?,
                count: r.u32()?,
            },
            TWRITE => {
                let fid = r.u32()?;
                let offset = r.u64()?;
                let count = r.u32()? as usize;
                Request::Write {
                    fid,
                    offset,
                    data: r.take(count)?,
                }
            }
            TCLUNK => Request::Clunk { fid: r.u32()? },
            TSTATFS => Request::Statfs { fid: r.u32()? },
            other => return Err(WireError::UnknownType(other)),
        };
        r.finish()?;
        Ok((tag, req))
    }
}

impl Reply<'_> {
    /// The message's type byte.
    pub fn message_type(&self) -> u8 {
        match self {
            Reply::Lerror { .. } => RLERROR,
            Reply::Version { .. } => TVERSION + 1,
            Reply::Attach { .. } => TATTACH + 1,
            Reply::Walk { .. } => TWALK + 1,
            Reply::Lopen { .. } => TLOPEN + 1,
            Reply::Lcreate { .. } => TLCREATE + 1,
            Reply::Symlink { .. } => TSYMLINK + 1,
            Reply::Readlink { .. } => TREADLINK + 1,
            Reply::Getattr(_) => TGETATTR + 1,
            Reply::Setattr => TSETATTR + 1,
            Reply::Readdir { .. } => TREADDIR + 1,
            Reply::Fsync => TFSYNC + 1,
            Reply::Link => TLINK + 1,
            Reply::Mkdir { .. } => TMKDIR + 1,
            Reply::Renameat => TRENAMEAT + 1,
            Reply::Unlinkat => TUNLINKAT + 1,
            Reply::Read { .. } => TREAD + 1,
            Reply::Write { .. } => TWRITE + 1,
            Reply::Clunk => TCLUNK + 1,
            Reply::Statfs(_) => TSTATFS + 1,
        }
    }

    /// Replaces the contents of `out` with this message under `tag`.
    ///
    /// # Errors
    ///
    /// [`WireError::TooLong`] for a string over 65535 bytes, more than 65535 qids, or a
    /// message over 4 GiB.
    pub fn encode(&self, tag: u16, out: &mut Vec<u8>) -> Result<(), WireError> {
        let mut w = Writer::start(out, self.message_type(), tag);
        match self {
            Reply::Lerror { ecode } => w.u32(*ecode),
            Reply::Version { msize, version } => {
                w.u32(*msize);
                w.str(version)?;
            }
            Reply::Attach { qid } | Reply::Symlink { qid } | Reply::Mkdir { qid } => w.qid(qid),
            Reply::Walk { qids } => {
                w.u16(u16::try_from(qids.len()).map_err(|_| WireError::TooLong)?);
                for q in qids {
                    w.qid(q);
                }
            }
            Reply::Lopen { qid, iounit } | Reply::Lcreate { qid, iounit } => {
                w.qid(qid);
                w.u32(*iounit);
            }
            Reply::Readlink { target } => w.str(target)?,
            Reply::Getattr(a) => {
                w.u64(a.valid);
                w.qid(&a.qid);
                w.u32(a.mode);
                w.u32(a.uid);
                w.u32(a.gid);
                for v in [
                    a.nlink,
                    a.rdev,
                    a.size,
                    a.blksize,
                    a.blocks,
                    a.atime_sec,
                    a.atime_nsec,
                    a.mtime_sec,
                    a.mtime_nsec,
                    a.ctime_sec,
                    a.ctime_nsec,
                    a.btime_sec,
                    a.btime_nsec,
                    a.generation,
                    a.data_version,
                ] {
                    w.u64(v);
                }
            }
            Reply::Setattr
            | Reply::Fsync
            | Reply::Link
            | Reply::Renameat
            | Reply::Unlinkat
            | Reply::Clunk => {}
            Reply::Readdir { data } => {
                let bytes = data.bytes();
                w.u32(u32::try_from(bytes.len()).map_err(|_| WireError::TooLong)?);
                w.bytes(bytes);
            }
            Reply::Read { data } => {
                w.u32(u32::try_from(data.len()).map_err(|_| WireError::TooLong)?);
                w.bytes(data);
            }
            Reply::Write { count } => w.u32(*count),
            Reply::Statfs(s) => {
                w.u32(s.fs_type);
                w.u32(s.bsize);
                w.u64(s.blocks);
                w.u64(s.bfree);
                w.u64(s.bavail);
                w.u64(s.files);
                w.u64(s.ffree);
                w.u64(s.fsid);
                w.u32(s.namelen);
            }
        }
        w.finish()
    }
}

impl<'a> Reply<'a> {
    /// Decodes a whole R-message; returns its tag and body.
    ///
    /// # Errors
    ///
    /// A [`WireError`] for anything but exactly one well-formed reply.
    pub fn decode(bytes: &'a [u8]) -> Result<(u16, Reply<'a>), WireError> {
        let (ty, tag, mut r) = frame(bytes)?;
        let reply = match ty {
            RLERROR => Reply::Lerror { ecode: r.u32()? },
            t if t == TVERSION + 1 => Reply::Version {
                msize: r.u32()?,
                version: r.str()?,
            },
            t if t == TATTACH + 1 => Reply::Attach { qid: r.qid()? },
            t if t == TWALK + 1 => {
                let n = r.u16()? as usize;
                if n > MAX_WALK_NAMES {
                    return Err(WireError::Malformed);
                }
                let mut qids = Vec::with_capacity(n);
                for _ in 0..n {
                    qids.push(r.qid()?);
                }
                Reply::Walk { qids }
            }
            t if t == TLOPEN + 1 => Reply::Lopen {
                qid: r.qid()?,
                iounit: r.u32()?,
            },
            t if t == TLCREATE + 1 => Reply::Lcreate {
                qid: r.qid()?,
                iounit: r.u32()?,
            },
            t if t == TSYMLINK + 1 => Reply::Symlink { qid: r.qid()? },
            t if t == TREADLINK + 1 => Reply::Readlink { target: r.str()? },
            t if t == TGETATTR + 1 => Reply::Getattr(Attr {
                valid: r.u64()?,
                qid: r.qid()?,
                mode: r.u32()?,
                uid: r.u32()?,
                gid: r.u32()?,
                nlink: r.u64()?,
                rdev: r.u64()?,
                size: r.u64()?,
                blksize: r.u64()?,
                blocks: r.u64()?,
                atime_sec: r.u64()?,
                atime_nsec: r.u64()?,
                mtime_sec: r.u64()?,
                mtime_nsec: r.u64()?,
                ctime_sec: r.u64()?,
                ctime_nsec: r.u64()?,
                btime_sec: r.u64()?,
                btime_nsec: r.u64()?,
                generation: r.u64()?,
                data_version: r.u64()?,
            }),
            t if t == TSETATTR + 1 => Reply::Setattr,
            t if t == TREADDIR + 1 => {
                let n = r.u32()? as usize;
                Reply::Readdir {
                    data: DirData::parse(r.take(n)?)?,
                }
            }
            t if t == TFSYNC + 1 => Reply::Fsync,
            t if t == TLINK + 1 => Reply::Link,
            t if t == TMKDIR + 1 => Reply::Mkdir { qid: r.qid()? },
            t if t == TRENAMEAT + 1 => Reply::Renameat,
            t if t == TUNLINKAT + 1 => Reply::Unlinkat,
            t if t == TREAD + 1 => {
                let n = r.u32()? as usize;
                Reply::Read { data: r.take(n)? }
            }
            t if t == TWRITE + 1 => Reply::Write { count: r.u32()? },
            t if t == TCLUNK + 1 => Reply::Clunk,
            t if t == TSTATFS + 1 => Reply::Statfs(StatFs {
                fs_type: r.u32()?,
                bsize: r.u32()?,
                blocks: r.u64()?,
                bfree: r.u64()?,
                bavail: r.u64()?,
                files: r.u64()?,
                ffree: r.u64()?,
                fsid: r.u64()?,
                namelen: r.u32()?,
            }),
            other => return Err(WireError::UnknownType(other)),
        };
        r.finish()?;
        Ok((tag, reply))
    }
}

/// Checks the header against the bytes delivered; returns type, tag and a body reader.
fn frame(bytes: &[u8]) -> Result<(u8, u16, Reader<'_>), WireError> {
    let mut r = Reader::new(bytes);
    let size = r.u32()?;
    if size as usize != bytes.len() {
        return Err(WireError::SizeMismatch {
            declared: size,
            actual: bytes.len(),
        });
    }
    let ty = r.u8()?;
    let tag = r.u16()?;
    Ok((ty, tag, r))
}

/// A cursor that fails, rather than panics, at the end of its bytes.
#[derive(Debug, Clone)]
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Reader(bytes)
    }
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    fn take(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        if n > self.0.len() {
            return Err(WireError::Truncated);
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N], WireError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }
    fn u8(&mut self) -> Result<u8, WireError> {
        Ok(self.array::<1>()?[0])
    }
    fn u16(&mut self) -> Result<u16, WireError> {
        Ok(u16::from_le_bytes(self.array()?))
    }
    fn u32(&mut self) -> Result<u32, WireError> {
        Ok(u32::from_le_bytes(self.array()?))
    }
    fn u64(&mut self) -> Result<u64, WireError> {
        Ok(u64::from_le_bytes(self.array()?))
    }
    fn str(&mut self) -> Result<&'a [u8], WireError> {
        let n = self.u16()? as usize;
        self.take(n)
    }
    fn qid(&mut self) -> Result<Qid, WireError> {
        Ok(Qid {
            kind: self.u8()?,
            version: self.u32()?,
            path: self.u64()?,
        })
    }
    fn finish(&self) -> Result<(), WireError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(WireError::TrailingBytes)
        }
    }
}

/// Appends little-endian fields; `start`/`finish` write the header and patch its size.
struct Writer<'a>(&'a mut Vec<u8>);

impl<'a> Writer<'a> {
    fn start(out: &'a mut Vec<u8>, ty: u8, tag: u16) -> Self {
        out.clear();
        let mut w = Writer(out);
        w.u32(0);
        w.u8(ty);
        w.u16(tag);
        w
    }
    fn finish(self) -> Result<(), WireError> {
        let size = u32::try_from(self.0.len()).map_err(|_| WireError::TooLong)?;
        self.0[..4].copy_from_slice(&size.to_le_bytes());
        Ok(())
    }
    fn bytes(&mut self, b: &[u8]) {
        self.0.extend_from_slice(b);
    }
    fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    fn u16(&mut self, v: u16) {
        self.bytes(&v.to_le_bytes());
    }
    fn u32(&mut self, v: u32) {
        self.bytes(&v.to_le_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.bytes(&v.to_le_bytes());
    }
    fn str(&mut self, s: &[u8]) -> Result<(), WireError> {
        self.u16(u16::try_from(s.len()).map_err(|_| WireError::TooLong)?);
        self.bytes(s);
        Ok(())
    }
    fn qid(&mut self, q: &Qid) {
        self.u8(q.kind);
        self.u32(q.version);
        self.u64(q.path);
    }
}
