use super::*;
use proptest::prelude::*;

fn submit(kind: &str, payload: &str, wait: bool) -> Request {
    Request::Submit {
        kind: kind.into(),
        payload: payload.as_bytes().to_vec(),
        wait,
        options: SubmitOptions::default(),
    }
}

fn parse(line: &[u8]) -> Result<Request, ProtocolError> {
    Request::parse(line)
}

#[test]
fn plain_submission_keeps_payload_spacing() {
    assert_eq!(
        parse(b"upper hello  world").unwrap(),
        submit("upper", "hello  world", true)
    );
    assert_eq!(
        parse(b"upper hello\r").unwrap(),
        submit("upper", "hello", true)
    );
    assert_eq!(parse(b"echo").unwrap(), submit("echo", "", true));
}

#[test]
fn commands_are_case_insensitive() {
    assert_eq!(parse(b"ping").unwrap(), Request::Ping);
    assert_eq!(parse(b"KINDS").unwrap(), Request::Kinds);
    assert_eq!(parse(b"dead").unwrap(), Request::Dead(DEAD_DEFAULT));
    assert_eq!(parse(b"DEAD 5").unwrap(), Request::Dead(5));
    assert!(parse(b"DEAD 0").is_err());
    assert_eq!(parse(b"SUBMIT fib 10").unwrap(), submit("fib", "10", false));
    let id = Uuid::new_v4();
    assert_eq!(
        parse(format!("status {id}").as_bytes()).unwrap(),
        Request::Status(id)
    );
}

#[test]
fn put_header() {
    let put = |kind: &str, size, wait| Request::Put {
        kind: kind.into(),
        size,
        wait,
    };
    assert_eq!(
        parse(b"PUT sha256 1024").unwrap(),
        put("sha256", 1024, true)
    );
    assert_eq!(parse(b"put gzip 5 async").unwrap(), put("gzip", 5, false));
    assert!(matches!(
        parse(b"PUT sha256 lots"),
        Err(ProtocolError::Malformed(_))
    ));
    assert!(matches!(
        parse(b"PUT sha256"),
        Err(ProtocolError::Malformed(_))
    ));
}

#[test]
fn bad_lines_have_codes() {
    use crate::ErrorCode::*;
    let code = |line: &[u8]| parse(line).unwrap_err().code();
    assert_eq!(code(b""), EmptyLine);
    assert_eq!(code(b"  \r"), EmptyLine);
    assert_eq!(code(b"upper \xff\xfe"), InvalidUtf8);
    assert_eq!(code(b"upper a\0b"), NulByte);
    assert_eq!(code(b"STATUS nope"), Malformed);
    assert_eq!(code(b"STATUS"), Malformed);
    assert_eq!(code(b"PING now"), Malformed);
    assert_eq!(code(b"{\"kind\":1}"), Malformed);
    assert_eq!(code(b"{not json"), Malformed);
}

#[test]
fn json_requests() {
    assert_eq!(
        parse(br#"{"kind":"upper","payload":"a b"}"#).unwrap(),
        submit("upper", "a b", true)
    );
    assert_eq!(
        parse(br#"{"kind":"echo","payload_base64":"AAEC","wait":false}"#).unwrap(),
        Request::Submit {
            kind: "echo".into(),
            payload: vec![0, 1, 2],
            wait: false,
            options: SubmitOptions::default(),
        }
    );
    assert!(parse(br#"{"kind":"echo","extra":1}"#).is_err());
}

#[test]
fn json_submissions_carry_options() {
    let at = (chrono::Utc::now() + chrono::Duration::days(2))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let line = format!(
        r#"{{"kind":"upper","payload":"a","wait":false,"key":"order-17","run_at":"{at}","priority":7}}"#
    );
    let req = parse(line.as_bytes()).unwrap();
    let Request::Submit { options, .. } = &req else {
        panic!("a submission")
    };
    assert_eq!(options.key.as_deref(), Some("order-17"));
    assert_eq!(options.priority, Some(7));
    assert_eq!(
        options
            .run_at
            .unwrap()
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        at
    );
    assert_eq!(parse(req.to_line().trim_end().as_bytes()).unwrap(), req);
    assert!(parse(br#"{"kind":"upper","priority":12}"#).is_err());
    assert!(parse(br#"{"kind":"upper","delay_ms":5,"run_at":"2030-01-02T03:04:05Z"}"#).is_err());
}

#[test]
fn control_requests() {
    let id = Uuid::new_v4();
    assert_eq!(
        parse(format!("cancel {id}").as_bytes()).unwrap(),
        Request::Cancel(id)
    );
    assert_eq!(parse(b"PAUSE").unwrap(), Request::Pause(None));
    assert_eq!(
        parse(b"resume kind sleep").unwrap(),
        Request::Resume(PauseTarget::Kind("sleep".into()))
    );
    assert!(parse(b"RESUME").is_err());
    assert_eq!(
        parse(b"SCHEDULE LIST").unwrap(),
        Request::Schedule(ScheduleCommand::List)
    );
}

#[test]
fn lines_take_the_plain_form_when_it_fits() {
    assert_eq!(submit("upper", "a b", true).to_line(), "upper a b\n");
    assert_eq!(submit("fib", "10", false).to_line(), "SUBMIT fib 10\n");
    assert_eq!(submit("echo", "", true).to_line(), "echo\n");
    assert!(submit("echo", "a\nb", true).to_line().starts_with('{'));
    assert!(submit("ping", "x", true).to_line().starts_with('{'));
    assert_eq!(Request::Dead(7).to_line(), "DEAD 7\n");
}

fn request() -> impl Strategy<Value = Request> {
    let kind = "[a-z][a-z0-9_]{0,11}";
    let id = any::<u128>().prop_map(Uuid::from_u128);
    prop_oneof![
        (
            kind,
            proptest::collection::vec(any::<u8>(), 0..64),
            any::<bool>()
        )
            .prop_map(|(kind, payload, wait)| Request::Submit {
                kind,
                payload,
                wait,
                options: SubmitOptions::default(),
            }),
        (kind, ".{0,40}", any::<bool>()).prop_map(|(kind, text, wait)| Request::Submit {
            kind,
            payload: text.into_bytes(),
            wait,
            options: SubmitOptions::default(),
        }),
        (
            kind,
            ".{0,20}",
            proptest::option::of("[a-z0-9-]{1,30}"),
            proptest::option::of(0..=crate::control::MAX_DELAY_MS),
            proptest::option::of(0..=crate::control::PRIORITY_MAX)
        )
            .prop_map(|(kind, text, key, delay_ms, priority)| Request::Submit {
                kind,
                payload: text.into_bytes(),
                wait: false,
                options: SubmitOptions {
                    key,
                    delay_ms,
                    run_at: None,
                    priority
                },
            }),
        (kind, any::<u64>(), any::<bool>()).prop_map(|(kind, size, wait)| Request::Put {
            kind,
            size,
            wait
        }),
        id.clone().prop_map(Request::Status),
        id.clone().prop_map(Request::Result),
        id.clone().prop_map(Request::Retry),
        id.prop_map(Request::Cancel),
        "[a-z][a-z0-9_]{0,11}".prop_map(|n| Request::Pause(Some(PauseTarget::Lane(n)))),
        "[a-z][a-z0-9_]{0,11}".prop_map(|n| Request::Resume(PauseTarget::Kind(n))),
        Just(Request::Pause(None)),
        (1..=DEAD_MAX).prop_map(Request::Dead),
        Just(Request::Kinds),
        "tn_[A-Za-z0-9_-]{1,43}".prop_map(Request::Auth),
        Just(Request::Ping),
        Just(Request::Help),
        Just(Request::Quit),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1024, ..ProptestConfig::default() })]

    #[test]
    fn to_line_parses_back(req in request()) {
        let line = req.to_line();
        prop_assert!(line.ends_with('\n'));
        prop_assert_eq!(line.matches('\n').count(), 1, "one line: {:?}", line);
        let parsed = Request::parse(line.trim_end_matches('\n').as_bytes());
        prop_assert_eq!(parsed, Ok(req));
    }

    #[test]
    fn parse_never_panics(line in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = Request::parse(&line);
    }
}
