//! The stream registry (being written).
