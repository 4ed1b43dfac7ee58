//! Development tools, kept out of the production binary: the demo data generator ([`demo`]),
//! `stridelog demo` ([`showcase`]) and `stridelog bench` ([`bench`]). The root package links
//! this crate only with its `devtools` feature (on by default); `cargo build --release
//! --no-default-features` builds a binary without any of it.

pub mod bench;
pub mod demo;
pub mod showcase;
