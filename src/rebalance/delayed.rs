//! Delayed rebalance: offline instances keep their places until the delay expires, while MIN_ACTIVE_REPLICAS holds.
