//! RFC 8439 test vectors through the ChaCha20 implementation the generator uses
//! (`rand_chacha`), proving its block function and keystream are the real ChaCha20.
//!
//! `rand_chacha` runs the original ChaCha layout (64-bit block counter in state words 12–13,
//! 64-bit stream id in words 14–15); RFC 8439's layout (32-bit counter in word 12, 96-bit
//! nonce in words 13–15) maps onto it exactly: block position = counter | nonce word 0 << 32,
//! stream = nonce words 1 and 2.

extern crate std;

use std::vec;
use std::vec::Vec;

use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::{RngCore, SeedableRng};

fn hex(s: &str) -> Vec<u8> {
    let s: std::string::String = s.split_whitespace().collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// Keystream of `len` bytes for an RFC 8439 (key, 96-bit nonce, 32-bit counter).
fn keystream(key: [u8; 32], nonce: [u8; 12], counter: u32, len: usize) -> Vec<u8> {
    let word = |i: usize| {
        u64::from(u32::from_le_bytes(
            nonce[4 * i..4 * i + 4].try_into().unwrap(),
        ))
    };
    let mut rng = ChaCha20Rng::from_seed(key);
    rng.set_stream(word(1) | word(2) << 32);
    let block = u64::from(counter) | word(0) << 32;
    rng.set_word_pos(u128::from(block) * 16);
    let mut out = vec![0u8; len];
    rng.fill_bytes(&mut out);
    out
}

fn key_0_to_31() -> [u8; 32] {
    core::array::from_fn(|i| i as u8)
}

/// RFC 8439 §2.3.2: the ChaCha20 block function.
#[test]
fn block_function_section_2_3_2() {
    let nonce = hex("00 00 00 09 00 00 00 4a 00 00 00 00")
        .try_into()
        .unwrap();
    let expected = hex("10 f1 e7 e4 d1 3b 59 15 50 0f dd 1f a3 20 71 c4
         c7 d1 f4 c7 33 c0 68 03 04 22 aa 9a c3 d4 6c 4e
         d2 82 64 46 07 9f aa 09 14 c2 d7 05 d9 8b 02 a2
         b5 12 9c d1 de 16 4e b9 cb d0 83 e8 a2 50 3c 4e");
    assert_eq!(keystream(key_0_to_31(), nonce, 1, 64), expected);
}

/// RFC 8439 §2.4.2: encrypting the "sunscreen" plaintext (114 bytes, two blocks and a bit).
#[test]
fn encryption_section_2_4_2() {
    let nonce = hex("00 00 00 00 00 00 00 4a 00 00 00 00")
        .try_into()
        .unwrap();
    let plaintext: &[u8] = b"Ladies and Gentlemen of the class of '99: If I could offer you \
only one tip for the future, sunscreen would be it.";
    assert_eq!(plaintext.len(), 114);
    let expected = hex("6e 2e 35 9a 25 68 f9 80 41 ba 07 28 dd 0d 69 81
         e9 7e 7a ec 1d 43 60 c2 0a 27 af cc fd 9f ae 0b
         f9 1b 65 c5 52 47 33 ab 8f 59 3d ab cd 62 b3 57
         16 39 d6 24 e6 51 52 ab 8f 53 0c 35 9f 08 61 d8
         07 ca 0d bf 50 0d 6a 61 56 a3 8e 08 8a 22 b6 5e
         52 bc 51 4d 16 cc f8 06 81 8c e9 1a b7 79 37 36
         5a f9 0b bf 74 a3 5b e6 b4 0b 8e ed f2 78 5e 42
         87 4d");
    let stream = keystream(key_0_to_31(), nonce, 1, plaintext.len());
    let ciphertext: Vec<u8> = plaintext.iter().zip(&stream).map(|(p, k)| p ^ k).collect();
    assert_eq!(ciphertext, expected);
}

/// RFC 8439 A.1 test vectors #1 and #2: the all-zero key, counters 0 and 1. Counter 0 is
/// also what the generator's core (nonce and counter zero) computes first.
#[test]
fn keystream_appendix_a_1() {
    let first = hex("76 b8 e0 ad a0 f1 3d 90 40 5d 6a e5 53 86 bd 28
         bd d2 19 b8 a0 8d ed 1a a8 36 ef cc 8b 77 0d c7
         da 41 59 7c 51 57 48 8d 77 24 e0 3f b8 d8 4a 37
         6a 43 b8 f4 15 18 a1 1c c3 87 b6 69 b2 ee 65 86");
    let second = hex("9f 07 e7 be 55 51 38 7a 98 ba 97 7c 73 2d 08 0d
         cb 0f 29 a0 48 e3 65 69 12 c6 53 3e 32 ee 7a ed
         29 b7 21 76 9c e6 4e 43 d5 71 33 b0 74 d8 39 d5
         31 ed 1f 28 51 0a fb 45 ac e1 0a 1f 4b 79 4d 6f");
    assert_eq!(keystream([0; 32], [0; 12], 0, 64), first);
    assert_eq!(keystream([0; 32], [0; 12], 1, 64), second);
}
