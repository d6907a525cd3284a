//! Membership: being built.
