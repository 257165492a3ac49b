//! Host tests of caller memory: fixed cases (moved from uk-posix-process's `uaccess` and
//! uk-vfs's `user`) and property tests against a model of the declared ranges.

use std::vec;
use std::vec::Vec;

use proptest::prelude::*;

use super::*;

/// Linux's `PATH_MAX`, the limit the VFS reads paths with.
const PATH_MAX: usize = 4096;

#[test]
fn null_page_and_outside_are_efault() {
    let space = AddressSpace::hosted();
    assert_eq!(UserPtr::<u64>::new(0).read(&space), Err(Errno::EFAULT));
    assert_eq!(UserPtr::<u64>::new(4095).read(&space), Err(Errno::EFAULT));
    assert_eq!(
        UserPtr::<u64>::new(usize::MAX - 3).read(&space),
        Err(Errno::EFAULT)
    );
    assert_eq!(
        UserPtr::<u64>::new(1 << 50).write(&space, 1),
        Err(Errno::EFAULT)
    );
    assert_eq!(
        UserSlice::new(usize::MAX - 10, 100).fill(&space, 0),
        Err(Errno::EFAULT)
    );
}

#[test]
fn ranges_bound_access() {
    let mut space = AddressSpace::empty();
    assert!(space.add(0x10000, 0x1000));
    assert!(!space.add(usize::MAX, 2));
    assert!(!space.add(0, 100), "wholly inside the NULL page");
    assert!(space.contains(0x10000, 0x1000));
    assert!(!space.contains(0x10000, 0x1001));
    assert!(!space.contains(0xffff, 2));
    assert!(space.contains(0x10fff, 0));
    assert!(!space.contains(0x11000, 0));
    assert_eq!(space.ranges(), &[(0x10000, 0x11000)]);
}

#[test]
fn add_clips_the_null_page_and_stops_at_max_ranges() {
    let mut space = AddressSpace::empty();
    assert!(space.add(0, 0x2000), "reaches past the NULL page");
    assert_eq!(space.ranges(), &[(NULL_PAGE, 0x2000)]);
    assert!(!space.contains(0, 1));
    assert!(!space.contains(NULL_PAGE - 1, 1));
    assert!(space.contains(NULL_PAGE, 0x1000));
    assert!(!space.add(0x5000, 0), "empty");
    for i in 1..MAX_RANGES {
        assert!(space.add(0x10_0000 * i, 16));
    }
    assert_eq!(space.ranges().len(), MAX_RANGES);
    assert!(!space.add(0x7000_0000, 16), "past MAX_RANGES");
    assert!(!space.contains(0x7000_0000, 1));
}

#[test]
fn zero_length_is_valid_anywhere_for_access() {
    let space = AddressSpace::empty();
    for addr in [0, 1, 4095, 0x1234_5678, usize::MAX] {
        assert_eq!(space.check(addr, 0), Ok(()));
        let s = UserSlice::new(addr, 0);
        assert_eq!(s.bytes(&space), Ok(&[][..]));
        assert_eq!(s.fill(&space, 7), Ok(()));
        assert_eq!(s.write(&space, b"abc"), Ok(0));
        assert_eq!(s.with_mut(&space, |b| b.len()), Ok(0));
        assert_eq!(s.hand_over(&space).map(|b| b.len()), Ok(0));
    }
    // Non-empty at the same addresses: EFAULT.
    assert_eq!(space.check(0x1234_5678, 1), Err(Errno::EFAULT));
    assert_eq!(space.check(0, 1), Err(Errno::EFAULT));
}

#[test]
fn copies_round_trip_and_atomic_needs_alignment() {
    let space = AddressSpace::hosted();
    let mut word = [0u32; 2];
    let p = UserPtr::<u32>::new(word.as_mut_ptr() as usize);
    p.write(&space, 7).unwrap();
    assert_eq!(p.read(&space), Ok(7));
    assert_eq!(p.load(&space), Ok(7));
    let odd = UserPtr::<u32>::new(word.as_mut_ptr() as usize + 1);
    assert_eq!(odd.atomic(&space).err(), Some(Errno::EINVAL));
    // Misalignment comes before the range check (as Linux's futex).
    assert_eq!(
        UserPtr::<u32>::new(1).atomic(&space).err(),
        Some(Errno::EINVAL)
    );
    assert_eq!(
        UserPtr::<u32>::new(0).atomic(&space).err(),
        Some(Errno::EFAULT)
    );
    let mut buf = [1u8; 8];
    let s = UserSlice::new(buf.as_mut_ptr() as usize, 4);
    assert_eq!(s.write(&space, &[9; 6]), Ok(4));
    assert_eq!(buf, [9, 9, 9, 9, 1, 1, 1, 1]);
    assert_eq!(word[0], 7);
}

#[test]
fn c_strings_end_at_nul_within_the_limit() {
    let space = AddressSpace::hosted();
    let path = b"/srv/motd\0tail";
    assert_eq!(
        UserCStr::new(path.as_ptr() as usize).read(&space, PATH_MAX),
        Ok(&b"/srv/motd"[..])
    );
    // NULL and the NULL page: EFAULT (stat(NULL) is EFAULT; Unikraft 0.11 said EINVAL).
    assert_eq!(UserCStr::new(0).read(&space, PATH_MAX), Err(Errno::EFAULT));
    assert_eq!(UserCStr::new(8).read(&space, PATH_MAX), Err(Errno::EFAULT));
    // No NUL within PATH_MAX bytes: ENAMETOOLONG; a NUL at index PATH_MAX - 1 fits.
    let mut long = vec![b'a'; 5000];
    assert_eq!(
        UserCStr::new(long.as_ptr() as usize).read(&space, PATH_MAX),
        Err(Errno::ENAMETOOLONG)
    );
    long[PATH_MAX - 1] = 0;
    assert_eq!(
        UserCStr::new(long.as_ptr() as usize)
            .read(&space, PATH_MAX)
            .map(<[u8]>::len),
        Ok(PATH_MAX - 1)
    );
    long[PATH_MAX - 1] = b'a';
    long[PATH_MAX] = 0;
    assert_eq!(
        UserCStr::new(long.as_ptr() as usize).read(&space, PATH_MAX),
        Err(Errno::ENAMETOOLONG)
    );
}

#[test]
fn c_string_running_out_of_caller_memory_is_efault() {
    let text = b"abcdefgh";
    let base = text.as_ptr() as usize;
    let mut space = AddressSpace::empty();
    space.add(base, text.len());
    // No NUL before caller memory ends, well short of the limit: EFAULT, not a read past.
    assert_eq!(
        UserCStr::new(base).read(&space, PATH_MAX),
        Err(Errno::EFAULT)
    );
    // Caller memory ends exactly at the limit without a NUL: ENAMETOOLONG.
    assert_eq!(
        UserCStr::new(base).read(&space, text.len()),
        Err(Errno::ENAMETOOLONG)
    );
    assert_eq!(
        UserCStr::new(base + text.len()).read(&space, PATH_MAX),
        Err(Errno::EFAULT)
    );
}

#[test]
fn hosted_default_before_any_declaration() {
    // The unit-test binary never declares (the declaration is tested in tests/user.rs).
    assert_eq!(declared(), None);
    assert_eq!(*caller_memory(), AddressSpace::hosted());
}

#[test]
fn zero_sized_values_touch_nothing() {
    let space = AddressSpace::empty();
    assert_eq!(UserPtr::<[u64; 0]>::new(0).read(&space), Ok([]));
    assert_eq!(
        UserPtr::<[u8; 0]>::new(usize::MAX).write(&space, []),
        Ok(())
    );
}

/// The model: the ranges `add` keeps (clipped above the NULL page, non-empty, no
/// overflow, at most `MAX_RANGES`), computed apart from the implementation.
fn model_ranges(declared: &[(usize, usize)]) -> Vec<(usize, usize)> {
    let mut kept = Vec::new();
    for &(start, len) in declared {
        let Some(end) = start.checked_add(len) else {
            continue;
        };
        let start = start.max(4096);
        if start < end && kept.len() < MAX_RANGES {
            kept.push((start, end));
        }
    }
    kept
}

/// The model's answer for an access of `len` bytes at `ptr`.
fn model_ok(ranges: &[(usize, usize)], ptr: usize, len: usize) -> bool {
    len == 0
        || ranges
            .iter()
            .any(|&(s, e)| s <= ptr && ptr.checked_add(len).is_some_and(|end| end <= e))
}

fn space_of(declared: &[(usize, usize)]) -> AddressSpace {
    let mut space = AddressSpace::empty();
    for &(start, len) in declared {
        space.add(start, len);
    }
    space
}

/// Addresses and lengths with weight near the interesting places: 0, the NULL page,
/// `usize::MAX`, and anywhere.
fn any_addr() -> impl Strategy<Value = usize> {
    prop_oneof![
        0usize..8192,
        any::<usize>(),
        (0usize..8192).prop_map(|d| usize::MAX - d),
        0x1_0000usize..0x2_0000,
    ]
}

fn any_len() -> impl Strategy<Value = usize> {
    prop_oneof![
        0usize..64,
        0usize..0x2_0000,
        any::<usize>(),
        (0usize..8192).prop_map(|d| usize::MAX - d),
    ]
}

/// A pointer and length relative to the declared ranges (at, just inside, just outside
/// their ends), or anywhere.
fn probe(
    declared: Vec<(usize, usize)>,
) -> impl Strategy<Value = (Vec<(usize, usize)>, usize, usize)> {
    let n = declared.len().max(1);
    (
        Just(declared),
        0..n,
        -4isize..=4,
        -4isize..=4,
        any_addr(),
        any_len(),
        any::<bool>(),
    )
        .prop_map(|(declared, i, ds, de, addr, len, near)| {
            let (ptr, len) = match declared.get(i).copied() {
                Some((start, l)) if near => {
                    let end = start.wrapping_add(l);
                    let ptr = start.wrapping_add_signed(ds);
                    (ptr, end.wrapping_add_signed(de).wrapping_sub(ptr))
                }
                _ => (addr, len),
            };
            (declared, ptr, len)
        })
}

fn declared_ranges() -> impl Strategy<Value = Vec<(usize, usize)>> {
    proptest::collection::vec((any_addr(), any_len()), 0..(MAX_RANGES + 4))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 4000, failure_persistence: None, ..ProptestConfig::default() })]

    /// `check` is `Ok` exactly when the model says the access lies inside one declared
    /// range (or is empty); ptr + len overflow, NULL and the NULL page included.
    #[test]
    fn check_matches_the_model((declared, ptr, len) in declared_ranges().prop_flat_map(probe)) {
        let space = space_of(&declared);
        let model = model_ranges(&declared);
        prop_assert_eq!(space.ranges(), &model[..]);
        let ok = model_ok(&model, ptr, len);
        prop_assert_eq!(space.check(ptr, len).is_ok(), ok, "{:#x}+{:#x} in {:x?}", ptr, len, model);
        if len > 0 {
            prop_assert_eq!(space.contains(ptr, len), ok);
        }
        prop_assert_eq!(UserSlice::new(ptr, len).check(&space).is_ok(), ok);
        // Membership of a single address.
        let member = ptr >= 4096 && model.iter().any(|&(s, e)| s <= ptr && ptr < e);
        prop_assert_eq!(space.contains(ptr, 0), member);
        // How much is valid from `ptr` on, capped.
        let cap = len;
        let expect = model.iter().find(|&&(s, e)| s <= ptr && ptr < e).map_or(0, |&(_, e)| (e - ptr).min(cap));
        prop_assert_eq!(space.valid_from(ptr, cap), if ptr < 4096 { 0 } else { expect });
    }

    /// Every accessor on real memory: the space is the middle of a buffer framed by guard
    /// bytes; random pointers and lengths give `Ok` exactly as the model says, never
    /// panic, and never change a byte outside the declared range.
    #[test]
    fn accessors_on_real_memory_follow_the_model(
        off in -64isize..200,
        len in prop_oneof![0usize..160, any::<usize>()],
        far in any::<bool>(),
        far_addr in any_addr(),
        byte in any::<u8>(),
    ) {
        const GUARD: usize = 64;
        const INSIDE: usize = 128;
        let mut memory = vec![0xEEu8; GUARD + INSIDE + GUARD];
        // Every byte of the declared part non-zero except one NUL near its end.
        for b in &mut memory[GUARD..GUARD + INSIDE] {
            *b = 0x41;
        }
        memory[GUARD + INSIDE - 3] = 0;
        let base = memory.as_mut_ptr() as usize + GUARD;
        let mut space = AddressSpace::empty();
        prop_assert!(space.add(base, INSIDE));
        let model = [(base, base + INSIDE)];
        let ptr = if far { far_addr } else { base.wrapping_add_signed(off) };
        let ok = model_ok(&model, ptr, len);
        let s = UserSlice::new(ptr, len);

        prop_assert_eq!(s.bytes(&space).is_ok(), ok);
        if let Ok(b) = s.bytes(&space) {
            prop_assert_eq!(b.len(), len);
        }
        prop_assert_eq!(s.with_mut(&space, |b| b.len()).ok(), ok.then_some(len));
        prop_assert_eq!(s.fill(&space, byte).is_ok(), ok);
        let src = [byte; 48];
        let n = len.min(src.len());
        prop_assert_eq!(s.write(&space, &src), if model_ok(&model, ptr, n) { Ok(n) } else { Err(Errno::EFAULT) });
        prop_assert_eq!(s.hand_over(&space).is_ok(), ok);

        let p8 = UserPtr::<u64>::new(ptr);
        let ok8 = model_ok(&model, ptr, 8);
        prop_assert_eq!(p8.read(&space).is_ok(), ok8);
        prop_assert_eq!(p8.write(&space, u64::from(byte)).is_ok(), ok8);
        if ok8 {
            prop_assert_eq!(p8.read(&space), Ok(u64::from(byte)));
        }
        let p4 = UserPtr::<u32>::new(ptr);
        let atomic = p4.atomic(&space).map(|_| ());
        let expect = if ptr % 4 != 0 {
            Err(Errno::EINVAL)
        } else if model_ok(&model, ptr, 4) {
            Ok(())
        } else {
            Err(Errno::EFAULT)
        };
        prop_assert_eq!(atomic, expect);

        // Strings: only memory inside the range is scanned.
        let got = UserCStr::new(ptr).read(&space, len.min(PATH_MAX)).map(<[u8]>::len);
        prop_assert!(matches!(got, Ok(_) | Err(Errno::EFAULT) | Err(Errno::ENAMETOOLONG)));
        if let Ok(n) = got {
            prop_assert!(model_ok(&model, ptr, n + 1), "string {:#x}+{} past the range", ptr, n);
        }
        if ptr < base || ptr >= base + INSIDE {
            prop_assert_eq!(got, Err(Errno::EFAULT));
        }

        // The guards never changed.
        prop_assert!(memory[..GUARD].iter().all(|&b| b == 0xEE));
        prop_assert!(memory[GUARD + INSIDE..].iter().all(|&b| b == 0xEE));
    }

    /// Strings against a model: the first NUL within the limit and within the range.
    #[test]
    fn c_strings_follow_the_model(
        text in proptest::collection::vec(prop_oneof![Just(0u8), 1u8..=255], 1..64),
        start in 0usize..64,
        limit in 0usize..80,
    ) {
        let base = text.as_ptr() as usize;
        let mut space = AddressSpace::empty();
        prop_assert!(space.add(base, text.len()));
        let got = UserCStr::new(base + start).read(&space, limit);
        let expect = if start >= text.len() {
            Err(Errno::EFAULT)
        } else {
            let avail = (text.len() - start).min(limit);
            match text[start..start + avail].iter().position(|&c| c == 0) {
                Some(n) => Ok(&text[start..start + n]),
                None if avail == limit => Err(Errno::ENAMETOOLONG),
                None => Err(Errno::EFAULT),
            }
        };
        prop_assert_eq!(got, expect);
    }
}
