//! Tests on real processes: faults observed on a real `tumult-broker` in network namespaces
//! of the test's own, `tumult test --runtime real` as a user runs it, and the real products
//! tumult tests (NATS JetStream).
//!
//! A binary of their own, apart from the simulation's tests: real runs time out on the
//! wall clock, and sharing the cores with simulations would only make them slower.

mod faults;
mod gate;
mod runs;
mod systems;
