//! The pipeline's PES-PTS scanner (`VideoPtsScanner`, on every chunk a worker reads and
//! writes) on arbitrary bytes: 33-bit PTS only, and the same PTS in the same order however
//! the bytes are chunked.
#![no_main]

use libfuzzer_sys::fuzz_target;
use livegate_pipeline::supervise::latency::VideoPtsScanner;

fuzz_target!(|data: &[u8]| {
    let Some((&chunk_byte, stream)) = data.split_first() else {
        return;
    };
    let mut whole = Vec::new();
    VideoPtsScanner::default().scan(stream, |pts| whole.push(pts));
    let mut chunked = Vec::new();
    let mut scanner = VideoPtsScanner::default();
    for piece in stream.chunks(usize::from(chunk_byte) + 1) {
        scanner.scan(piece, |pts| chunked.push(pts));
    }
    assert!(whole.iter().all(|&pts| pts < 1 << 33));
    assert_eq!(whole, chunked);
});
