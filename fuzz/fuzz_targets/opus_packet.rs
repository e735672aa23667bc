//! `livegate_media::opus` on arbitrary bytes: the TOC duration (RFC 6716 §3.1) of every
//! suffix, and the `opus_control_header` parser at every offset, which must frame a packet
//! inside the payload or refuse; a header we write for the packet length must read back.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use livegate_media::opus::{
    packet_duration_48k, parse_control_header, write_control_header, MAX_PACKET_DURATION_48K,
};

fuzz_target!(|data: &[u8]| {
    if let Ok(duration) = packet_duration_48k(data) {
        assert!(duration <= MAX_PACKET_DURATION_48K);
        assert_eq!(duration % 120, 0, "not a whole number of 2.5 ms units");
    }
    let mut offset = 0;
    while offset < data.len() {
        match parse_control_header(data, offset) {
            Ok(framed) => {
                assert!(offset < framed.start && framed.start <= framed.end);
                assert!(framed.end <= data.len(), "a packet past the payload");
                offset = framed.end.max(offset + 1);
            }
            Err(_) => offset += 1,
        }
    }
    let mut framed = BytesMut::new();
    write_control_header(data.len(), &mut framed);
    let header_len = framed.len();
    framed.extend_from_slice(data);
    let parsed = parse_control_header(&framed, 0).expect("our own header");
    assert_eq!((parsed.start, parsed.end), (header_len, framed.len()));
});
