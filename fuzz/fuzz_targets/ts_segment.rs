//! The MPEG-TS segmenter (trickle pipelines cut a worker's input into IDR segments with it) on
//! arbitrary bytes in chunks whose size the first byte picks. Segments are numbered 0, 1, 2…,
//! every byte handed out is whole TS packets after a segment start, and no more is counted
//! as dropped than came in.
#![no_main]

use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use livegate_media::ts::segment::{SegmentEvent, Segmenter};

fuzz_target!(|data: &[u8]| {
    let chunk = data.first().map_or(1, |&b| usize::from(b) * 7 + 1);
    let min_duration = Duration::from_millis(u64::from(data.get(1).copied().unwrap_or(0)) * 10);
    let mut segmenter = Segmenter::new(min_duration);
    let mut events = Vec::new();
    for piece in data.chunks(chunk) {
        segmenter.push(piece, &mut events);
    }
    segmenter.finish(&mut events);
    let mut next_index = 0;
    for event in events {
        match event {
            SegmentEvent::Start(start) => {
                assert_eq!(start.index, next_index);
                assert!(start.pts_90k < 1 << 33);
                next_index += 1;
            }
            SegmentEvent::Bytes(bytes) => {
                assert!(next_index > 0, "bytes before the first segment start");
                assert_eq!(bytes.len() % 188, 0);
                assert!(bytes.chunks(188).all(|p| p[0] == 0x47));
            }
        }
    }
    assert!(segmenter.dropped_bytes() <= data.len() as u64);
});
