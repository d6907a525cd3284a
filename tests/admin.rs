//! The admin API (`strand::admin::Admin`) against an in-process single-replica store.

#[path = "admin/support.rs"]
mod support;

#[path = "admin/cluster.rs"]
mod cluster;
#[path = "admin/config.rs"]
mod config;
#[path = "admin/instance.rs"]
mod instance;
#[path = "admin/reset.rs"]
mod reset;
#[path = "admin/resource.rs"]
mod resource;
