//! Throttling: state-transition throttle configs and message constraints.
