//! The library side of subcommands that are more than a few lines: `main.rs` parses the
//! arguments and prints; these modules do the work (and are what the tests call).

pub mod check_online;
pub mod preview;
