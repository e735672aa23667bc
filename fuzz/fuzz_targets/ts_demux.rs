//! The MPEG-TS demuxer on arbitrary bytes, fed in two chunks split at the first input byte.
#![no_main]

use libfuzzer_sys::fuzz_target;
use livegate_media::ts::demux::{DemuxEvent, Demuxer};

fuzz_target!(|data: &[u8]| {
    let split = data.first().map_or(0, |&b| usize::from(b) * 3).min(data.len());
    let mut demuxer = Demuxer::new();
    let mut events = Vec::new();
    demuxer.push(&data[..split], &mut events);
    demuxer.push(&data[split..], &mut events);
    demuxer.finish(&mut events);
    for event in events {
        if let DemuxEvent::AccessUnit(au) = event {
            assert!(!au.data.is_empty());
        }
    }
});
