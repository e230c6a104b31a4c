use super::requests::weight;
use super::*;
use protocol::Request;

fn submit(bytes: usize) -> Request {
    Request::Submit {
        kind: "echo".into(),
        payload: vec![b'x'; bytes],
        wait: true,
        options: Default::default(),
    }
}

#[test]
fn large_requests_pipeline_less_deep() {
    assert_eq!(weight(&Request::Ping), 1);
    assert_eq!(weight(&submit(16)), 1);
    assert_eq!(weight(&submit(SLOT_BYTES - 1)), 1);
    assert_eq!(weight(&submit(SLOT_BYTES)), 2);
    assert_eq!(weight(&submit(10 * SLOT_BYTES + 1)), 11);
    // A line of the largest size still fits (it waits for the connection to drain).
    assert_eq!(weight(&submit(64 * 1024 * 1024)), MAX_PIPELINED as u32);
}
