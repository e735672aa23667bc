//! H.264 Annex B iteration, SPS parsing and parameter-set injection on arbitrary bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use livegate_media::h264::{nal_units, ParameterSetCache, SpsInfo};

fuzz_target!(|data: &[u8]| {
    for nal in nal_units(data) {
        let _ = SpsInfo::parse(nal);
    }
    let mut cache = ParameterSetCache::new();
    cache.observe(data);
    let _ = cache.with_parameter_sets(bytes::Bytes::copy_from_slice(data));
});
