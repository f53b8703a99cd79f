//! rls-report's tests: the formats against their schemas (synthetic cells and a real check of
//! the example, clean and hand-broken), the action's script with GitHub's variables, and the
//! example workflows through actionlint.

#![allow(clippy::unwrap_used)] // Test code: a panic is the failure report.

mod action;
mod formats;
mod locate;
mod real_check;
mod util;
mod workflows;
