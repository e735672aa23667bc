//! H.264 bitstream helpers on `h264-reader` (being written).
