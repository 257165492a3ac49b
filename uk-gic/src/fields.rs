//! Per-interrupt fields in banks of 32-bit registers, written so that only the one field
//! changes (read-modify-write of its word; set/clear-enable registers take just the bit).

use crate::regs::Mmio;

/// Writes the set-enable (or clear-enable, or any write-one) bit of `irq` in the bank at
/// `base`: one bit, no read (writing zeros there changes nothing).
pub(crate) fn write_one_bit(frame: &dyn Mmio, base: usize, irq: u32) {
    frame.write32(base + (irq as usize / 32) * 4, 1 << (irq % 32));
}

/// Replaces the `width`-bit field of `irq` (fields packed `32 / width` to a word) with
/// `value`, leaving every other bit of the word as it was.
pub(crate) fn write_field(frame: &dyn Mmio, base: usize, irq: u32, width: u32, value: u32) {
    let per_word = 32 / width;
    let offset = base + (irq / per_word) as usize * 4;
    let shift = (irq % per_word) * width;
    let mask = ((1u64 << width) - 1) as u32;
    let old = frame.read32(offset);
    let new = (old & !(mask << shift)) | ((value & mask) << shift);
    frame.write32(offset, new);
}

/// The `width`-bit field of `irq`.
pub(crate) fn read_field(frame: &dyn Mmio, base: usize, irq: u32, width: u32) -> u32 {
    let per_word = 32 / width;
    let offset = base + (irq / per_word) as usize * 4;
    let shift = (irq % per_word) * width;
    let mask = ((1u64 << width) - 1) as u32;
    (frame.read32(offset) >> shift) & mask
}

/// Bit 1 of an `ICFGR` field: 1 = edge-triggered, 0 = level-sensitive. Bit 0 is left as is.
pub(crate) fn write_edge(frame: &dyn Mmio, base: usize, irq: u32, edge: bool) {
    let field = read_field(frame, base, irq, 2);
    let field = (field & 1) | (u32::from(edge) << 1);
    write_field(frame, base, irq, 2, field);
}
