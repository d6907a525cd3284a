//! The pipeline: one cluster snapshot in, the whole decision out.
