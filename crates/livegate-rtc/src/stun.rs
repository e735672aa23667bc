//! Just enough STUN (RFC 8489) to route a connectivity check to its session.

use rtc::stun::attributes::ATTR_USERNAME;
use rtc::stun::message::{is_stun_message, Message, CLASS_REQUEST};
use rtc::stun::textattrs::TextAttribute;

/// Whether a datagram is STUN (RFC 7983 §7: first byte 0..=3 plus the magic cookie).
pub(crate) fn is_stun(datagram: &[u8]) -> bool {
    is_stun_message(datagram)
}

/// The local ufrag a STUN binding request is addressed to: the part of USERNAME before the
/// colon (RFC 8445 §7.2.2 "RFRAG:LFRAG" seen from the sender). `None` for anything else.
pub(crate) fn local_ufrag_of_request(datagram: &[u8]) -> Option<String> {
    if !is_stun(datagram) {
        return None;
    }
    let mut message = Message::new();
    message.unmarshal_binary(datagram).ok()?;
    if message.typ.class != CLASS_REQUEST {
        return None;
    }
    let username = TextAttribute::get_from_as(&message, ATTR_USERNAME).ok()?;
    let (local, _remote) = username.text.split_once(':')?;
    Some(local.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_is_not_stun() {
        assert_eq!(local_ufrag_of_request(&[]), None);
        assert_eq!(local_ufrag_of_request(&[0x80, 0x60, 0, 0]), None);
        assert_eq!(local_ufrag_of_request(&[0u8; 20]), None);
    }
}
