//! Framing of the line protocol: request lines in, JSON lines (and raw result bytes) out.
//!
//! The decoder has two modes. In line mode it yields one parsed [`Request`] per line; a line
//! over the limit is reported once and then skipped up to its newline, so the connection stays
//! usable. After a `PUT <kind> <nbytes>` line it yields exactly `nbytes` raw bytes as
//! [`Inbound::Chunk`]s, then [`Inbound::UploadEnd`], and returns to line mode.

use crate::error::ProtocolError;
use crate::request::Request;
use bytes::{Buf, Bytes, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

/// Largest chunk of a PUT body handed on at once.
const MAX_CHUNK: usize = 256 * 1024;

#[derive(Debug)]
pub enum Inbound {
    Request(Result<Request, ProtocolError>),
    /// Part of the body of the current PUT.
    Chunk(Bytes),
    /// The body of the current PUT is complete.
    UploadEnd,
}

/// What a node writes: answer lines and raw result bytes.
#[derive(Debug)]
pub enum Outbound {
    /// A JSON line already serialized, without its newline.
    Line(Bytes),
    /// Bytes that follow a `"bytes":N` header line.
    Raw(Bytes),
}

impl Outbound {
    /// `value` as an answer line.
    pub fn line<T: serde::Serialize>(value: &T) -> Outbound {
        match serde_json::to_vec(value) {
            Ok(json) => Outbound::Line(json.into()),
            Err(e) => Outbound::error(&crate::ErrorLine::new(crate::ErrorCode::Internal, e)),
        }
    }

    /// An error line.
    pub fn error(line: &crate::ErrorLine) -> Outbound {
        Outbound::Line(
            serde_json::to_vec(line)
                .expect("an error line serializes")
                .into(),
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Lines,
    /// Skipping the rest of an over-long line.
    Discarding,
    Upload {
        remaining: u64,
    },
}

#[derive(Debug)]
pub struct LineCodec {
    max_line: usize,
    max_payload: u64,
    mode: Mode,
    /// How far the current buffer was already searched for a newline.
    scanned: usize,
}

impl LineCodec {
    pub fn new(max_line: usize, max_payload: u64) -> Self {
        LineCodec {
            max_line,
            max_payload,
            mode: Mode::Lines,
            scanned: 0,
        }
    }

    fn line(&mut self, line: &[u8]) -> Inbound {
        let parsed = Request::parse(line);
        if let Some(size) = parsed.as_ref().ok().and_then(Request::body_size) {
            if size > self.max_payload {
                return Inbound::Request(Err(ProtocolError::PayloadTooLarge {
                    size,
                    limit: self.max_payload,
                }));
            }
            self.mode = Mode::Upload { remaining: size };
        }
        Inbound::Request(parsed)
    }
}

impl Decoder for LineCodec {
    type Item = Inbound;
    type Error = std::io::Error;

    fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Inbound>, std::io::Error> {
        loop {
            match self.mode {
                Mode::Upload { remaining: 0 } => {
                    self.mode = Mode::Lines;
                    return Ok(Some(Inbound::UploadEnd));
                }
                Mode::Upload { remaining } => {
                    if buf.is_empty() {
                        return Ok(None);
                    }
                    let n = (buf.len() as u64).min(remaining).min(MAX_CHUNK as u64) as usize;
                    self.mode = Mode::Upload {
                        remaining: remaining - n as u64,
                    };
                    return Ok(Some(Inbound::Chunk(buf.split_to(n).freeze())));
                }
                Mode::Discarding => match buf.iter().position(|b| *b == b'\n') {
                    Some(i) => {
                        buf.advance(i + 1);
                        self.mode = Mode::Lines;
                        self.scanned = 0;
                    }
                    None => {
                        buf.clear();
                        return Ok(None);
                    }
                },
                Mode::Lines => {
                    let start = self.scanned;
                    match buf[start..].iter().position(|b| *b == b'\n') {
                        Some(i) => {
                            let end = start + i;
                            self.scanned = 0;
                            if end > self.max_line + 1 {
                                buf.advance(end + 1);
                                return Ok(Some(Inbound::Request(Err(
                                    ProtocolError::LineTooLong {
                                        limit: self.max_line,
                                    },
                                ))));
                            }
                            let line = buf.split_to(end + 1);
                            return Ok(Some(self.line(&line[..end])));
                        }
                        None if buf.len() > self.max_line + 1 => {
                            // +1 leaves room for a `\r` before the newline.
                            buf.clear();
                            self.scanned = 0;
                            self.mode = Mode::Discarding;
                            return Ok(Some(Inbound::Request(Err(ProtocolError::LineTooLong {
                                limit: self.max_line,
                            }))));
                        }
                        None => {
                            self.scanned = buf.len();
                            return Ok(None);
                        }
                    }
                }
            }
        }
    }

    fn decode_eof(&mut self, buf: &mut BytesMut) -> Result<Option<Inbound>, std::io::Error> {
        if let Some(item) = self.decode(buf)? {
            return Ok(Some(item));
        }
        match self.mode {
            // A last line without a newline (`printf 'PING' | nc ...`) still counts.
            Mode::Lines if !buf.is_empty() => {
                let line = buf.split();
                self.scanned = 0;
                Ok(Some(self.line(&line)))
            }
            _ => Ok(None),
        }
    }
}

impl Encoder<Outbound> for LineCodec {
    type Error = std::io::Error;

    fn encode(&mut self, item: Outbound, dst: &mut BytesMut) -> Result<(), std::io::Error> {
        match item {
            Outbound::Line(line) => {
                dst.reserve(line.len() + 1);
                dst.extend_from_slice(&line);
                dst.extend_from_slice(b"\n");
            }
            Outbound::Raw(bytes) => dst.extend_from_slice(&bytes),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(codec: &mut LineCodec, input: &[u8]) -> Vec<Inbound> {
        let mut buf = BytesMut::from(input);
        let mut out = vec![];
        while let Some(item) = codec.decode(&mut buf).unwrap() {
            out.push(item);
        }
        out
    }

    #[test]
    fn lines_and_put_body() {
        let mut c = LineCodec::new(100, 1000);
        let out = decode_all(&mut c, b"PING\r\nPUT echo 5\nab\ncdPING\n");
        assert!(matches!(out[0], Inbound::Request(Ok(Request::Ping))));
        assert!(matches!(
            out[1],
            Inbound::Request(Ok(Request::Put { size: 5, .. }))
        ));
        let body: Vec<u8> = out
            .iter()
            .filter_map(|i| match i {
                Inbound::Chunk(b) => Some(b.to_vec()),
                _ => None,
            })
            .flatten()
            .collect();
        assert_eq!(body, b"ab\ncd");
        assert!(matches!(out[out.len() - 2], Inbound::UploadEnd));
        assert!(matches!(
            out[out.len() - 1],
            Inbound::Request(Ok(Request::Ping))
        ));
    }

    #[test]
    fn empty_put_ends_at_once() {
        let mut c = LineCodec::new(100, 1000);
        let out = decode_all(&mut c, b"PUT echo 0\nPING\n");
        assert!(matches!(out[1], Inbound::UploadEnd));
        assert!(matches!(out[2], Inbound::Request(Ok(Request::Ping))));
    }

    #[test]
    fn long_line_is_reported_once_and_skipped() {
        let mut c = LineCodec::new(64, 1000);
        let mut buf = BytesMut::new();
        buf.extend_from_slice(&[b'a'; 200]);
        let first = c.decode(&mut buf).unwrap();
        assert!(matches!(
            first,
            Some(Inbound::Request(Err(ProtocolError::LineTooLong { .. })))
        ));
        buf.extend_from_slice(&[b'a'; 200]);
        assert!(c.decode(&mut buf).unwrap().is_none());
        buf.extend_from_slice(b"aaa\nPING\n");
        assert!(matches!(
            c.decode(&mut buf).unwrap(),
            Some(Inbound::Request(Ok(Request::Ping)))
        ));
    }

    #[test]
    fn long_line_arriving_whole_is_refused() {
        let mut c = LineCodec::new(64, 1000);
        let mut input = vec![b'x'; 100];
        input.extend_from_slice(b"\nPING\n");
        let out = decode_all(&mut c, &input);
        assert!(matches!(
            out[0],
            Inbound::Request(Err(ProtocolError::LineTooLong { .. }))
        ));
        assert!(matches!(out[1], Inbound::Request(Ok(Request::Ping))));
    }

    #[test]
    fn oversized_put_is_refused_and_stays_in_line_mode() {
        let mut c = LineCodec::new(64, 10);
        let out = decode_all(&mut c, b"PUT echo 11\nPING\n");
        assert!(matches!(
            out[0],
            Inbound::Request(Err(ProtocolError::PayloadTooLarge {
                size: 11,
                limit: 10
            }))
        ));
    }

    #[test]
    fn last_line_without_newline_counts_at_eof() {
        let mut c = LineCodec::new(64, 10);
        let mut buf = BytesMut::from(&b"PING"[..]);
        assert!(c.decode(&mut buf).unwrap().is_none());
        assert!(matches!(
            c.decode_eof(&mut buf).unwrap(),
            Some(Inbound::Request(Ok(Request::Ping)))
        ));
    }
}

#[cfg(test)]
mod fuzz {
    //! Property tests over the codec: arbitrary input never panics, the decoder
    //! never yields more than it was given, and valid requests survive any chunking.
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

        #[test]
        fn decoder_handles_any_bytes_in_any_chunks(
            data in proptest::collection::vec(any::<u8>(), 0..4000),
            cuts in proptest::collection::vec(1usize..500, 1..20),
        ) {
            let mut codec = LineCodec::new(100, 2000);
            let mut buf = BytesMut::new();
            let mut rest = &data[..];
            let mut raw = 0usize;
            for cut in cuts.iter().cycle() {
                if rest.is_empty() { break; }
                let n = (*cut).min(rest.len());
                buf.extend_from_slice(&rest[..n]);
                rest = &rest[n..];
                while let Some(item) = codec.decode(&mut buf).unwrap() {
                    if let Inbound::Chunk(b) = item { raw += b.len(); }
                }
            }
            prop_assert!(raw <= data.len());
        }

        #[test]
        fn valid_requests_survive_chunking(
            words in proptest::collection::vec("[a-z]{1,8}", 1..6),
            cut in 1usize..40,
        ) {
            let line = format!("upper {}\r\nPING\n", words.join(" "));
            let mut codec = LineCodec::new(1000, 1000);
            let mut buf = BytesMut::new();
            let mut items = vec![];
            for chunk in line.as_bytes().chunks(cut) {
                buf.extend_from_slice(chunk);
                while let Some(item) = codec.decode(&mut buf).unwrap() {
                    items.push(item);
                }
            }
            prop_assert_eq!(items.len(), 2);
            match &items[0] {
                Inbound::Request(Ok(Request::Submit { kind, payload, wait: true, .. })) => {
                    prop_assert_eq!(kind, "upper");
                    prop_assert_eq!(payload, &words.join(" ").into_bytes());
                }
                other => prop_assert!(false, "unexpected {:?}", other),
            }
            prop_assert!(matches!(items[1], Inbound::Request(Ok(Request::Ping))));
        }
    }
}
