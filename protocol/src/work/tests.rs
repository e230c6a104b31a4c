use super::*;

fn parse(line: &str) -> Result<WorkCommand, ProtocolError> {
    match crate::Request::parse(line.as_bytes())? {
        crate::Request::Work(cmd) => Ok(cmd),
        other => panic!("{line} parsed as {other:?}"),
    }
}

#[test]
fn work_names_kinds_and_slots() {
    assert_eq!(
        parse("WORK thumbnail,Resize slots=8").unwrap(),
        WorkCommand::Work {
            kinds: vec!["thumbnail".into(), "resize".into()],
            slots: 8,
            stream: false,
        }
    );
    assert_eq!(
        parse("work thumbnail stream=1").unwrap(),
        WorkCommand::Work {
            kinds: vec!["thumbnail".into()],
            slots: 1,
            stream: true,
        }
    );
    for bad in [
        "WORK",
        "WORK a slots=0",
        "WORK a slots=257",
        "WORK a b",
        "WORK a/b",
        "WORK _a",
    ] {
        assert!(parse(bad).is_err(), "{bad} parsed");
    }
}

#[test]
fn done_fail_progress_extend_name_their_lease() {
    assert_eq!(
        parse("DONE abc-1 a small result").unwrap(),
        WorkCommand::Done {
            lease: "abc-1".into(),
            result: b"a small result".to_vec()
        }
    );
    assert_eq!(
        parse("DONE abc PUT 42").unwrap(),
        WorkCommand::DonePut {
            lease: "abc".into(),
            size: 42
        }
    );
    assert_eq!(
        parse("FAIL abc final no such image").unwrap(),
        WorkCommand::Fail {
            lease: "abc".into(),
            last: true,
            message: "no such image".into()
        }
    );
    assert_eq!(
        parse("FAIL abc disk full").unwrap(),
        WorkCommand::Fail {
            lease: "abc".into(),
            last: false,
            message: "disk full".into()
        }
    );
    assert_eq!(
        parse("PROGRESS abc 40 resizing").unwrap(),
        WorkCommand::Progress {
            lease: "abc".into(),
            percent: 40,
            note: Some("resizing".into())
        }
    );
    assert_eq!(
        parse("EXTEND abc 30").unwrap(),
        WorkCommand::Extend {
            lease: "abc".into(),
            secs: 30
        }
    );
    for bad in [
        "DONE",
        "PROGRESS abc 101",
        "PROGRESS abc x",
        "EXTEND abc 0",
        "EXTEND abc",
        "DONE a\"b x",
    ] {
        assert!(parse(bad).is_err(), "{bad} parsed");
    }
}

#[test]
fn the_json_done_carries_binary_results_and_every_command_reads_back() {
    let done = parse(r#"{"done":"abc","result_base64":"AAEC"}"#).unwrap();
    assert_eq!(
        done,
        WorkCommand::Done {
            lease: "abc".into(),
            result: vec![0, 1, 2]
        }
    );
    for cmd in [
        done,
        WorkCommand::Done {
            lease: "l".into(),
            result: b"two\nlines".to_vec(),
        },
        WorkCommand::Done {
            lease: "l".into(),
            result: b"PUT 5".to_vec(),
        },
        WorkCommand::Done {
            lease: "l".into(),
            result: vec![],
        },
        WorkCommand::Fail {
            lease: "l".into(),
            last: true,
            message: "bad".into(),
        },
        WorkCommand::Progress {
            lease: "l".into(),
            percent: 7,
            note: None,
        },
        WorkCommand::Work {
            kinds: vec!["a".into(), "b".into()],
            slots: 3,
            stream: true,
        },
        WorkCommand::Quiet,
    ] {
        assert_eq!(parse(&cmd.to_words()).unwrap(), cmd);
    }
    // A submission that mentions "done" is still a submission.
    let submit = crate::Request::parse(br#"{"kind":"echo","payload":"\"done\""}"#).unwrap();
    assert!(
        matches!(submit, crate::Request::Submit { .. }),
        "{submit:?}"
    );
}

#[test]
fn a_worker_reads_every_line_it_can_get() {
    let line: WorkerLine = serde_json::from_str(r#"{"cancel":"abc"}"#).unwrap();
    assert_eq!(
        line,
        WorkerLine::Cancel(CancelLease {
            cancel: "abc".into()
        })
    );
    let line: WorkerLine = serde_json::from_str(r#"{"error":"lease_lost","message":"x"}"#).unwrap();
    assert!(matches!(line, WorkerLine::Error(e) if e.error == crate::ErrorCode::LeaseLost));
}
