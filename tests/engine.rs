//! The rebalance engine end to end: the pipeline over SEMI_AUTO, CUSTOMIZED and FULL_AUTO
//! resources, seeded property tests under churn with random state models, the incremental round
//! against the full one, and `strand plan`
//! as a user runs it.

#[path = "engine/cli.rs"]
mod cli;
#[path = "engine/incremental.rs"]
mod incremental;
#[path = "engine/pipeline.rs"]
mod pipeline;
#[path = "engine/properties.rs"]
mod properties;
#[path = "engine/support.rs"]
mod support;
