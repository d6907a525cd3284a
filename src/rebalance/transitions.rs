//! Transitions: the next hop from each replica's current state toward its best possible state.
