//! The HTTP resource model that WHIP (RFC 9725) and WHEP (draft-ietf-wish-whep) share.
//!
//! Both protocols create a session by POSTing an SDP offer to an endpoint, answer `201
//! Created` with the SDP answer and the session's resource URL, and then let the client
//! PATCH (trickle ICE, ICE restart) and DELETE that resource. This crate holds the pieces of
//! that model that do not depend on the direction of the media:
//!
//! - [`read_sdp_offer`]: the offer body, with its media type and size checked first.
//! - [`ResourceId`]: unguessable session resource ids.
//! - [`BearerToken`]: the optional `Authorization: Bearer` check, in constant time.
//! - [`patch`]: `If-Match` preconditions and the PATCH outcome as HTTP (RFC 9725 §4.3).
//! - [`HttpError`]: a status with a one-line reason the client can read.
//! - [`SessionResource`]: DELETE, PATCH and OPTIONS of a session, one set of handlers for
//!   both endpoints ([`session_methods`], [`endpoint_options`]).
//! - [`SessionTable`]: an endpoint's sessions by id, found only under their own stream.
//! - [`headers`]: the header names and values both endpoints send.
//!
//! It knows nothing of media: the WHIP and WHEP crates handle their own POSTs, mount the
//! session handlers with their server as the state, and keep their own tables of streams.

mod bearer;
mod error;
pub mod headers;
pub mod patch;
mod resource_id;
mod responses;
mod sdp_body;
mod session_resource;
mod session_table;

pub use bearer::BearerToken;
pub use error::HttpError;
pub use resource_id::ResourceId;
pub use responses::{ascii_header, authorize, created, preflight, respond};
pub use sdp_body::{read_sdp_offer, BodyTimedOut, MAX_SDP_BYTES};
pub use session_resource::{
    close_in_time, endpoint_options, live_session, no_such_session, session_methods,
    session_options, session_url, SessionResource,
};
pub use session_table::{SessionTable, StreamSession};
