//! MPEG-TS demuxer (being written).
