//! In-image tests.
