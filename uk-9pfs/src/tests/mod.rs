//! Host tests: the wire format, the client against a std::fs 9P server, and the
//! filesystem end to end through uk-vfs.

mod client;
mod fuzz;
mod server;
mod vfs;
