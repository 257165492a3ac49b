//! The start-up block a Linux libc reads when a program begins: `argv`, `envp` and the
//! auxiliary vector.
//!
//! On Linux the kernel leaves `argc`, the `argv` and `envp` pointer arrays and the
//! auxiliary vector (`auxv`, pairs of `AT_*` keys and values) at the top of a new
//! program's stack, and the libc's start code (musl's `__libc_start_main`, glibc's
//! `_start`) reads them before `main`. A C program linked into a uk-rs image is started the
//! same way by a call, so [`StartupBlock`] builds that memory on the heap instead: the
//! pointer arrays and the auxiliary vector in one word array, the strings beside it.
//!
//! The auxiliary vector says what a static libc needs: the page size, 16 random bytes
//! (`AT_RANDOM`, the stack-protector and pointer-guard seed), the user and group ids (0:
//! the unikernel's one user is root), `AT_SECURE` = 0, the executable's name, and program
//! headers (`AT_PHDR`) holding one `PT_TLS` header that describes the image's TLS
//! template. The image's linker script already lays out every `__thread` variable of the
//! linked C code in that template; from the header the libc sizes each thread's TLS block
//! and copies the initial values, exactly as it does for a static Linux executable.
//!
//! ```
//! use uk_posix_process::startup::{AT_PAGESZ, StartupBlock, TlsSegment};
//!
//! let block = StartupBlock::new(&[b"prog", b"-v"], &[b"HOME=/"], TlsSegment::NONE, [7; 16])
//!     .unwrap();
//! assert_eq!(block.argc(), 2);
//! assert_eq!(block.aux(AT_PAGESZ), Some(4096));
//! ```

use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::vec::Vec;
use core::ffi::c_char;
use core::sync::atomic::{AtomicUsize, Ordering};

use uk_syscall::Errno;

use crate::system::System;
use crate::{PAGE_SIZE, Pid};

/// Auxiliary vector key: the end of the vector.
pub const AT_NULL: usize = 0;
/// Auxiliary vector key: the address of the program headers.
pub const AT_PHDR: usize = 3;
/// Auxiliary vector key: the size of one program header.
pub const AT_PHENT: usize = 4;
/// Auxiliary vector key: the number of program headers.
pub const AT_PHNUM: usize = 5;
/// Auxiliary vector key: the page size.
pub const AT_PAGESZ: usize = 6;
/// Auxiliary vector key: the real user id.
pub const AT_UID: usize = 11;
/// Auxiliary vector key: the effective user id.
pub const AT_EUID: usize = 12;
/// Auxiliary vector key: the real group id.
pub const AT_GID: usize = 13;
/// Auxiliary vector key: the effective group id.
pub const AT_EGID: usize = 14;
/// Auxiliary vector key: clock ticks per second (`times`).
pub const AT_CLKTCK: usize = 17;
/// Auxiliary vector key: whether the program runs with elevated privileges (here: no).
pub const AT_SECURE: usize = 23;
/// Auxiliary vector key: the address of 16 random bytes.
pub const AT_RANDOM: usize = 25;
/// Auxiliary vector key: the address of the executable's name.
pub const AT_EXECFN: usize = 31;

/// Program header type of a TLS template.
pub const PT_TLS: u32 = 7;
/// Size of an `Elf64_Phdr`.
pub const PHDR_SIZE: usize = 56;

/// The TLS template a libc should give each thread: where its initialised bytes are, how
/// many, its whole size (initialised bytes and the zeroed rest) and its alignment; a
/// `PT_TLS` program header's fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TlsSegment {
    /// Address of the initialised bytes (`p_vaddr`).
    pub vaddr: usize,
    /// Number of initialised bytes (`p_filesz`).
    pub file_size: usize,
    /// Whole size (`p_memsz`).
    pub mem_size: usize,
    /// Alignment (`p_align`).
    pub align: usize,
}

impl TlsSegment {
    /// No thread-local data: the block then has no program headers at all.
    pub const NONE: TlsSegment = TlsSegment {
        vaddr: 0,
        file_size: 0,
        mem_size: 0,
        align: 1,
    };

    /// The image's own TLS template (its linker script's `.tdata` and `.tbss`), which
    /// holds the `__thread` variables of any C code linked into it.
    ///
    /// # Errors
    ///
    /// `EINVAL` if the linker script's symbols are inconsistent.
    #[cfg(target_os = "none")]
    pub fn of_image() -> Result<TlsSegment, Errno> {
        let t = uk_context::tls::image_template().map_err(|_| Errno::EINVAL)?;
        Ok(TlsSegment {
            vaddr: t.tdata().as_ptr() as usize,
            file_size: t.tdata().len(),
            mem_size: t.mem_size(),
            align: t.align(),
        })
    }

    /// The `Elf64_Phdr` bytes of a `PT_TLS` header for this segment (readable, no file
    /// offset: the libc reads the bytes from `p_vaddr`).
    fn phdr(&self) -> [u64; PHDR_SIZE / 8] {
        const PF_R: u64 = 4;
        let (vaddr, file, mem, align) = (
            self.vaddr as u64,
            self.file_size as u64,
            self.mem_size as u64,
            self.align as u64,
        );
        // p_type and p_flags share the first word (both u32, p_type first).
        let type_flags = if cfg!(target_endian = "little") {
            u64::from(PT_TLS) | PF_R << 32
        } else {
            u64::from(PT_TLS) << 32 | PF_R
        };
        [type_flags, 0, vaddr, vaddr, file, mem, align]
    }
}

/// A program's `argv`, `envp` and auxiliary vector, laid out as Linux lays them out on a
/// new program's stack (without `argc`, which start code is given as an argument): the
/// `argv` pointers and a null, the `envp` pointers and a null, then `(key, value)` pairs
/// ending with `AT_NULL`. Everything it points to lives inside the block, which must
/// therefore outlive the program (leak it for a program that never returns).
pub struct StartupBlock {
    words: Box<[usize]>,
    argc: usize,
    /// Index in `words` of the auxiliary vector's first key.
    aux_start: usize,
    // Referred to by address from `words`; never read through these fields.
    _strings: Box<[u8]>,
    _phdr: Box<[u64; PHDR_SIZE / 8]>,
    _random: Box<[u8; 16]>,
}

impl StartupBlock {
    /// Builds the block for `args` (`argv[0]` first) and `env` (`NAME=value` strings),
    /// with `tls` as the program's TLS template and `random` as the `AT_RANDOM` bytes.
    ///
    /// # Errors
    ///
    /// `EINVAL` if a string holds a NUL byte (it could not be passed as a C string), or
    /// `args` is empty (`argv[0]` names the program).
    pub fn new(
        args: &[&[u8]],
        env: &[&[u8]],
        tls: TlsSegment,
        random: [u8; 16],
    ) -> Result<StartupBlock, Errno> {
        if args.is_empty() || args.iter().chain(env).any(|s| s.contains(&0)) {
            return Err(Errno::EINVAL);
        }
        let mut strings = Vec::new();
        let mut offsets = Vec::with_capacity(args.len() + env.len());
        for s in args.iter().chain(env) {
            offsets.push(strings.len());
            strings.extend_from_slice(s);
            strings.push(0);
        }
        // The heap copy does not move once boxed: addresses are taken after boxing.
        let strings: Box<[u8]> = strings.into_boxed_slice();
        let phdr = Box::new(tls.phdr());
        let random = Box::new(random);
        let base = strings.as_ptr() as usize;
        let mut words = Vec::with_capacity(args.len() + env.len() + 2 + 2 * 14);
        words.extend(offsets[..args.len()].iter().map(|o| base + o));
        words.push(0);
        words.extend(offsets[args.len()..].iter().map(|o| base + o));
        words.push(0);
        let aux_start = words.len();
        let (phdr_addr, phnum) = if tls == TlsSegment::NONE {
            (0, 0)
        } else {
            (phdr.as_ptr() as usize, 1)
        };
        for pair in [
            [AT_PHDR, phdr_addr],
            [AT_PHENT, PHDR_SIZE],
            [AT_PHNUM, phnum],
            [AT_PAGESZ, PAGE_SIZE],
            [AT_CLKTCK, 100],
            [AT_UID, 0],
            [AT_EUID, 0],
            [AT_GID, 0],
            [AT_EGID, 0],
            [AT_SECURE, 0],
            [AT_RANDOM, random.as_ptr() as usize],
            [AT_EXECFN, base],
            [AT_NULL, 0],
        ] {
            words.extend(pair);
        }
        Ok(StartupBlock {
            words: words.into_boxed_slice(),
            argc: args.len(),
            aux_start,
            _strings: strings,
            _phdr: phdr,
            _random: random,
        })
    }

    /// The number of arguments (`argc`).
    pub fn argc(&self) -> usize {
        self.argc
    }

    /// The address of `argv[0]`'s pointer: what start code takes as `argv` (and from
    /// which it finds `envp` and the auxiliary vector).
    pub fn argv(&self) -> usize {
        self.words.as_ptr() as usize
    }

    /// The whole block as words, from `argv[0]` to the closing `AT_NULL` pair.
    pub fn words(&self) -> &[usize] {
        &self.words
    }

    /// The arguments, each followed by its NUL (what `/proc/<pid>/cmdline` shows).
    pub fn cmdline(&self) -> &[u8] {
        let mut end = 0;
        for _ in 0..self.argc {
            match self._strings[end..].iter().position(|&c| c == 0) {
                Some(i) => end += i + 1,
                None => break,
            }
        }
        &self._strings[..end]
    }

    /// The value of auxiliary vector entry `key`, if present.
    pub fn aux(&self, key: usize) -> Option<usize> {
        self.words[self.aux_start..]
            .chunks_exact(2)
            .take_while(|p| p[0] != AT_NULL)
            .find(|p| p[0] == key)
            .map(|p| p[1])
    }
}

/// A C program's `main(argc, argv, envp)`.
pub type CMain = unsafe extern "C" fn(i32, *mut *mut c_char, *mut *mut c_char) -> i32;

/// A libc's start routine, in the shape of musl's `__libc_start_main(main, argc, argv,
/// init, fini, ldso)`: it initialises the library from the start-up block `argv` begins,
/// runs `main` and passes its result to `exit` (musl's never returns; if one does, its
/// value is the thread's exit status).
pub type LibcStart = unsafe extern "C" fn(CMain, i32, *mut *mut c_char, usize, usize, usize) -> i32;

/// A C program waiting for its first thread to run it.
struct CStart {
    start: LibcStart,
    main: CMain,
    block: Box<StartupBlock>,
}

/// Programs handed from [`System::spawn_c_program`] to their first thread, by key.
static C_STARTS: spin::Mutex<BTreeMap<usize, CStart>> = spin::Mutex::new(BTreeMap::new());
static NEXT_C_START: AtomicUsize = AtomicUsize::new(0);

/// The first thread of a C program: enters its libc's start routine with the block.
fn run_c_start(key: usize) -> i32 {
    let Some(program) = C_STARTS.lock().remove(&key) else {
        return 127;
    };
    // The libc keeps pointers into the block for the whole run.
    let block: &'static StartupBlock = Box::leak(program.block);
    let argc = block.argc() as i32;
    let argv = block.argv() as *mut *mut c_char;
    // From here the thread runs C: a timer interrupt may deliver its signals.
    crate::interrupt::enter_application_code();
    // SAFETY: calling into C. `start` and `main` are the libc's start routine and the
    // program's `main`, which the image linked and passed to `spawn_c_program` (whose
    // contract this is); the block they read is leaked, so `argv`, `envp` and the
    // auxiliary vector stay valid for the rest of the run.
    #[allow(unsafe_code)]
    let code = unsafe { (program.start)(program.main, argc, argv, 0, 0, 0) };
    crate::interrupt::leave_application_code();
    code
}

impl System {
    /// Starts a static C program as a new process of the image: its first thread calls
    /// `start` (the libc's start routine, musl's `__libc_start_main`) with `main` and the
    /// start-up block, as Linux's `execve` leaves a static executable to its start code.
    /// The thread leaks the block: the libc keeps pointers into it for the whole run.
    /// Returns the new process's id.
    ///
    /// `start` and `main` must be the start routine of the libc the program was linked
    /// with and the program's own `main`: the process runs whatever they do.
    ///
    /// # Errors
    ///
    /// As [`System::spawn_process`] (nothing is leaked then).
    pub fn spawn_c_program(
        &'static self,
        name: &'static str,
        start: LibcStart,
        main: CMain,
        block: StartupBlock,
    ) -> Result<Pid, Errno> {
        let key = NEXT_C_START.fetch_add(1, Ordering::Relaxed);
        let program = alloc::sync::Arc::new(crate::system::procfs::Program {
            cmdline: block.cmdline().to_vec(),
            name: name.as_bytes().to_vec(),
        });
        let block = Box::new(block);
        C_STARTS.lock().insert(key, CStart { start, main, block });
        let pid = self
            .spawn_process(name, run_c_start, key)
            .inspect_err(|_| {
                C_STARTS.lock().remove(&key);
            })?;
        self.set_program(pid, program);
        Ok(pid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CStr;
    use std::vec;

    /// The C string at `addr` (inside the block under test).
    #[allow(unsafe_code)]
    fn c_str(addr: usize) -> &'static [u8] {
        // SAFETY: test only: `addr` points into a live block's NUL-terminated strings.
        unsafe { CStr::from_ptr(addr as *const core::ffi::c_char).to_bytes() }
    }

    /// The `T` at `addr` (inside the block under test).
    #[allow(unsafe_code)]
    fn read<T: Copy>(addr: usize) -> T {
        // SAFETY: test only: `addr` is the address of a `T` inside a live block.
        unsafe { *(addr as *const T) }
    }

    #[test]
    fn lays_out_argv_envp_and_auxv_as_linux_does() {
        let tls = TlsSegment {
            vaddr: 0x1000,
            file_size: 24,
            mem_size: 64,
            align: 16,
        };
        let b = StartupBlock::new(&[b"prog", b"a b"], &[b"X=1"], tls, [9; 16]).unwrap();
        let w = b.words();
        assert_eq!(b.argc(), 2);
        assert_eq!(
            (c_str(w[0]), c_str(w[1]), w[2]),
            (&b"prog"[..], &b"a b"[..], 0)
        );
        assert_eq!((c_str(w[3]), w[4]), (&b"X=1"[..], 0));
        assert_eq!(b.argv(), w.as_ptr() as usize);
        // The vector ends with AT_NULL and nothing after it.
        assert_eq!(&w[w.len() - 2..], &[AT_NULL, 0]);
        assert_eq!(b.aux(AT_PAGESZ), Some(4096));
        assert_eq!(b.aux(AT_SECURE), Some(0));
        assert_eq!(b.aux(AT_PHNUM), Some(1));
        assert_eq!(b.aux(AT_PHENT), Some(PHDR_SIZE));
        assert_eq!(b.aux(AT_EXECFN).map(c_str), Some(&b"prog"[..]));
        assert_eq!(b.aux(12345), None);
        // AT_RANDOM points at the 16 bytes given.
        assert_eq!(read::<[u8; 16]>(b.aux(AT_RANDOM).unwrap()), [9; 16]);
        // The one program header is PT_TLS with the segment's fields at Elf64_Phdr's
        // offsets.
        let phdr: [u8; PHDR_SIZE] = read(b.aux(AT_PHDR).unwrap());
        let u32_at = |o: usize| u32::from_ne_bytes(phdr[o..o + 4].try_into().unwrap());
        let u64_at = |o: usize| u64::from_ne_bytes(phdr[o..o + 8].try_into().unwrap());
        assert_eq!((u32_at(0), u32_at(4)), (PT_TLS, 4));
        assert_eq!(
            (u64_at(16), u64_at(32), u64_at(40), u64_at(48)),
            (0x1000, 24, 64, 16)
        );
    }

    #[test]
    fn without_tls_there_are_no_program_headers() {
        let b = StartupBlock::new(&[b"p"], &[], TlsSegment::NONE, [0; 16]).unwrap();
        assert_eq!(b.words()[..2], [b.aux(AT_EXECFN).unwrap(), 0]);
        assert_eq!(b.words()[2], 0, "empty envp");
        assert_eq!((b.aux(AT_PHDR), b.aux(AT_PHNUM)), (Some(0), Some(0)));
    }

    #[test]
    fn refuses_what_cannot_be_a_c_string() {
        let none = TlsSegment::NONE;
        assert_eq!(
            StartupBlock::new(&[], &[], none, [0; 16]).err(),
            Some(Errno::EINVAL)
        );
        assert!(StartupBlock::new(&[b"a\0b"], &[], none, [0; 16]).is_err());
        assert!(StartupBlock::new(&[b"a"], &[b"X=\0"], none, [0; 16]).is_err());
        let many: Vec<&[u8]> = vec![&b"arg"[..]; 1000];
        assert_eq!(
            StartupBlock::new(&many, &many, none, [0; 16])
                .unwrap()
                .argc(),
            1000
        );
    }
}
