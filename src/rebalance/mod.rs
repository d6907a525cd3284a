//! The rebalance engine: being built.
