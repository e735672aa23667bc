//! An interceptor that lets inbound RTCP reach the application.
//!
//! `rtc` ends its interceptor chain with a no-op that drops every inbound RTCP packet not
//! marked for delivery, so without this a viewer's PLI/FIR never reaches the WHEP layer, and
//! a peer we drive ourselves (the `whip:` upstream worker, the load tool's clients) never sees
//! the other side's PLI, FIR, NACK or sender reports.

use std::collections::VecDeque;
use std::time::Instant;

use rtc::interceptor::{Attribute, Interceptor, Packet, StreamInfo, TaggedPacket};
use rtc::sansio::Protocol;

/// Marks every inbound RTCP packet for delivery to the application. Register it in an
/// `rtc` interceptor [`Registry`](rtc::interceptor::Registry) in a late slot, e.g.
/// `Registry::new().with(Slot::from(14_000), DeliverRtcp::default())`.
#[derive(Default)]
pub struct DeliverRtcp {
    reads: VecDeque<TaggedPacket>,
    writes: VecDeque<TaggedPacket>,
}

impl Protocol<TaggedPacket, TaggedPacket, ()> for DeliverRtcp {
    type Rout = TaggedPacket;
    type Wout = TaggedPacket;
    type Eout = ();
    type Error = rtc::shared::error::Error;
    type Time = Instant;

    fn handle_read(&mut self, mut msg: TaggedPacket) -> Result<(), Self::Error> {
        if matches!(msg.message.packet, Packet::Rtcp(_)) {
            msg.message.add(Attribute::DeliverToApplication);
        }
        self.reads.push_back(msg);
        Ok(())
    }

    fn poll_read(&mut self) -> Option<TaggedPacket> {
        self.reads.pop_front()
    }

    fn handle_write(&mut self, msg: TaggedPacket) -> Result<(), Self::Error> {
        self.writes.push_back(msg);
        Ok(())
    }

    fn poll_write(&mut self) -> Option<TaggedPacket> {
        self.writes.pop_front()
    }
}

impl Interceptor for DeliverRtcp {
    fn bind_local_stream(&mut self, _: &StreamInfo) {}
    fn unbind_local_stream(&mut self, _: &StreamInfo) {}
    fn bind_remote_stream(&mut self, _: &StreamInfo) {}
    fn unbind_remote_stream(&mut self, _: &StreamInfo) {}
}
