//! MPEG-TS muxer (being written).
