//! FULL_AUTO placement (being built).
