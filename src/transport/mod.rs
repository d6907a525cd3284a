//! Transport: being built.
