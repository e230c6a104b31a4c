//! Progress of a long upload or download on a terminal: bytes so far, of how many, and the
//! rate, redrawn on one line of standard error. Nothing is drawn when standard error is not
//! a terminal (scripts, pipes).

use std::io::IsTerminal;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Counts the bytes that pass through `inner` and shows them.
pub struct Progress<T> {
    inner: T,
    label: &'static str,
    total: u64,
    done: u64,
    started: Instant,
    drawn: Option<Instant>,
    show: bool,
}

impl<T> Progress<T> {
    pub fn new(inner: T, label: &'static str, total: u64) -> Self {
        Progress {
            inner,
            label,
            total,
            done: 0,
            started: Instant::now(),
            drawn: None,
            // Small transfers end before anyone could read a bar.
            show: std::io::stderr().is_terminal() && total >= 4 << 20,
        }
    }

    fn advance(&mut self, n: usize) {
        self.done += n as u64;
        if !self.show {
            return;
        }
        let due = self
            .drawn
            .is_none_or(|at| at.elapsed() >= Duration::from_millis(200));
        if due || self.done == self.total {
            self.drawn = Some(Instant::now());
            let secs = self.started.elapsed().as_secs_f64().max(0.001);
            let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
            let pct = 100.0 * self.done as f64 / self.total.max(1) as f64;
            eprint!(
                "\r{} {:.1}/{:.1} MiB ({pct:.0}%), {:.1} MiB/s   ",
                self.label,
                mib(self.done),
                mib(self.total),
                mib(self.done) / secs
            );
            if self.done == self.total {
                eprintln!();
            }
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Progress<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        let n = buf.filled().len() - before;
        self.advance(n);
        polled
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Progress<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = polled {
            self.advance(n);
        }
        polled
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
