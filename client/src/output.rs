//! What taskctl prints: a JSON line, a finished task's result or why it failed, a large
//! result streamed to standard output or a file; and a file sent as a payload.

use crate::progress::Progress;
use crate::Failure;
use anyhow::{anyhow, Context};
use protocol::{Client, TaskStatus, TaskView};
use std::path::Path;

/// Print `value` as one JSON line.
pub fn print_json(value: &impl serde::Serialize) {
    println!("{}", serde_json::to_string(value).unwrap_or_default());
}

/// Send a file with `PUT`, streamed, showing progress on a terminal.
pub async fn put_file(
    conn: &mut Client,
    kind: &str,
    path: &Path,
    wait: bool,
) -> Result<TaskView, Failure> {
    let file = tokio::fs::File::open(path)
        .await
        .with_context(|| format!("opening {}", path.display()))?;
    let size = file
        .metadata()
        .await
        .context("reading the file size")?
        .len();
    let mut body = Progress::new(file, "upload", size);
    Ok(conn.put(kind, size, &mut body, wait).await?)
}

/// Print a finished task: its result, or why it failed. A result kept in the object store is
/// fetched with `RESULT <id>`.
pub async fn print_result(
    conn: &mut Client,
    v: TaskView,
    json: bool,
    output: Option<&Path>,
) -> Result<(), Failure> {
    if json {
        print_json(&v);
    }
    match v.status {
        TaskStatus::Succeeded => {}
        TaskStatus::Failed | TaskStatus::Dead => {
            let why = v.message.unwrap_or_default();
            return Err(Failure::Task(format!("task {} failed: {why}", v.id)));
        }
        other => return Err(Failure::Task(format!("task {} is {other}", v.id))),
    }
    if let Some(bytes) = v.result_bytes() {
        if json && output.is_none() {
            return Ok(());
        }
        let bytes = bytes.map_err(|e| anyhow!("bad base64 result: {e}"))?;
        return write_bytes(output, &bytes, json);
    }
    if v.result_key.is_some() {
        if json && output.is_none() {
            return Ok(());
        }
        let header = conn.result(v.id).await?;
        let n = header
            .bytes
            .ok_or_else(|| Failure::Task(format!("node sent no result body: {header:?}")))?;
        return copy_body(conn, n, output, json).await;
    }
    Ok(())
}

/// Stream a large result's body to `output` or standard output.
pub async fn copy_body(
    conn: &mut Client,
    n: u64,
    output: Option<&Path>,
    json: bool,
) -> Result<(), Failure> {
    match output {
        Some(path) => {
            let file = tokio::fs::File::create(path)
                .await
                .with_context(|| format!("creating {}", path.display()))?;
            let mut file = Progress::new(file, "download", n);
            conn.read_body(n, &mut file).await?;
            if !json {
                eprintln!("wrote {n} bytes to {}", path.display());
            }
        }
        None => conn.read_body(n, &mut tokio::io::stdout()).await?,
    }
    Ok(())
}

fn write_bytes(output: Option<&Path>, bytes: &[u8], json: bool) -> Result<(), Failure> {
    match output {
        Some(path) => {
            std::fs::write(path, bytes).with_context(|| format!("writing {}", path.display()))?;
            if !json {
                eprintln!("wrote {} bytes to {}", bytes.len(), path.display());
            }
        }
        None => {
            use std::io::Write;
            let mut out = std::io::stdout().lock();
            out.write_all(bytes).context("writing standard output")?;
            // Text results end with a newline on a terminal; binary ones stay exact.
            if std::str::from_utf8(bytes).is_ok() && !bytes.ends_with(b"\n") {
                out.write_all(b"\n").context("writing standard output")?;
            }
        }
    }
    Ok(())
}
