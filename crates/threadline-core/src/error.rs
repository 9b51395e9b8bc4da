//! Error reporting helpers shared by every crate.

use std::error::Error;
use std::fmt::Write as _;

/// An error and its chain of sources as one line: `outer: inner: root`. Error types keep
/// their sources out of their own message, so nothing is said twice.
pub fn chain(error: &dyn Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(inner) = source {
        let _ = write!(text, ": {inner}");
        source = inner.source();
    }
    text
}
