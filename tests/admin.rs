//! The admin API (`strand::admin::Admin`) against an in-process single-replica store, and
//! `strand helix-admin …` / `strand admin <noun> <verb>` as a user runs them through the
//! Helix tutorial against a `strand store run` process.

#[path = "admin/support.rs"]
mod support;

#[path = "admin/cli.rs"]
mod cli;
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
