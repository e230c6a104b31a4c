use super::kind::{read_text, Kind, TaskError};
use std::io::Write;
use std::path::PathBuf;

/// Appends its payload as one line to `file`, then returns it: a record of every run, so a
/// test can see a task that ran twice. Registered only when `tasks.tally_file` is set.
pub fn kind(file: PathBuf) -> Kind {
    let about = "records each run of its payload in tasks.tally_file (test deployments only)";
    Kind::quick("tally", about, move |input, output| {
        let text = read_text(input, 1024, "tally")?;
        if text.contains('\n') {
            return Err(TaskError::BadInput("tally takes one line".into()));
        }
        // One write of a short line to a file opened for appending: the lines of concurrent
        // runs (threads or node processes) do not interleave.
        let mut log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&file)?;
        log.write_all(format!("{text}\n").as_bytes())?;
        output.write_all(text.as_bytes())?;
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::super::run_on;

    #[test]
    fn each_run_is_a_line() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("runs");
        let kind = super::kind(file.clone());
        assert_eq!(run_on(&kind, b"a").unwrap(), b"a");
        assert_eq!(run_on(&kind, b"b").unwrap(), b"b");
        assert_eq!(run_on(&kind, b"a").unwrap(), b"a");
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "a\nb\na\n");
        assert!(run_on(&kind, b"x\ny").is_err());
    }
}
