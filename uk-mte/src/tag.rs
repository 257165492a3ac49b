//! Tags, tagged pointers, exclusion masks and granules: the arithmetic of MTE, free of any
//! hardware access and tested on the host.
//!
//! A *logical* tag travels in bits 59:56 of a pointer (the top byte is ignored by address
//! translation when `TCR_EL1.TBI0` is set); an *allocation* tag is stored by the hardware
//! for every 16-byte [granule](GRANULE) of Normal Tagged memory. An access through a pointer
//! whose logical tag differs from the allocation tag of the granule it touches is a tag
//! check fault.

use core::fmt;
use core::ptr::NonNull;

// Tags live in the top byte of 64-bit addresses.
const _: () = assert!(usize::BITS == 64, "uk-mte needs 64-bit addresses");

/// Bytes covered by one allocation tag.
pub const GRANULE: usize = 16;

/// Position of a logical tag in a pointer (bits 59:56).
pub const TAG_SHIFT: u32 = 56;

/// The bits of a pointer that hold its logical tag.
pub const TAG_BITS: usize = 0xf << TAG_SHIFT;

/// The top byte of a pointer, ignored by translation with top-byte-ignore on.
pub const TOP_BYTE: usize = 0xff << TAG_SHIFT;

/// A 4-bit memory tag (0 to 15).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Tag(u8);

impl Tag {
    /// Tag 0: the tag of untagged pointers and of memory nobody tagged.
    pub const ZERO: Tag = Tag(0);
    /// Tag 15, which [`ExcludeMask::RESERVED`] keeps out of random tags with tag 0 (in
    /// some software conventions it marks "match all").
    pub const MAX: Tag = Tag(15);

    /// The tag with value `value`, or `None` above 15.
    pub const fn new(value: u8) -> Option<Tag> {
        if value < 16 { Some(Tag(value)) } else { None }
    }

    /// The low four bits of `value` as a tag.
    pub const fn from_low_bits(value: u64) -> Tag {
        Tag((value & 0xf) as u8)
    }

    /// The tag's value, 0 to 15.
    pub const fn value(self) -> u8 {
        self.0
    }

    /// The logical tag of an address (its bits 59:56).
    pub const fn of_address(address: usize) -> Tag {
        Tag(((address & TAG_BITS) >> TAG_SHIFT) as u8)
    }

    /// The tag after this one, wrapping from 15 to 0 (the order `irg` walks tags in).
    pub const fn next(self) -> Tag {
        Tag((self.0 + 1) & 0xf)
    }
}

impl fmt::Display for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#x}", self.0)
    }
}

/// `address` with its logical tag replaced by `tag` (bits 63:60 cleared).
pub const fn tag_address(address: usize, tag: Tag) -> usize {
    (address & !TOP_BYTE) | ((tag.0 as usize) << TAG_SHIFT)
}

/// `address` without its top byte: the address the memory system sees.
pub const fn strip_address(address: usize) -> usize {
    address & !TOP_BYTE
}

/// The logical tag of `ptr`.
pub fn tag_of<T: ?Sized>(ptr: *const T) -> Tag {
    Tag::of_address(ptr.cast::<u8>().addr())
}

/// `ptr` carrying `tag` (same provenance, top byte replaced).
pub fn with_tag<T>(ptr: *mut T, tag: Tag) -> *mut T {
    ptr.map_addr(|a| tag_address(a, tag))
}

/// `ptr` without its top byte (same provenance).
pub fn strip<T>(ptr: *mut T) -> *mut T {
    ptr.map_addr(strip_address)
}

/// [`with_tag`] for non-null pointers. (A pointer whose only set bits are in the top byte
/// cannot lose them to tag 0 here: it is returned unchanged rather than null.)
pub fn with_tag_nonnull<T>(ptr: NonNull<T>, tag: Tag) -> NonNull<T> {
    ptr.map_addr(|a| core::num::NonZeroUsize::new(tag_address(a.get(), tag)).unwrap_or(a))
}

/// [`strip`] for non-null pointers; `None` if nothing but a tag was set.
pub fn strip_nonnull<T>(ptr: NonNull<T>) -> Option<NonNull<T>> {
    NonNull::new(strip(ptr.as_ptr()))
}

/// Bytes of whole granules covering `size` bytes: `size` rounded up to [`GRANULE`] (0 for
/// 0). `size` must be at most `usize::MAX - 15` (every allocation size is).
pub const fn tagged_len(size: usize) -> usize {
    (size + GRANULE - 1) & !(GRANULE - 1)
}

/// Number of granules covering `size` bytes.
pub const fn granules(size: usize) -> usize {
    tagged_len(size) / GRANULE
}

/// Whether `address` is the start of a granule.
pub const fn is_granule_aligned(address: usize) -> bool {
    address % GRANULE == 0
}

/// A set of tags `irg` must not pick: bit `n` excludes tag `n` (the format of the `Xm`
/// operand of `irg` and of `GCR_EL1.Exclude`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct ExcludeMask(u16);

impl ExcludeMask {
    /// Excludes nothing.
    pub const NONE: ExcludeMask = ExcludeMask(0);
    /// Excludes tags 0 and 15, what `GCR_EL1` is set to: tag 0 stays the tag of untagged
    /// pointers and free memory, so a random tag always differs from it.
    pub const RESERVED: ExcludeMask = ExcludeMask(1 | 1 << 15);

    /// The mask with bits `bits`.
    pub const fn from_bits(bits: u16) -> ExcludeMask {
        ExcludeMask(bits)
    }

    /// The mask's bits.
    pub const fn bits(self) -> u16 {
        self.0
    }

    /// This mask plus `tag` (what `gmi` computes).
    pub const fn with(self, tag: Tag) -> ExcludeMask {
        ExcludeMask(self.0 | 1 << tag.0)
    }

    /// Both masks' tags.
    pub const fn union(self, other: ExcludeMask) -> ExcludeMask {
        ExcludeMask(self.0 | other.0)
    }

    /// Whether `tag` is excluded.
    pub const fn contains(self, tag: Tag) -> bool {
        self.0 & (1 << tag.0) != 0
    }

    /// Whether every tag is excluded (`irg` then returns tag 0).
    pub const fn is_full(self) -> bool {
        self.0 == u16::MAX
    }

    /// Number of tags a random choice can still pick.
    pub const fn choices(self) -> u32 {
        16 - self.0.count_ones()
    }
}

/// The tag `irg` picks from a start tag and a random offset: starting at `start` (or, with
/// `offset` 0, at the first allowed tag from `start` on), step `offset` times to the next
/// tag that `exclude` allows, wrapping at 16 (the architecture's `ChooseNonExcludedTag`).
/// With every tag excluded the result is tag 0.
pub const fn choose_tag(start: Tag, offset: u8, exclude: ExcludeMask) -> Tag {
    if exclude.is_full() {
        return Tag::ZERO;
    }
    let mut tag = start;
    if offset == 0 {
        while exclude.contains(tag) {
            tag = tag.next();
        }
        return tag;
    }
    let mut left = offset;
    while left > 0 {
        tag = tag.next();
        while exclude.contains(tag) {
            tag = tag.next();
        }
        left -= 1;
    }
    tag
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_in_addresses() {
        let a = 0x0000_0000_4020_1230usize;
        let t = tag_address(a, Tag(0xa));
        assert_eq!(t, 0x0a00_0000_4020_1230);
        assert_eq!(Tag::of_address(t), Tag(0xa));
        assert_eq!(strip_address(t), a);
        // The whole top byte goes, not only the tag nibble.
        assert_eq!(strip_address(0xf500_0000_0000_1000), 0x1000);
        assert_eq!(
            tag_address(0xf500_0000_0000_1000, Tag(3)),
            0x0300_0000_0000_1000
        );
        assert_eq!(Tag::of_address(0xf500_0000_0000_1000), Tag(5));
        assert_eq!(Tag::new(15), Some(Tag::MAX));
        assert_eq!(Tag::new(16), None);
        assert_eq!(Tag::from_low_bits(0x1234), Tag(4));
        assert_eq!(Tag(15).next(), Tag::ZERO);
        assert_eq!(format!("{}", Tag(11)), "0xb");
    }

    #[test]
    fn pointers_keep_provenance() {
        let mut x = [0u64; 4];
        let p = x.as_mut_ptr();
        let t = with_tag(p, Tag(7));
        assert_eq!(tag_of(t), Tag(7));
        assert_eq!(strip(t), p);
        // Reading through the stripped pointer is fine: same provenance, same address.
        // SAFETY: `strip(t)` is `p`, valid for reads.
        assert_eq!(unsafe { *strip(t) }, 0);
        let n = NonNull::new(p).unwrap();
        let tn = with_tag_nonnull(n, Tag(9));
        assert_eq!(tag_of(tn.as_ptr()), Tag(9));
        let retagged = with_tag_nonnull(tn, Tag(2));
        assert_eq!(tag_of(retagged.as_ptr()), Tag(2));
        assert_eq!(strip_nonnull(retagged), Some(n));
        assert_eq!(with_tag_nonnull(tn, Tag::ZERO), n);
    }

    #[test]
    fn granule_rounding() {
        assert_eq!(tagged_len(0), 0);
        assert_eq!(tagged_len(1), 16);
        assert_eq!(tagged_len(16), 16);
        assert_eq!(tagged_len(17), 32);
        assert_eq!(tagged_len(4096), 4096);
        assert_eq!(granules(33), 3);
        assert_eq!(granules(0), 0);
        assert_eq!(tagged_len(isize::MAX as usize), isize::MAX as usize + 1);
        assert!(is_granule_aligned(0x4000_0010));
        assert!(!is_granule_aligned(0x4000_0018));
    }

    #[test]
    fn exclude_masks() {
        assert_eq!(ExcludeMask::RESERVED.bits(), 0x8001);
        assert!(ExcludeMask::RESERVED.contains(Tag::ZERO));
        assert!(ExcludeMask::RESERVED.contains(Tag::MAX));
        assert!(!ExcludeMask::RESERVED.contains(Tag(1)));
        assert_eq!(ExcludeMask::RESERVED.choices(), 14);
        let m = ExcludeMask::NONE.with(Tag(3)).with(Tag(5));
        assert_eq!(m.bits(), 0b10_1000);
        assert_eq!(m.union(ExcludeMask::RESERVED).bits(), 0x8029);
        assert!(ExcludeMask::from_bits(0xffff).is_full());
        assert!(!ExcludeMask::RESERVED.is_full());
    }

    #[test]
    fn choosing_tags_like_irg() {
        let r = ExcludeMask::RESERVED;
        // Offset 0 keeps an allowed start and skips an excluded one.
        assert_eq!(choose_tag(Tag(4), 0, r), Tag(4));
        assert_eq!(choose_tag(Tag(0), 0, r), Tag(1));
        assert_eq!(choose_tag(Tag(15), 0, r), Tag(1));
        // Each step moves to the next allowed tag, wrapping over 15 and 0.
        assert_eq!(choose_tag(Tag(13), 1, r), Tag(14));
        assert_eq!(choose_tag(Tag(14), 1, r), Tag(1));
        assert_eq!(choose_tag(Tag(13), 3, r), Tag(2));
        let m = r.with(Tag(2)).with(Tag(3));
        assert_eq!(choose_tag(Tag(1), 1, m), Tag(4));
        assert_eq!(
            choose_tag(Tag(1), 0, ExcludeMask::from_bits(0xffff)),
            Tag::ZERO
        );
        // Whatever the start and offset, an allowed tag comes out.
        for start in 0..16 {
            for offset in 0..16 {
                let t = choose_tag(Tag(start), offset, m);
                assert!(!m.contains(t), "{start} {offset} -> {t}");
            }
        }
        // Only one tag allowed: always that one.
        let only_nine = ExcludeMask::from_bits(!(1 << 9));
        for offset in 0..16 {
            assert_eq!(choose_tag(Tag(2), offset, only_nine), Tag(9));
        }
    }
}
