//! State models: being built.
