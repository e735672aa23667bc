//! The closable many-reader ring buffer (being written).
