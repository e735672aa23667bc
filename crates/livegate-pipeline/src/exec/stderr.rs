//! A worker's stderr as log lines: each line is logged under the caller's span (the stream
//! and the worker's pid), cut at [`MAX_LINE_BYTES`] so a worker that prints without newlines
//! cannot grow our memory.
//!
//! It is not a log parser: levels are not guessed from the text; every line is `info`.

use tokio::io::{AsyncBufRead, AsyncBufReadExt};

/// Longest stderr line logged; the rest of a longer line is dropped and the line marked.
pub const MAX_LINE_BYTES: usize = 2 * 1024;

/// Logs every line of `stderr` until it ends (the worker exited) or fails.
pub(crate) async fn log_lines(stderr: impl AsyncBufRead + Unpin) {
    let mut lines = BoundedLines::new(stderr, MAX_LINE_BYTES);
    while let Ok(Some((line, truncated))) = lines.next_line().await {
        let text = String::from_utf8_lossy(line);
        if truncated {
            tracing::info!(truncated, "{}", text.trim_end());
        } else {
            tracing::info!("{}", text.trim_end());
        }
    }
}

/// Lines of at most `max_bytes`, without their `\n`, each with whether it was cut.
pub(crate) struct BoundedLines<R> {
    reader: R,
    line: Vec<u8>,
    max_bytes: usize,
}

impl<R: AsyncBufRead + Unpin> BoundedLines<R> {
    pub(crate) fn new(reader: R, max_bytes: usize) -> BoundedLines<R> {
        BoundedLines {
            reader,
            line: Vec::with_capacity(max_bytes),
            max_bytes,
        }
    }

    /// The next line, `None` at the end of the input; a last line without `\n` counts.
    pub(crate) async fn next_line(&mut self) -> std::io::Result<Option<(&[u8], bool)>> {
        self.line.clear();
        let mut truncated = false;
        loop {
            let buf = self.reader.fill_buf().await?;
            if buf.is_empty() {
                let any = !self.line.is_empty() || truncated;
                return Ok(any.then_some((&self.line[..], truncated)));
            }
            let newline = buf.iter().position(|&b| b == b'\n');
            let content = newline.unwrap_or(buf.len());
            let room = self.max_bytes - self.line.len();
            self.line.extend_from_slice(&buf[..content.min(room)]);
            truncated |= content > room;
            let used = newline.map_or(buf.len(), |i| i + 1);
            self.reader.consume(used);
            if newline.is_some() {
                return Ok(Some((&self.line[..], truncated)));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn lines_of(input: &[u8], max_bytes: usize) -> Vec<(String, bool)> {
        // A tiny buffer, so lines straddle many reads.
        let reader = tokio::io::BufReader::with_capacity(3, input);
        let mut lines = BoundedLines::new(reader, max_bytes);
        let mut out = Vec::new();
        while let Some((line, truncated)) = lines.next_line().await.unwrap() {
            out.push((String::from_utf8(line.to_vec()).unwrap(), truncated));
        }
        out
    }

    #[tokio::test]
    async fn long_lines_are_cut_and_marked_and_the_next_line_is_whole() {
        let got = lines_of(b"short\n0123456789abcdef\nnext\nlast", 8).await;
        let want = [
            ("short", false),
            ("01234567", true),
            ("next", false),
            ("last", false),
        ];
        let want: Vec<(String, bool)> = want.iter().map(|(s, t)| (s.to_string(), *t)).collect();
        assert_eq!(got, want);
    }

    #[tokio::test]
    async fn empty_lines_are_lines_and_no_input_is_no_line() {
        assert_eq!(
            lines_of(b"\n\n", 8).await,
            vec![(String::new(), false), (String::new(), false)]
        );
        assert!(lines_of(b"", 8).await.is_empty());
    }
}
