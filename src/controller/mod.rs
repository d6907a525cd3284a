//! The controller: leader election with fencing epochs, the pipeline that feeds the pure
//! [`crate::rebalance`] engine, dispatch of transitions and the external view writer.
//!
//! Not built yet: it needs the property store and messaging. The decision half it drives
//! ([`crate::rebalance::compute`]) is complete and tested.
