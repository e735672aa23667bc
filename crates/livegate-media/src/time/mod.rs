//! Timestamp unwrapping and RTP mapping (being written).
