//! The `Lp-Trickle-*` headers, as go-livepeer's `trickle/` package names and reads them.

use axum::http::{HeaderMap, HeaderName};

use crate::SeqNo;

/// The seq a response is about (GET: the segment served; POST: the segment written).
pub const SEQ: HeaderName = HeaderName::from_static("lp-trickle-seq");
/// The server's write head: the next seq a publisher will start (go-livepeer's `nextWrite`).
pub const LATEST: HeaderName = HeaderName::from_static("lp-trickle-latest");
/// Present when the channel is closed; its value is [`CLOSED_VALUE`].
pub const CLOSED: HeaderName = HeaderName::from_static("lp-trickle-closed");
/// Sent by a restarted publisher: the server ends older segments so their readers stop waiting.
pub const RESET: HeaderName = HeaderName::from_static("lp-trickle-reset");
/// The value go-livepeer gives [`CLOSED`].
pub const CLOSED_VALUE: &str = "terminated";

/// A seq header's value, `None` when absent or not an integer.
pub fn seq_header(headers: &HeaderMap, name: &HeaderName) -> Option<SeqNo> {
    headers.get(name)?.to_str().ok()?.trim().parse().ok()
}

/// Whether the response says the channel is closed (any value counts, as in go-livepeer's
/// `IsEOS`).
pub fn is_closed(headers: &HeaderMap) -> bool {
    headers.contains_key(CLOSED)
}
