//! The gate of the tests on real processes: they need root, iproute2, iptables and the
//! `tumult-broker` binary. Where one is missing they say SKIPPED and pass, so that `cargo
//! test` works on a machine with only the Rust toolchain; with `TUMULT_REAL_TESTS=require`
//! (as `.ci/run` sets) a missing prerequisite fails them instead.

/// Whether the prerequisites are here; panics if they are not and the run requires them.
pub fn ready() -> bool {
    ready_for(&harness::systems::TumultBroker)
}

/// Whether the prerequisites of real runs of `system` are here (its own packages too);
/// panics if they are not and the run requires them.
pub fn ready_for(system: &dyn harness::systems::System) -> bool {
    let missing = harness::real::missing_for(system);
    if missing.is_empty() {
        return true;
    }
    if std::env::var("TUMULT_REAL_TESTS").as_deref() == Ok("require") {
        panic!("real tests required, but missing: {}", missing.join("; "));
    }
    eprintln!("SKIPPED: real-process test; missing: {}", missing.join("; "));
    false
}
