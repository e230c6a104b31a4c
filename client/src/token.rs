//! The token taskctl says `AUTH` with: `--token`, else `TASKCTL_TOKEN`, else the token file
//! (`$XDG_CONFIG_HOME/tasknode/token`, or `~/.config/tasknode/token`), which is refused if
//! others may read it.

use anyhow::{bail, Context, Result};
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

/// Where the token file is looked for.
pub fn file() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))?;
    Some(base.join("tasknode").join("token"))
}

/// The token to use: `given` (flag or environment), else the token file's, else none.
pub fn resolve(given: Option<String>) -> Result<Option<String>> {
    if let Some(token) = given.filter(|t| !t.trim().is_empty()) {
        return Ok(Some(token.trim().to_string()));
    }
    let Some(path) = file() else { return Ok(None) };
    let meta = match std::fs::metadata(&path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    if meta.permissions().mode() & 0o077 != 0 {
        bail!(
            "{} may be read by others; make it private (chmod 600) or use --token / TASKCTL_TOKEN",
            path.display()
        );
    }
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    Ok(Some(text.trim().to_string()).filter(|t| !t.is_empty()))
}
