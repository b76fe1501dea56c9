//! Multipart (`multipart/x-mixed-replace`) handling for MJPEG over HTTP.
mod parser;

pub use parser::*;
