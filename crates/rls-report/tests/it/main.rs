//! rls-report's tests: the formats against their schemas (synthetic cells and a real check of
//! the example, clean and hand-broken).

#![allow(clippy::unwrap_used)] // Test code: a panic is the failure report.

mod formats;
mod real_check;
mod util;
