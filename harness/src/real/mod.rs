//! The real runtime's pieces: a run's own network of namespaces ([`net`]) and its nodes as
//! real processes ([`node`]), with faults made by the operating system: signals for kill,
//! pause and restart, iptables rules inside a node's namespace for partitions and loss.
//! Everything is named with tumult's prefix and removed on drop; `tumult clean` removes
//! what a run killed with -9 left; `tumult doctor` says what is missing.

pub mod actuator;
pub mod net;
pub mod node;

use std::path::PathBuf;

use crate::systems::System;

/// Why the real runtime cannot do something.
#[derive(Debug, thiserror::Error)]
pub enum RealError {
    /// A command failed.
    #[error("{command}: {message}")]
    Command {
        /// The command line.
        command: String,
        /// Its error output.
        message: String,
    },
    /// Something the run needs could not be made.
    #[error("{0}")]
    Setup(String),
    /// Another run (live, or killed and not yet cleaned) owns this tag's names.
    #[error("run tag {0} is in use")]
    TagInUse(String),
}

/// One prerequisite of real runs and whether this machine has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// What is needed.
    pub what: String,
    /// Whether it is there.
    pub ok: bool,
    /// How to get it when it is not.
    pub fix: String,
    /// Whether real runs go without it (refusing only the faults that need it).
    pub optional: bool,
}

/// Finds `program` on the PATH (and in the sbin directories, which a user's PATH may lack).
pub fn find_program(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"].map(PathBuf::from))
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
}

/// The `tumult-broker` binary: beside the running executable (`target/<profile>/`), or
/// one directory up from a test executable in `deps/`.
pub fn broker_binary() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let dir = exe.parent()?;
    [dir.join("tumult-broker"), dir.parent()?.join("tumult-broker")]
        .into_iter()
        .find(|p| p.is_file())
}

/// What every real run needs whatever the system: root, iproute2 and iptables. Cheap: no
/// namespace is made to find out (see [`doctor`] for the optional checks that make one).
pub fn required() -> Vec<Check> {
    let mut checks = vec![Check {
        what: "root (network namespaces, iptables and signals to node processes need it)".into(),
        ok: nix::unistd::geteuid().is_root(),
        fix: "run as root (sudo)".into(),
        optional: false,
    }];
    for (program, package) in [("ip", "iproute2"), ("iptables", "iptables")] {
        checks.push(Check {
            what: format!("{program} ({package})"),
            ok: find_program(program).is_some(),
            fix: format!("apt-get install -y {package}"),
            optional: false,
        });
    }
    checks
}

/// What real runs of `system` need that this machine lacks, each as `what (fix)`; empty
/// when they can go.
pub fn missing_for(system: &dyn System) -> Vec<String> {
    required()
        .into_iter()
        .chain(system.prerequisites())
        .filter(|c| !c.ok && !c.optional)
        .map(|c| format!("{} ({})", c.what, c.fix))
        .collect()
}

/// [`missing_for`] tumult's own broker, the system of the real tests and the zoo.
pub fn missing() -> Vec<String> {
    missing_for(&crate::systems::TumultBroker)
}

/// `Err` naming what real runs of `system` lack here, for refusing one before it starts.
pub fn require(system: &dyn System) -> Result<(), String> {
    let missing = missing_for(system);
    if missing.is_empty() {
        return Ok(());
    }
    Err(format!(
        "--runtime real needs: {} (tumult doctor says more)",
        missing.join("; ")
    ))
}

/// Every prerequisite of real runs on this machine: the machine's, each system's
/// (named), and the optional ones.
pub fn doctor() -> Vec<Check> {
    let mut checks = required();
    let root = checks[0].ok;
    for system in crate::systems::registry() {
        checks.extend(system.prerequisites().into_iter().map(|c| Check {
            what: format!("{} (system {})", c.what, system.name()),
            ..c
        }));
    }
    checks.push(Check {
        what: "tc netem (latency faults; optional)".into(),
        ok: root && netem_works(),
        fix: "this kernel cannot add a netem qdisc (no sch_netem, and no loadable modules): real packet faults are loss alone (by iptables), recorded with latency_ms 0".into(),
        optional: true,
    });
    checks
}

/// Whether a netem qdisc can be added here: tried on the loopback of a namespace made for
/// the purpose and removed at once.
fn netem_works() -> bool {
    let ns = format!("{}{:06x}-n0", net::PREFIX, std::process::id() & 0xff_ffff);
    if net::sh("ip", &["netns", "add", &ns]).is_err() {
        return false;
    }
    let works = net::sh(
        "ip",
        &[
            "netns", "exec", &ns, "tc", "qdisc", "add", "dev", "lo", "root", "netem", "delay", "1ms",
        ],
    )
    .is_ok();
    let _ = net::sh("ip", &["netns", "del", &ns]);
    works
}
