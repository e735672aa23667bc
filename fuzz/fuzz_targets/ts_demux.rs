//! The MPEG-TS demuxer on arbitrary bytes, fed in chunks whose size the first input byte picks
//! (so packet boundaries fall anywhere). Besides not panicking, what comes out must keep the
//! demuxer's contract: every access unit is non-empty, no larger than the PES cap, reports a
//! DTS only when it differs from the PTS, and belongs to a track of the last track list.
#![no_main]

use libfuzzer_sys::fuzz_target;
use livegate_media::ts::demux::{DemuxEvent, Demuxer, MAX_TRACKS, MAX_VIDEO_PES_BYTES};
use livegate_media::Track;

fuzz_target!(|data: &[u8]| {
    let chunk = data.first().map_or(1, |&b| usize::from(b) * 7 + 1);
    let mut demuxer = Demuxer::new();
    let mut events = Vec::new();
    for piece in data.chunks(chunk) {
        demuxer.push(piece, &mut events);
    }
    demuxer.finish(&mut events);
    let mut tracks: Vec<Track> = Vec::new();
    for event in events {
        match event {
            DemuxEvent::Tracks(list) => {
                assert!(list.len() <= MAX_TRACKS);
                tracks = list;
            }
            DemuxEvent::AccessUnit(au) => {
                assert!(!au.data.is_empty());
                assert!(au.data.len() <= MAX_VIDEO_PES_BYTES);
                assert_ne!(au.dts, Some(au.pts));
                assert!(tracks
                    .iter()
                    .any(|t| t.pid == au.pid && t.codec == au.codec));
            }
        }
    }
    assert_eq!(demuxer.tracks(), &tracks[..]);
});
