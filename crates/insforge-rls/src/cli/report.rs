//! Where a command's reports go: a file each, or standard output.

use std::io::Write as _;
use std::path::PathBuf;

use anyhow::{Context as _, Result};

/// One rendered report and where it goes (`None`: standard output).
pub(super) struct Output {
    pub file: Option<PathBuf>,
    pub text: String,
}

/// Writes every report to its file (creating missing parent folders) and prints the ones
/// without a file. Stops at the first that cannot be written, naming it.
pub(super) fn write_or_print(outputs: &[Output]) -> Result<()> {
    for output in outputs {
        match &output.file {
            Some(file) => {
                if let Some(parent) = file.parent().filter(|p| !p.as_os_str().is_empty()) {
                    std::fs::create_dir_all(parent)
                        .with_context(|| format!("cannot create {}", parent.display()))?;
                }
                std::fs::write(file, &output.text)
                    .with_context(|| format!("cannot write the report to {}", file.display()))?;
            }
            None => {
                let mut stdout = std::io::stdout().lock();
                stdout
                    .write_all(output.text.as_bytes())
                    .and_then(|()| stdout.flush())
                    .context("cannot print the report")?;
            }
        }
    }
    Ok(())
}
