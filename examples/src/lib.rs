#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

pub mod backends;
pub mod cpu;
pub mod glue;
pub mod observability;
pub mod session;
pub mod testbed;
