//! The seam between the 9P client and whatever carries its messages.

/// Why a [`Transport`] could not carry a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransportError {
    /// The request is larger than [`Transport::max_message_size`], or the reply buffer is
    /// smaller than a 9P header.
    TooLarge,
    /// The device or server failed, or answered with a reply whose length field does not
    /// match what it delivered.
    Io,
}

/// Carries one 9P request to the server and brings its reply back.
///
/// A transport is synchronous: [`Transport::round_trip`] returns when the reply is in
/// `reply`. virtio-9p (uk-virtio) is one; host tests use an in-process server.
pub trait Transport: Send {
    /// The largest message, in bytes, the transport carries in either direction. The client
    /// offers it as `msize` in `Tversion`.
    fn max_message_size(&self) -> usize;
    /// Sends the complete request `request` (size, type, tag and body) and writes the reply
    /// into `reply`; returns the reply's length.
    ///
    /// # Errors
    ///
    /// [`TransportError`] when the message cannot be carried.
    fn round_trip(&mut self, request: &[u8], reply: &mut [u8]) -> Result<usize, TransportError>;
}
