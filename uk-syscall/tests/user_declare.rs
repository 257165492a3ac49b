//! Declaring caller memory (its own test binary: the declaration is process-wide and
//! happens once).

use uk_syscall::Errno;
use uk_syscall::user::{self, AddressSpace, UserSlice};

#[test]
fn first_declaration_wins_and_every_handler_sees_it() {
    // Before: the hosted default.
    assert_eq!(user::declared(), None);
    assert_eq!(*user::caller_memory(), AddressSpace::hosted());
    let buffer: &'static mut [u8] = Box::leak(vec![5u8; 64].into_boxed_slice());
    let base = buffer.as_ptr() as usize;
    let mut space = AddressSpace::empty();
    assert!(space.add(base, 64));
    assert!(user::declare(space));
    // A second declaration changes nothing.
    assert!(!user::declare(AddressSpace::hosted()));
    assert_eq!(user::declared(), Some(&space));
    assert_eq!(*user::caller_memory(), space);
    // Only the declared buffer is caller memory now: a stack address is not.
    let local = [0u8; 8];
    let mem = user::caller_memory();
    assert_eq!(
        UserSlice::new(local.as_ptr() as usize, 8).bytes(mem),
        Err(Errno::EFAULT)
    );
    assert_eq!(UserSlice::new(base, 64).bytes(mem), Ok(&[5u8; 64][..]));
    assert_eq!(UserSlice::new(base + 1, 64).bytes(mem), Err(Errno::EFAULT));
}
