//! What the board learns from the device tree.
//!
//! QEMU hands a non-Linux ELF image no register arguments; it writes the flattened device
//! tree to the start of RAM (`0x4000_0000` on `virt`) as long as the image is linked above it.
//! [`parse`] reads from it everything the board needs and copies it out, so nothing points
//! into the blob afterwards:
//!
//! - RAM: every node under the root with `device_type = "memory"`, all `reg` entries;
//! - what is taken: `/memreserve/` entries, `/reserved-memory` children, the blob itself and
//!   whatever the caller adds (the image), subtracted from RAM to give the usable regions;
//! - the command line: `/chosen/bootargs` (QEMU `-append`), copied into a fixed buffer;
//! - the console: the PL011 named by `/chosen/stdout-path` (a path or an alias, `:options`
//!   ignored), else the first enabled `arm,pl011` node;
//! - the PSCI conduit: `/psci` `method` (`hvc`, or `smc` when QEMU emulates EL2);
//! - the board's name from the root `model`/`compatible`;
//! - the interrupt controller: the first enabled node whose `compatible` names a GICv2 or
//!   GICv3 ([`uk_gic::GicVersion::from_compatible`]) and its first two `reg` entries;
//! - the virtual timer's interrupt: the third specifier of `/timer` `interrupts` (secure
//!   physical, non-secure physical, virtual, hypervisor), translated with
//!   [`uk_gic::dt_intid`];
//! - the CPUs: the `reg` (MPIDR affinity) of every `/cpus` child with
//!   `device_type = "cpu"`, in tree order (logical CPU `i` is the `i`-th; QEMU lists the
//!   boot CPU first);
//! - the virtio-mmio transports: the first `reg` entry and the first interrupt (three cells,
//!   as for the timer) of every enabled node compatible with `virtio,mmio`, in tree order, up
//!   to [`MAX_VIRTIO_MMIO`] (QEMU `virt` has 32, lowest address first; most are empty).
//!
//! # Why not the `fdt` crate here
//!
//! The reader is a single pass over the blob's structure block, written for boot time. The
//! `fdt` crate (0.1.5) was the first choice and is kept as the oracle of the host tests and
//! of an in-image test, but on the boot path it cost too much: it re-parses every property of
//! every node it skips, so each lookup is a walk of the tree. Reading QEMU's tree with it took
//! 266 000 guest instructions with one lookup per item and still 164 000 with all lookups
//! folded into one walk of the root's children, plus about 2 500 distinct instructions of
//! its code, each of which QEMU's TCG must translate on first use (roughly 1 to 2 µs apiece
//! here). This reader takes about 20 000 instructions and a fraction of the code.
//!
//! Every read is bounds-checked and a malformed blob gives [`DtError::Malformed`], never a
//! panic (the host tests feed it truncated and corrupted blobs). Addresses in `reg` are taken
//! as CPU addresses (no `ranges` translation), which holds on `virt`, where every device
//! sits directly under the root.

use core::fmt;

use uk_gic::{GicLayout, GicVersion};
use uk_hal::{MemoryRegion, VirtioMmioSlot};

use crate::fixed_str::FixedStr;
use crate::memmap::{self, Range, RegionList};

/// Most CPUs recorded; further `/cpus` children are ignored.
pub const MAX_CPUS: usize = uk_gic::MAX_CPUS;

/// Capacity of the command-line buffer (Linux's `COMMAND_LINE_SIZE` on arm64).
pub const CMDLINE_LEN: usize = 2048;
/// Most RAM ranges read from memory nodes; further ones are ignored.
pub const MAX_RAM: usize = 16;
/// Most taken ranges (reservations, the blob, the caller's); more is an error, since
/// ignoring a reservation could hand out memory that is in use.
pub const MAX_TAKEN: usize = 24;
/// The largest blob believed: anything bigger means the header is garbage.
pub const MAX_BLOB_SIZE: usize = 16 << 20;
/// Capacity of the board name.
pub const BOARD_LEN: usize = 64;
/// Deepest node nesting accepted.
pub const MAX_DEPTH: usize = 16;
/// Most virtio-mmio transports recorded (QEMU `virt` has 32); further ones are ignored.
pub const MAX_VIRTIO_MMIO: usize = 32;

const FDT_MAGIC: u32 = 0xd00d_feed;
const FDT_BEGIN_NODE: u32 = 1;
const FDT_END_NODE: u32 = 2;
const FDT_PROP: u32 = 3;
const FDT_NOP: u32 = 4;
const FDT_END: u32 = 9;
/// Console candidates remembered while walking (PL011 nodes).
const MAX_UARTS: usize = 4;
/// Aliases remembered while walking.
const MAX_ALIASES: usize = 8;
/// Longest node path remembered for a console candidate.
const PATH_LEN: usize = 128;

/// How PSCI calls reach the firmware (or QEMU, which emulates it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Conduit {
    /// `hvc #0`: the hypervisor (QEMU at EL2) answers.
    Hvc,
    /// `smc #0`: the secure monitor (QEMU at EL3, or when EL2 belongs to the guest).
    Smc,
}

/// Why the device tree could not be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DtError {
    /// No flattened device tree header (bad magic or implausible size).
    NoBlob,
    /// The blob breaks the format at this byte offset of the structure block (or of the
    /// header, for offset 0).
    Malformed(usize),
    /// No memory node with a usable `reg`.
    NoMemory,
    /// More reserved ranges than [`MAX_TAKEN`].
    TooManyReservations,
}

impl fmt::Display for DtError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DtError::NoBlob => f.write_str("no device tree blob (bad magic or size)"),
            DtError::Malformed(at) => write!(f, "malformed device tree (structure offset {at:#x})"),
            DtError::NoMemory => f.write_str("device tree lists no memory"),
            DtError::TooManyReservations => {
                write!(f, "more than {MAX_TAKEN} reserved memory ranges")
            }
        }
    }
}

/// The size of the blob whose header starts with `header`, if the magic is right and the
/// size plausible.
pub fn blob_size(header: [u8; 8]) -> Option<usize> {
    let magic = u32::from_be_bytes([header[0], header[1], header[2], header[3]]);
    let size = u32::from_be_bytes([header[4], header[5], header[6], header[7]]) as usize;
    (magic == FDT_MAGIC && (40..=MAX_BLOB_SIZE).contains(&size)).then_some(size)
}

/// Everything the board keeps from the device tree.
#[derive(Clone, Debug)]
pub struct BootInfo {
    ram: [Range; MAX_RAM],
    ram_len: usize,
    /// Usable memory: RAM minus everything taken, whole pages.
    pub memory: RegionList,
    /// `/chosen/bootargs` (empty if absent), cut at [`CMDLINE_LEN`] bytes.
    pub command_line: FixedStr<CMDLINE_LEN>,
    /// Base address of the PL011 console, if the tree names one.
    pub console: Option<u64>,
    /// The PSCI conduit, if the tree has a `/psci` node with a known method.
    pub psci: Option<Conduit>,
    /// The board's name ([`crate::cpu::board_model`]).
    pub board: FixedStr<BOARD_LEN>,
    /// Where the blob itself lies.
    pub blob: Range,
    /// The interrupt controller, if the tree has one this board drives.
    pub gic: Option<GicLayout>,
    /// The virtual timer's INTID, from `/timer` (PPI 11, INTID 27, on `virt`).
    pub virtual_timer: Option<u32>,
    cpus: [u64; MAX_CPUS],
    cpu_count: usize,
    /// The initial RAM disk (`/chosen/linux,initrd-start` .. `linux,initrd-end`, QEMU
    /// `-initrd`), inside RAM and kept out of `memory`.
    pub initrd: Option<Range>,
    virtio_mmio: [VirtioMmioSlot; MAX_VIRTIO_MMIO],
    virtio_mmio_len: usize,
}

impl BootInfo {
    /// RAM ranges from the memory nodes: sorted, merged, before anything is subtracted.
    pub fn ram(&self) -> &[Range] {
        &self.ram[..self.ram_len]
    }

    /// The CPUs' MPIDR affinities, logical CPU order; at least one (the boot CPU, MPIDR
    /// affinity 0, when the tree lists none).
    pub fn cpus(&self) -> &[u64] {
        &self.cpus[..self.cpu_count.max(1)]
    }

    /// The virtio-mmio transports (`virtio,mmio` nodes), in tree order.
    pub fn virtio_mmio(&self) -> &[VirtioMmioSlot] {
        &self.virtio_mmio[..self.virtio_mmio_len]
    }
}

/// An empty slot, to fill the fixed array.
const NO_SLOT: VirtioMmioSlot = VirtioMmioSlot {
    region: MemoryRegion { base: 0, size: 0 },
    interrupt: None,
};

/// A big-endian `u32` at `at`, if in bounds.
fn be32(bytes: &[u8], at: usize) -> Option<u32> {
    let word = bytes.get(at..at.checked_add(4)?)?;
    Some(u32::from_be_bytes([word[0], word[1], word[2], word[3]]))
}

/// A big-endian number of any number of bytes (cells are at most two here).
fn number(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0, |n, &b| (n << 8) | u64::from(b))
}

/// The NUL-terminated string at the start of `bytes` (without the NUL), if terminated.
/// Names stay bytes: validating every name as UTF-8 would double the reader's work.
fn c_str(bytes: &[u8]) -> Option<&[u8]> {
    let end = bytes.iter().position(|&b| b == 0)?;
    Some(&bytes[..end])
}

/// A string property's text: up to the first NUL, and up to the first invalid UTF-8 byte.
fn text(value: &[u8]) -> &str {
    let value = value.split(|&b| b == 0).next().unwrap_or(&[]);
    match core::str::from_utf8(value) {
        Ok(s) => s,
        // The prefix up to `valid_up_to` is valid UTF-8 by definition.
        Err(e) => core::str::from_utf8(&value[..e.valid_up_to()]).unwrap_or(""),
    }
}

/// The strings of a string-list property (`compatible`).
fn strings(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value.split(|&b| b == 0).filter(|s| !s.is_empty())
}

/// A node name without its unit address.
fn base_name(name: &[u8]) -> &[u8] {
    name.split(|&b| b == b'@').next().unwrap_or(name)
}

/// Whether node `name` is what a path component `wanted` names: the same, or the same
/// without the unit address when `wanted` has none.
fn unit_matches(name: &str, wanted: &str) -> bool {
    name == wanted || (!wanted.contains('@') && name.split('@').next() == Some(wanted))
}

/// Whether the node path `path` is what `wanted` names, component by component.
fn path_matches(path: &str, wanted: &str) -> bool {
    let mut have = path.split('/').filter(|c| !c.is_empty());
    let mut want = wanted.split('/').filter(|c| !c.is_empty());
    loop {
        match (have.next(), want.next()) {
            (None, None) => return true,
            (Some(h), Some(w)) if unit_matches(h, w) => {}
            _ => return false,
        }
    }
}

/// A `#address-cells` or `#size-cells` value (a count above 2 makes `reg` unusable).
fn cell_count(value: &[u8]) -> usize {
    be32(value, 0).map_or(usize::MAX, |count| count as usize)
}

/// `#address-cells` and `#size-cells` of a node, for its children's `reg`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Cells {
    address: usize,
    size: usize,
}

impl Cells {
    /// The devicetree specification's defaults.
    const DEFAULT: Cells = Cells {
        address: 2,
        size: 1,
    };

    /// The `(address, size)` entries of a child's `reg` value; nothing if a cell count is
    /// above 2 (not a CPU address).
    fn entries(self, reg: &[u8]) -> impl Iterator<Item = Range> + '_ {
        let usable = self.address <= 2 && self.size <= 2 && self.address + self.size > 0;
        let chunks = if usable {
            reg.chunks_exact(4 * (self.address + self.size))
        } else {
            [].chunks_exact(1)
        };
        chunks.map(move |chunk| {
            let (address, size) = chunk.split_at(4 * self.address);
            Range::from_base_size(number(address), number(size))
        })
    }
}

/// One token of the structure block.
enum Token<'a> {
    Begin(&'a [u8]),
    Property(&'a [u8], &'a [u8]),
    End,
}

/// The parts of a flattened device tree blob, header checked.
struct Blob<'a> {
    /// `totalsize` from the header.
    size: usize,
    structure: &'a [u8],
    strings: &'a [u8],
    reservations: &'a [u8],
}

impl<'a> Blob<'a> {
    fn new(data: &'a [u8]) -> Result<Self, DtError> {
        let field = |index: usize| {
            be32(data, 4 * index)
                .map(|v| v as usize)
                .ok_or(DtError::NoBlob)
        };
        if field(0)? != FDT_MAGIC as usize {
            return Err(DtError::NoBlob);
        }
        let total = field(1)?;
        let bad = DtError::Malformed(0);
        // Version 17 (what dtc and QEMU write; 16 lacks the structure size, 17 is
        // backward-compatible down to 16).
        if total > data.len() || field(5)? < 17 || field(6)? > 17 {
            return Err(bad);
        }
        let data = &data[..total];
        let block = |offset: usize, size: usize| data.get(offset..offset.checked_add(size)?);
        let structure = block(field(2)?, field(9)?).ok_or(bad)?;
        let strings = block(field(3)?, field(8)?).ok_or(bad)?;
        let reservations = data.get(field(4)?..).ok_or(bad)?;
        if field(2)? % 4 != 0 {
            return Err(bad);
        }
        Ok(Self {
            size: total,
            structure,
            strings,
            reservations,
        })
    }

    /// The `/memreserve/` entries.
    fn reservations(&self) -> impl Iterator<Item = Range> + '_ {
        self.reservations
            .chunks_exact(16)
            .map(|entry| (number(&entry[..8]), number(&entry[8..])))
            .take_while(|&(address, size)| address != 0 || size != 0)
            .map(|(address, size)| Range::from_base_size(address, size))
    }

    /// Calls `visit` with every token of the structure block, in order, checking the nesting.
    fn walk(&self, mut visit: impl FnMut(Token<'a>) -> Result<(), DtError>) -> Result<(), DtError> {
        let block = self.structure;
        let mut at = 0;
        let mut depth = 0usize;
        loop {
            let bad = DtError::Malformed(at);
            let token = be32(block, at).ok_or(bad)?;
            at += 4;
            match token {
                FDT_BEGIN_NODE => {
                    let name = c_str(block.get(at..).ok_or(bad)?).ok_or(bad)?;
                    at = (at + name.len() + 1).next_multiple_of(4);
                    depth += 1;
                    if depth > MAX_DEPTH {
                        return Err(bad);
                    }
                    visit(Token::Begin(name))?;
                }
                FDT_PROP => {
                    let len = be32(block, at).ok_or(bad)? as usize;
                    let name_offset = be32(block, at + 4).ok_or(bad)? as usize;
                    let name = c_str(self.strings.get(name_offset..).ok_or(bad)?).ok_or(bad)?;
                    let value = block
                        .get(at + 8..(at + 8).checked_add(len).ok_or(bad)?)
                        .ok_or(bad)?;
                    at = (at + 8 + len).next_multiple_of(4);
                    if depth == 0 {
                        return Err(bad);
                    }
                    visit(Token::Property(name, value))?;
                }
                FDT_END_NODE => {
                    depth = depth.checked_sub(1).ok_or(bad)?;
                    visit(Token::End)?;
                }
                FDT_NOP => {}
                FDT_END if depth == 0 => return Ok(()),
                _ => return Err(bad),
            }
        }
    }
}

/// A node whose properties are being read.
#[derive(Clone, Copy)]
struct Node<'a> {
    /// The name without unit address.
    base: &'a [u8],
    depth: usize,
    enabled: bool,
    memory: bool,
    pl011: bool,
    gic: Option<GicVersion>,
    cpu: bool,
    /// `compatible` holds `multiboot,ramdisk` (QEMU `-device guest-loader,initrd=`).
    ramdisk: bool,
    /// `compatible` holds `virtio,mmio`.
    virtio_mmio: bool,
    reg: &'a [u8],
    method: Option<&'a str>,
    interrupts: &'a [u8],
}

/// A node on the path from the root to the current node.
#[derive(Clone, Copy)]
struct Frame<'a> {
    name: &'a [u8],
    /// Cell sizes for this node's children.
    cells: Cells,
}

/// What the walk collects before the results are put together.
struct Walk<'a> {
    /// Depth of the innermost open node (the root is 1).
    depth: usize,
    stack: [Frame<'a>; MAX_DEPTH + 1],
    node: Option<Node<'a>>,
    ram: [Range; MAX_RAM],
    ram_len: usize,
    held: [Range; MAX_TAKEN],
    held_len: usize,
    bootargs: &'a [u8],
    initrd: (Option<u64>, Option<u64>),
    stdout_path: Option<&'a str>,
    model: Option<&'a str>,
    compatible: Option<&'a str>,
    psci: Option<Conduit>,
    gic: Option<GicLayout>,
    virtual_timer: Option<u32>,
    cpus: [u64; MAX_CPUS],
    cpu_count: usize,
    virtio_mmio: [VirtioMmioSlot; MAX_VIRTIO_MMIO],
    virtio_mmio_len: usize,
    uarts: [(FixedStr<PATH_LEN>, u64); MAX_UARTS],
    uarts_len: usize,
    aliases: [(&'a str, &'a str); MAX_ALIASES],
    aliases_len: usize,
}

impl<'a> Walk<'a> {
    fn hold(&mut self, range: Range) -> Result<(), DtError> {
        *self
            .held
            .get_mut(self.held_len)
            .ok_or(DtError::TooManyReservations)? = range;
        self.held_len += 1;
        Ok(())
    }

    fn token(&mut self, token: Token<'a>) -> Result<(), DtError> {
        match token {
            Token::Begin(name) => {
                self.finish_node()?;
                self.depth += 1;
                let depth = self.depth;
                self.stack[depth] = Frame {
                    name,
                    cells: Cells::DEFAULT,
                };
                self.node = Some(Node {
                    base: base_name(name),
                    depth,
                    enabled: true,
                    memory: false,
                    pl011: false,
                    gic: None,
                    cpu: false,
                    ramdisk: false,
                    virtio_mmio: false,
                    reg: &[],
                    method: None,
                    interrupts: &[],
                });
            }
            Token::Property(name, value) => self.property(name, value),
            Token::End => {
                self.finish_node()?;
                self.depth -= 1;
            }
        }
        Ok(())
    }

    fn property(&mut self, name: &'a [u8], value: &'a [u8]) {
        let Some(node) = self.node.as_mut() else {
            // A property after a child node: not allowed by the format, ignored.
            return;
        };
        let depth = node.depth;
        match name {
            b"status" => node.enabled = matches!(text(value), "okay" | "ok"),
            b"device_type" => {
                node.memory = text(value) == "memory";
                node.cpu = text(value) == "cpu";
            }
            b"compatible" => {
                node.pl011 = strings(value).any(|c| c == b"arm,pl011");
                node.gic = strings(value).find_map(GicVersion::from_compatible);
                node.ramdisk = strings(value).any(|c| c == b"multiboot,ramdisk");
                node.virtio_mmio = strings(value).any(|c| c == b"virtio,mmio");
            }
            b"reg" => node.reg = value,
            b"interrupts" => node.interrupts = value,
            b"method" => node.method = Some(text(value)),
            b"#address-cells" => self.stack[depth].cells.address = cell_count(value),
            b"#size-cells" => self.stack[depth].cells.size = cell_count(value),
            _ => {}
        }
        match (depth, node.base, name) {
            (1, _, b"model") => self.model = Some(text(value)),
            (1, _, b"compatible") => self.compatible = Some(text(value)),
            (2, b"chosen", b"bootargs") => self.bootargs = value,
            (2, b"chosen", b"linux,initrd-start") if matches!(value.len(), 4 | 8) => {
                self.initrd.0 = Some(number(value));
            }
            (2, b"chosen", b"linux,initrd-end") if matches!(value.len(), 4 | 8) => {
                self.initrd.1 = Some(number(value));
            }
            (2, b"chosen", b"stdout-path") => self.stdout_path = Some(text(value)),
            (2, b"aliases", _) if self.aliases_len < MAX_ALIASES => {
                self.aliases[self.aliases_len] = (text(name), text(value));
                self.aliases_len += 1;
            }
            _ => {}
        }
    }

    /// Acts on the node whose properties are complete.
    fn finish_node(&mut self) -> Result<(), DtError> {
        let Some(node) = self.node.take() else {
            return Ok(());
        };
        if node.depth < 2 || !node.enabled {
            return Ok(());
        }
        let parent = self.stack[node.depth - 1];
        let mut reg = parent.cells.entries(node.reg);
        if node.depth == 2 && node.memory {
            for range in reg {
                if self.ram_len < MAX_RAM {
                    self.ram[self.ram_len] = range;
                    self.ram_len += 1;
                }
            }
        } else if node.depth == 2 && node.base == b"timer" {
            // Three cells per specifier; the virtual timer is the third.
            let cell = |i: usize| be32(node.interrupts, 4 * i);
            self.virtual_timer = match (cell(6), cell(7)) {
                (Some(kind), Some(number)) => uk_gic::dt_intid(kind, number),
                _ => None,
            };
        } else if node.depth == 2 && node.base == b"psci" {
            self.psci = match node.method {
                Some("hvc") => Some(Conduit::Hvc),
                Some("smc") => Some(Conduit::Smc),
                _ => None,
            };
        } else if node.depth == 3 && node.cpu && base_name(parent.name) == b"cpus" {
            if let (Some(first), true) = (reg.next(), self.cpu_count < MAX_CPUS) {
                self.cpus[self.cpu_count] = first.start;
                self.cpu_count += 1;
            }
        } else if let (Some(version), None) = (node.gic, self.gic) {
            let mut frames = [(0, 0); 2];
            for (frame, range) in frames.iter_mut().zip(reg) {
                *frame = (range.start, range.end - range.start);
            }
            self.gic = GicLayout::from_reg(version, &frames).ok();
        } else if node.depth == 3 && node.ramdisk && base_name(parent.name) == b"chosen" {
            // `/chosen/module@...` of QEMU's guest-loader: `reg` in the root's cells (2, 2)
            // or (1, 1), whatever `/chosen` says.
            let (start, size) = match node.reg.len() {
                16 => (number(&node.reg[..8]), number(&node.reg[8..])),
                8 => (number(&node.reg[..4]), number(&node.reg[4..])),
                _ => (0, 0),
            };
            if size > 0 && self.initrd == (None, None) {
                self.initrd = (Some(start), start.checked_add(size));
            }
        } else if node.depth == 3 && base_name(parent.name) == b"reserved-memory" {
            for range in reg {
                self.hold(range)?;
            }
        } else if node.virtio_mmio {
            if let (Some(first), true) = (reg.next(), self.virtio_mmio_len < MAX_VIRTIO_MMIO) {
                // Three cells per specifier (the GIC's `#interrupt-cells`), as for the timer.
                let interrupt = match (be32(node.interrupts, 0), be32(node.interrupts, 4)) {
                    (Some(kind), Some(number)) => uk_gic::dt_intid(kind, number),
                    _ => None,
                };
                self.virtio_mmio[self.virtio_mmio_len] = VirtioMmioSlot {
                    region: MemoryRegion {
                        base: first.start,
                        size: first.end - first.start,
                    },
                    interrupt,
                };
                self.virtio_mmio_len += 1;
            }
        } else if node.pl011 && self.uarts_len < MAX_UARTS {
            if let Some(first) = reg.next() {
                let mut path = FixedStr::new();
                for frame in &self.stack[2..=node.depth] {
                    path.push_str("/");
                    path.push_str(text(frame.name));
                }
                self.uarts[self.uarts_len] = (path, first.start);
                self.uarts_len += 1;
            }
        }
        Ok(())
    }

    /// The console: the PL011 `stdout-path` names, else the first PL011 found.
    fn console(&self) -> Option<u64> {
        let uarts = &self.uarts[..self.uarts_len];
        let named = self.stdout_path.and_then(|path| {
            let path = path.split(':').next().unwrap_or(path);
            let path = if path.starts_with('/') {
                path
            } else {
                self.aliases[..self.aliases_len]
                    .iter()
                    .find(|(alias, _)| *alias == path)?
                    .1
            };
            uarts
                .iter()
                .find(|(candidate, _)| path_matches(candidate.as_str(), path))
        });
        named.or(uarts.first()).map(|&(_, base)| base)
    }
}

/// Reads the device tree `blob`, which lies at physical address `blob_address`; `taken`
/// lists ranges in use besides what the tree itself reserves (the image).
pub fn parse(blob: &[u8], blob_address: u64, taken: &[Range]) -> Result<BootInfo, DtError> {
    let tree = Blob::new(blob)?;
    let blob_range = Range::from_base_size(blob_address, tree.size as u64);
    let mut walk = Walk {
        depth: 0,
        stack: [Frame {
            name: b"",
            cells: Cells {
                address: 0,
                size: 0,
            },
        }; MAX_DEPTH + 1],
        node: None,
        ram: [Range::default(); MAX_RAM],
        ram_len: 0,
        held: [Range::default(); MAX_TAKEN],
        held_len: 0,
        bootargs: &[],
        initrd: (None, None),
        stdout_path: None,
        model: None,
        compatible: None,
        psci: None,
        gic: None,
        virtual_timer: None,
        cpus: [0; MAX_CPUS],
        cpu_count: 0,
        virtio_mmio: [NO_SLOT; MAX_VIRTIO_MMIO],
        virtio_mmio_len: 0,
        uarts: [const { (FixedStr::new(), 0) }; MAX_UARTS],
        uarts_len: 0,
        aliases: [("", ""); MAX_ALIASES],
        aliases_len: 0,
    };
    for &range in taken.iter().chain([&blob_range]) {
        walk.hold(range)?;
    }
    for range in tree.reservations() {
        walk.hold(range)?;
    }
    tree.walk(|token| walk.token(token))?;

    let ram_len = memmap::normalize(&mut walk.ram[..walk.ram_len]);
    if ram_len == 0 {
        return Err(DtError::NoMemory);
    }
    // The initrd counts only if it lies inside RAM (so it is mapped); it is then held.
    let initrd = match walk.initrd {
        (Some(start), Some(end)) if start < end => {
            let range = Range { start, end };
            let in_ram = walk.ram[..ram_len]
                .iter()
                .any(|r| r.start <= start && end <= r.end);
            in_ram.then_some(range)
        }
        _ => None,
    };
    if let Some(range) = initrd {
        walk.hold(range)?;
    }
    let mut ram = walk.ram;
    let memory = memmap::usable(&mut ram[..ram_len], &mut walk.held[..walk.held_len]);
    let mut command_line = FixedStr::new();
    command_line.push_str(text(walk.bootargs));
    let mut board = FixedStr::new();
    board.push_str(crate::cpu::board_model(walk.model, walk.compatible));
    Ok(BootInfo {
        ram: walk.ram,
        ram_len,
        memory,
        command_line,
        console: walk.console(),
        psci: walk.psci,
        board,
        blob: blob_range,
        gic: walk.gic,
        virtual_timer: walk.virtual_timer,
        cpus: walk.cpus,
        cpu_count: walk.cpu_count,
        initrd,
        virtio_mmio: walk.virtio_mmio,
        virtio_mmio_len: walk.virtio_mmio_len,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// QEMU 7.2 `-machine virt -cpu max -m 64M -append "hello world -- a b"`, dumped with
    /// `-machine dumpdtb=` and packed with `dtc` (QEMU's own blob is padded to 1 MiB).
    const QEMU_VIRT: &[u8] = include_bytes!("../testdata/qemu-7.2-virt-max-64m.dtb");
    /// QEMU 7.2 `-machine virt,gic-version=3 -smp 2` and the default (GICv2) with `-smp 2`.
    const QEMU_GICV3_SMP2: &[u8] = include_bytes!("../testdata/qemu-7.2-virt-gicv3-smp2.dtb");
    const QEMU_GICV2_SMP2: &[u8] = include_bytes!("../testdata/qemu-7.2-virt-gicv2-smp2.dtb");
    /// As `QEMU_VIRT` with `-device guest-loader,addr=0x43000000,initrd=F` (1160 bytes):
    /// `/chosen/module@0x43000000`, compatible `multiboot,ramdisk`.
    const GUEST_LOADER: &[u8] = include_bytes!("../testdata/qemu-7.2-virt-guest-loader-initrd.dtb");
    /// As `QEMU_VIRT` with `/chosen/linux,initrd-start` = 0x4310_0000 and `-end` =
    /// 0x4310_0488 added (what QEMU writes for a Linux-format kernel with `-initrd`).
    const LINUX_INITRD: &[u8] = include_bytes!("../testdata/qemu-7.2-virt-linux-initrd.dtb");
    /// `testdata/edge-cases.dts`.
    const EDGE_CASES: &[u8] = include_bytes!("../testdata/edge-cases.dtb");
    /// `testdata/minimal.dts`.
    const MINIMAL: &[u8] = include_bytes!("../testdata/minimal.dtb");

    const IMAGE: Range = Range {
        start: 0x4020_0000,
        end: 0x4023_5000,
    };

    #[test]
    fn initrd_from_guest_loader_or_linux_properties_is_held() {
        for (blob, start, len) in [
            (GUEST_LOADER, 0x4300_0000u64, 1160u64),
            (LINUX_INITRD, 0x4310_0000, 0x488),
        ] {
            let info = parse(blob, 0x4000_0000, &[IMAGE]).unwrap();
            let range = info.initrd.expect("initrd found");
            assert_eq!((range.start, range.end), (start, start + len));
            for m in info.memory.as_slice() {
                assert!(m.end() <= start || m.base >= start + len, "initrd kept out");
            }
        }
        assert_eq!(
            parse(QEMU_VIRT, 0x4000_0000, &[IMAGE]).unwrap().initrd,
            None
        );
    }

    fn regions(info: &BootInfo) -> Vec<(u64, u64)> {
        info.memory
            .as_slice()
            .iter()
            .map(|m| (m.base, m.end()))
            .collect()
    }

    #[test]
    fn header() {
        let mut header = [0u8; 8];
        header.copy_from_slice(&QEMU_VIRT[..8]);
        assert_eq!(blob_size(header), Some(QEMU_VIRT.len()));
        assert_eq!(blob_size([0; 8]), None);
        assert_eq!(
            blob_size([0xd0, 0x0d, 0xfe, 0xed, 0xff, 0, 0, 0]),
            None,
            "absurd size"
        );
    }

    #[test]
    fn qemu_virt() {
        let info = parse(QEMU_VIRT, 0x4000_0000, &[IMAGE]).unwrap();
        assert_eq!(
            info.ram(),
            &[Range {
                start: 0x4000_0000,
                end: 0x4400_0000
            }]
        );
        // The blob (here packed to a few KiB) and the image are carved out.
        assert_eq!(
            regions(&info),
            vec![(0x4000_2000, 0x4020_0000), (0x4023_5000, 0x4400_0000)]
        );
        assert_eq!(
            info.blob,
            Range::from_base_size(0x4000_0000, QEMU_VIRT.len() as u64)
        );
        assert_eq!(info.command_line.as_str(), "hello world -- a b");
        assert_eq!(info.console, Some(0x0900_0000));
        assert_eq!(info.psci, Some(Conduit::Hvc));
        assert_eq!(info.board.as_str(), "QEMU virt");
    }

    #[test]
    fn interrupt_controller_and_cpus() {
        let v3 = parse(QEMU_GICV3_SMP2, 0x4000_0000, &[IMAGE]).unwrap();
        assert_eq!(
            v3.gic,
            Some(GicLayout {
                version: GicVersion::V3,
                distributor: (0x800_0000, 0x1_0000),
                cpu_side: (0x80a_0000, 0xf6_0000),
            })
        );
        assert_eq!(v3.cpus(), &[0, 1]);
        assert_eq!(v3.virtual_timer, Some(27));
        let v2 = parse(QEMU_GICV2_SMP2, 0x4000_0000, &[IMAGE]).unwrap();
        assert_eq!(
            v2.gic,
            Some(GicLayout {
                version: GicVersion::V2,
                distributor: (0x800_0000, 0x1_0000),
                cpu_side: (0x801_0000, 0x1_0000),
            })
        );
        assert_eq!(v2.cpus(), &[0, 1]);
        let one = parse(QEMU_VIRT, 0x4000_0000, &[IMAGE]).unwrap();
        assert_eq!(one.cpus(), &[0]);
        assert_eq!(one.gic.map(|g| g.version), Some(GicVersion::V2));
        // No GIC, no CPUs: the boot CPU is still there.
        let minimal = parse(MINIMAL, 0x4000_0000, &[IMAGE]).unwrap();
        assert_eq!(minimal.gic, None);
        assert_eq!(minimal.virtual_timer, None);
        assert_eq!(minimal.cpus(), &[0]);
    }

    /// QEMU `virt` lists 32 virtio-mmio transports, 0x200 bytes apart from 0x0a00_0000,
    /// lowest address first, on SPIs 16-47 (INTIDs 48-79); the other trees have none.
    #[test]
    fn virtio_mmio_transports() {
        let info = parse(QEMU_VIRT, 0x4000_0000, &[IMAGE]).unwrap();
        let slots = info.virtio_mmio();
        assert_eq!(slots.len(), 32);
        for (i, slot) in slots.iter().enumerate() {
            let i = i as u64;
            assert_eq!(
                slot.region,
                MemoryRegion {
                    base: 0x0a00_0000 + 0x200 * i,
                    size: 0x200
                }
            );
            assert_eq!(slot.interrupt, Some(48 + i as u32));
        }
        let fdt = fdt::Fdt::new(QEMU_VIRT).unwrap();
        let theirs: Vec<u64> = fdt
            .find_all_nodes("/virtio_mmio")
            .map(|n| n.reg().unwrap().next().unwrap().starting_address as u64)
            .collect();
        let ours: Vec<u64> = slots.iter().map(|s| s.region.base).collect();
        assert_eq!(ours, theirs, "tree order, as the fdt crate walks it");
        for blob in [EDGE_CASES, MINIMAL] {
            assert!(
                parse(blob, 0x4000_0000, &[IMAGE])
                    .unwrap()
                    .virtio_mmio()
                    .is_empty()
            );
        }
    }

    #[test]
    fn edge_cases() {
        let info = parse(EDGE_CASES, 0x4000_0000, &[IMAGE]).unwrap();
        assert_eq!(
            info.ram(),
            &[
                Range {
                    start: 0x4000_0000,
                    end: 0x4800_0000
                },
                Range {
                    start: 0x8000_0000,
                    end: 0x9000_0000
                }
            ]
        );
        assert_eq!(
            regions(&info),
            vec![
                (0x4000_1000, 0x4020_0000), // blob: 1061 bytes, rounded up to a page
                (0x4023_5000, 0x4800_0000),
                (0x8001_0000, 0x8400_0000), // /memreserve/ 0x80000000+0x10000
                (0x8420_0000, 0x9000_0000), // /reserved-memory/firmware@84000000
            ]
        );
        assert_eq!(info.command_line.as_str(), "loglevel=debug -- one two");
        // stdout-path = "serial0:115200n8" through /aliases, past the disabled UART.
        assert_eq!(info.console, Some(0x1c09_0000));
        assert_eq!(info.psci, Some(Conduit::Smc));
        assert_eq!(info.board.as_str(), "Test board");
    }

    #[test]
    fn minimal_tree_uses_fallbacks() {
        let info = parse(MINIMAL, 0x4000_0000, &[IMAGE]).unwrap();
        assert_eq!(info.command_line.as_str(), "");
        assert_eq!(info.console, None);
        assert_eq!(info.psci, None);
        assert_eq!(info.board.as_str(), "QEMU virt");
        assert_eq!(
            regions(&info),
            vec![(0x4000_1000, 0x4020_0000), (0x4023_5000, 0x4400_0000)]
        );
    }

    #[test]
    fn bad_blobs() {
        assert_eq!(parse(&[0; 64], 0, &[]).unwrap_err(), DtError::NoBlob);
        assert_eq!(
            parse(&QEMU_VIRT[..100], 0, &[]).unwrap_err(),
            DtError::Malformed(0)
        );
        let too_many = [IMAGE; MAX_TAKEN];
        assert_eq!(
            parse(QEMU_VIRT, 0, &too_many).unwrap_err(),
            DtError::TooManyReservations
        );
    }

    /// Truncated and corrupted blobs give errors or plausible results, never a panic or a
    /// hang.
    #[test]
    fn corrupted_blobs_never_panic() {
        let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for blob in [QEMU_VIRT, EDGE_CASES, MINIMAL] {
            for cut in (0..blob.len()).step_by(7) {
                let _ = parse(&blob[..cut], 0x4000_0000, &[IMAGE]);
            }
            for _ in 0..3000 {
                let mut bad = blob.to_vec();
                for _ in 0..1 + next() % 4 {
                    let at = (next() as usize) % bad.len();
                    bad[at] = next() as u8;
                }
                let _ = parse(&bad, 0x4000_0000, &[IMAGE]);
            }
        }
    }

    /// The reader agrees with the `fdt` crate on every blob.
    #[test]
    fn agrees_with_the_fdt_crate() {
        for blob in [QEMU_VIRT, EDGE_CASES, MINIMAL] {
            let ours = parse(blob, 0x4000_0000, &[]).unwrap();
            let fdt = fdt::Fdt::new(blob).unwrap();
            let mut ram: Vec<Range> = fdt
                .find_all_nodes("/memory")
                .flat_map(|n| n.reg().unwrap())
                .map(|r| Range::from_base_size(r.starting_address as u64, r.size.unwrap() as u64))
                .collect();
            let n = memmap::normalize(&mut ram);
            assert_eq!(ours.ram(), &ram[..n]);
            let bootargs = fdt
                .find_node("/chosen")
                .and_then(|c| c.property("bootargs"));
            assert_eq!(
                ours.command_line.as_str(),
                bootargs.map_or("", |p| p.as_str().unwrap())
            );
            let method = fdt
                .find_node("/psci")
                .and_then(|p| p.property("method"))
                .map(|m| m.as_str().unwrap());
            assert_eq!(
                ours.psci
                    .map(|c| if c == Conduit::Hvc { "hvc" } else { "smc" }),
                method
            );
            let stdout = fdt
                .find_node("/chosen")
                .and_then(|c| c.property("stdout-path"))
                .and_then(|p| fdt.find_node(p.as_str().unwrap().split(':').next().unwrap()))
                .or_else(|| fdt.find_compatible(&["arm,pl011"]));
            let stdout = stdout
                .and_then(|n| n.reg()?.next())
                .map(|r| r.starting_address as u64);
            assert_eq!(ours.console, stdout);
        }
    }

    #[test]
    fn paths() {
        assert!(path_matches("/pl011@9000000", "/pl011@9000000"));
        assert!(path_matches("/pl011@9000000", "/pl011"));
        assert!(path_matches("/soc/uart@1c090000", "/soc/uart@1c090000"));
        assert!(!path_matches("/soc/uart@1c090000", "/soc/uart@1c080000"));
        assert!(!path_matches("/soc/uart@1c090000", "/soc"));
        assert!(!path_matches("/soc", "/soc/uart"));
    }

    #[test]
    fn cells() {
        let two_two = Cells {
            address: 2,
            size: 2,
        };
        let reg = [0, 0, 0, 1, 0x40, 0, 0, 0, 0, 0, 0, 0, 0, 0x10, 0, 0];
        assert_eq!(
            two_two.entries(&reg).collect::<Vec<_>>(),
            [Range::from_base_size(0x1_4000_0000, 0x10_0000)]
        );
        let one_one = Cells {
            address: 1,
            size: 1,
        };
        assert_eq!(one_one.entries(&reg).count(), 2);
        assert_eq!(
            Cells {
                address: 3,
                size: 2
            }
            .entries(&reg)
            .count(),
            0
        );
        assert_eq!(
            Cells {
                address: 0,
                size: 0
            }
            .entries(&reg)
            .count(),
            0
        );
    }

    #[test]
    fn property_text() {
        assert_eq!(text(b"abc\0"), "abc");
        assert_eq!(text(b"a\0b\0"), "a");
        assert_eq!(text(b""), "");
        assert_eq!(text(b"ok\xff\0"), "ok");
    }
}
