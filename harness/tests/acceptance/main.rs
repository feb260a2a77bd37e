//! The harness's acceptance tests on the simulation: every mode under its faults, the CLI
//! as a user meets it, pages, shrinking and the bug zoo.
//!
//! One test binary, not one per file: its tests share the machine's cores to the end of
//! the run (separate binaries run one after another, each idling a core at its tail) and
//! the workspace links one binary instead of a dozen.

mod common;

mod classic_queue;
mod cli;
mod faults;
mod kafka_log;
mod matrix;
mod mirrored_queue;
mod pages;
mod quorum_log;
mod quorum_queue;
mod shrink;
mod single_queue;
mod systems;
mod zoo;
