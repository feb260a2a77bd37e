//! A run's own network: one namespace per node, each joined to a bridge of the run's own by
//! a veth pair, addresses from a private /24 on that bridge only. The clients stay in the
//! root namespace and reach the nodes through the bridge's address. Faults are iptables
//! rules inside a node's namespace, so flushing that namespace's tables heals it and
//! nothing outside the run is touched.
//!
//! Names carry the prefix [`PREFIX`] and a tag unique to the run, so that two runs share
//! the machine and `tumult clean` finds exactly what tumult made.

use std::net::Ipv4Addr;
use std::process::{Command, Stdio};

use super::RealError;

/// The prefix of every interface and namespace tumult makes.
pub const PREFIX: &str = "tm";

/// The second octet of every subnet: runs take `10.213.N.0/24`, one N each.
const SUBNET_OCTET: u8 = 213;

/// Where each live run notes its owner: `<dir>/<tag>` holds the pid of the tumult process
/// that made it, so that `tumult clean` removes only what a dead process left.
pub const OWNERS_DIR: &str = "/run/tumult";

fn owner_file(tag: &str) -> std::path::PathBuf {
    std::path::Path::new(OWNERS_DIR).join(tag)
}

/// Whether the run tagged `tag` has an owner that is still alive.
fn owner_alive(tag: &str) -> bool {
    std::fs::read_to_string(owner_file(tag))
        .ok()
        .and_then(|pid| pid.trim().parse::<u32>().ok())
        .is_some_and(|pid| std::path::Path::new(&format!("/proc/{pid}")).exists())
}

/// Runs `program args`, refusing a non-zero exit with its stderr.
pub(crate) fn sh(program: &str, args: &[&str]) -> Result<String, RealError> {
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| RealError::Command {
            command: format!("{program} {}", args.join(" ")),
            message: e.to_string(),
        })?;
    if !out.status.success() {
        return Err(RealError::Command {
            command: format!("{program} {}", args.join(" ")),
            message: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A run's namespaces and bridge; removed when dropped.
#[derive(Debug)]
pub struct RunNet {
    tag: String,
    subnet: u8,
    nodes: usize,
    /// Whether anything is left to remove.
    live: bool,
}

impl RunNet {
    /// Makes a bridge and `nodes` namespaces for a run tagged `tag` (six lowercase hex
    /// digits), on the first /24 of 10.213.0.0/16 no other run of tumult uses.
    pub fn create(tag: &str, nodes: usize) -> Result<Self, RealError> {
        if tag.len() != 6
            || !tag
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        {
            return Err(RealError::Setup(format!(
                "run tag '{tag}' is not six lowercase hex digits"
            )));
        }
        // Runs side by side (a sweep's jobs) must not pick the same free subnet: the choice
        // and the bridge's address are made under a lock.
        std::fs::create_dir_all(OWNERS_DIR)
            .map_err(|e| RealError::Setup(format!("cannot create {OWNERS_DIR}: {e}")))?;
        let lock_path = std::path::Path::new(OWNERS_DIR).join(".lock");
        let cannot =
            |e: &dyn std::fmt::Display| RealError::Setup(format!("cannot lock {}: {e}", lock_path.display()));
        let file = std::fs::File::create(&lock_path).map_err(|e| cannot(&e))?;
        let lock = nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusive)
            .map_err(|(_, e)| cannot(&e))?;
        // Two runs that drew the same tag would share, and then remove, each other's bridge
        // and namespaces: a tag is taken only if no owner file names it.
        if owner_file(tag).exists() {
            return Err(RealError::TagInUse(tag.to_string()));
        }
        let used = sh("ip", &["-4", "-o", "addr", "show"])?;
        let subnet = (1..=250u8)
            .find(|n| !used.contains(&format!("10.{SUBNET_OCTET}.{n}.")))
            .ok_or_else(|| RealError::Setup(format!("every subnet of 10.{SUBNET_OCTET}.0.0/16 is in use")))?;
        std::fs::write(owner_file(tag), std::process::id().to_string())
            .map_err(|e| RealError::Setup(format!("cannot note the run's owner in {OWNERS_DIR}: {e}")))?;
        // Whatever fails half-way, what was made is removed by the drop.
        let mut net = Self {
            tag: tag.to_string(),
            subnet,
            nodes,
            live: true,
        };
        let bridge = net.bridge();
        let gateway = format!("{}/24", net.gateway());
        sh("ip", &["link", "add", &bridge, "type", "bridge"])?;
        sh("ip", &["addr", "add", &gateway, "dev", &bridge])?;
        sh("ip", &["link", "set", &bridge, "up"])?;
        drop(lock);
        for node in 1..=nodes {
            net.add_node(node)?;
        }
        Ok(net)
    }

    fn add_node(&mut self, node: usize) -> Result<(), RealError> {
        let ns = self.namespace(node);
        let veth = self.veth(node);
        let address = format!("{}/24", self.address(node));
        let gateway = self.gateway().to_string();
        sh("ip", &["netns", "add", &ns])?;
        sh(
            "ip",
            &[
                "link", "add", &veth, "type", "veth", "peer", "name", "eth0", "netns", &ns,
            ],
        )?;
        sh("ip", &["link", "set", &veth, "master", &self.bridge(), "up"])?;
        sh("ip", &["-n", &ns, "addr", "add", &address, "dev", "eth0"])?;
        sh("ip", &["-n", &ns, "link", "set", "eth0", "up"])?;
        sh("ip", &["-n", &ns, "link", "set", "lo", "up"])?;
        sh("ip", &["-n", &ns, "route", "add", "default", "via", &gateway])?;
        // Every node's name resolves in every node's namespace (`ip netns exec` mounts
        // /etc/netns/<ns>/hosts over /etc/hosts): products whose nodes know each other by
        // host name (Erlang's distribution, RabbitMQ's) need it.
        let dir = netns_etc(&ns);
        let mut hosts = String::from("127.0.0.1 localhost\n");
        for other in 1..=self.nodes {
            hosts.push_str(&format!("{} n{other}\n", self.address(other)));
        }
        std::fs::create_dir_all(&dir)
            .and_then(|()| std::fs::write(dir.join("hosts"), hosts))
            .map_err(|e| RealError::Setup(format!("cannot write {}/hosts: {e}", dir.display())))?;
        Ok(())
    }

    /// The processes left in node `node`'s namespace: what a node's own process started
    /// and left behind when it was stopped (a daemon such as Erlang's epmd).
    pub fn leftover_pids(&self, node: usize) -> Vec<u32> {
        sh("ip", &["netns", "pids", &self.namespace(node)])
            .map(|out| out.split_whitespace().filter_map(|p| p.parse().ok()).collect())
            .unwrap_or_default()
    }

    /// The root namespace's end of node `node`'s veth pair.
    fn veth(&self, node: usize) -> String {
        format!("{PREFIX}{}v{node}", self.tag)
    }

    /// The bridge's name.
    pub fn bridge(&self) -> String {
        format!("{PREFIX}{}br", self.tag)
    }

    /// Node `node`'s namespace (nodes count from 1).
    pub fn namespace(&self, node: usize) -> String {
        format!("{PREFIX}{}-n{node}", self.tag)
    }

    /// The bridge's address: where the clients' connections come from.
    pub fn gateway(&self) -> Ipv4Addr {
        Ipv4Addr::new(10, SUBNET_OCTET, self.subnet, 1)
    }

    /// Node `node`'s address.
    pub fn address(&self, node: usize) -> Ipv4Addr {
        Ipv4Addr::new(10, SUBNET_OCTET, self.subnet, 10 + node as u8)
    }

    /// How many nodes the network has.
    pub fn nodes(&self) -> usize {
        self.nodes
    }

    /// Drops every packet `from` sends to `to` (node numbers; 0 is the clients), by a
    /// rule in the receiving side's namespace. Traffic the other way is left alone: call
    /// twice for a full cut.
    pub fn cut(&self, from: usize, to: usize) -> Result<(), RealError> {
        if to == 0 {
            // The clients' side is the root namespace, which is not ours to filter: cut
            // what the node sends to them at the node's side instead.
            let dst = self.gateway().to_string();
            return self.iptables(from, &["-A", "OUTPUT", "-d", &dst, "-j", "DROP"]);
        }
        let src = if from == 0 {
            self.gateway().to_string()
        } else {
            self.address(from).to_string()
        };
        self.iptables(to, &["-A", "INPUT", "-s", &src, "-j", "DROP"])
    }

    /// Drops each packet arriving at `node` with probability `loss`.
    pub fn lose(&self, node: usize, loss: f64) -> Result<(), RealError> {
        let p = format!("{:.4}", loss.clamp(0.0, 1.0));
        self.iptables(
            node,
            &[
                "-A",
                "INPUT",
                "-m",
                "statistic",
                "--mode",
                "random",
                "--probability",
                &p,
                "-j",
                "DROP",
            ],
        )
    }

    /// Removes every rule in every node's namespace: all cuts and losses healed.
    pub fn heal(&self) -> Result<(), RealError> {
        for node in 1..=self.nodes {
            self.iptables(node, &["-F"])?;
        }
        Ok(())
    }

    fn iptables(&self, node: usize, rule: &[&str]) -> Result<(), RealError> {
        let ns = self.namespace(node);
        let mut args = vec!["netns", "exec", ns.as_str(), "iptables", "-w"];
        args.extend_from_slice(rule);
        sh("ip", &args).map(drop)
    }

    /// Removes the namespaces and the bridge now (the drop does it otherwise). Every
    /// process still in a namespace must have been stopped first.
    pub fn remove(&mut self) -> Result<(), RealError> {
        if !self.live {
            return Ok(());
        }
        self.live = false;
        let mut first_error = None;
        for node in 1..=self.nodes {
            // The pair first, from our side: left to the namespace's deletion, the kernel
            // removes it a moment later, and a listing just after would still show it.
            let _ = sh("ip", &["link", "del", &self.veth(node)]);
            // The nodes were stopped: whatever runs in their namespaces now was started by
            // them (a daemon that left their process group), and goes with the namespace.
            let left = self.leftover_pids(node);
            for pid in &left {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(*pid as i32),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
            await_gone(&left);
            let ns = self.namespace(node);
            if let Err(e) = sh("ip", &["netns", "del", &ns]) {
                first_error.get_or_insert(e);
            }
            let _ = std::fs::remove_dir_all(netns_etc(&ns));
        }
        if let Err(e) = sh("ip", &["link", "del", &self.bridge()]) {
            first_error.get_or_insert(e);
        }
        let _ = std::fs::remove_file(owner_file(&self.tag));
        first_error.map_or(Ok(()), Err)
    }
}

impl Drop for RunNet {
    fn drop(&mut self) {
        if let Err(e) = self.remove() {
            tracing::warn!(%e, "removing the run's network");
        }
    }
}

/// Waits (within a bound of seconds) until every process of `pids` has exited: a signal
/// is delivered asynchronously, and whoever looks just after the run must not find them.
/// A zombie counts as gone: it holds nothing, and its parent (not us) reaps it.
fn await_gone(pids: &[u32]) {
    // Counted naps rather than a clock: near enough for a bound of seconds.
    for _ in 0..150 {
        if !pids.iter().any(|pid| super::node::alive(*pid)) {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// The directory whose files `ip netns exec` mounts over /etc for namespace `ns`.
fn netns_etc(ns: &str) -> std::path::PathBuf {
    std::path::Path::new("/etc/netns").join(ns)
}

/// The run tag in one of tumult's names (see [`is_ours`]).
fn tag_of(name: &str) -> &str {
    name.get(PREFIX.len()..PREFIX.len() + 6).unwrap_or("")
}

/// What [`leftovers`] found of runs that did not clean up (killed with -9).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Leftovers {
    /// Namespaces named like tumult's.
    pub namespaces: Vec<String>,
    /// Bridges and veth ends named like tumult's.
    pub links: Vec<String>,
}

/// Whether `name` is one of tumult's: the prefix, six lowercase hex digits, then `br`,
/// `v<n>` or `-n<n>`.
pub fn is_ours(name: &str) -> bool {
    let Some(rest) = name.strip_prefix(PREFIX) else {
        return false;
    };
    let (tag, suffix) = rest.split_at(rest.len().min(6));
    let tagged = tag.len() == 6
        && tag
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    let numbered = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    tagged
        && (suffix == "br"
            || suffix.strip_prefix('v').is_some_and(numbered)
            || suffix.strip_prefix("-n").is_some_and(numbered))
}

/// tumult's namespaces and links on this machine whose run's owner is gone (a run in
/// progress is not a leftover).
pub fn leftovers() -> Result<Leftovers, RealError> {
    let left = |n: &str| is_ours(n) && !owner_alive(tag_of(n));
    let namespaces = sh("ip", &["netns", "list"])?
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| left(n))
        .map(str::to_string)
        .collect();
    let links = sh("ip", &["-o", "link", "show"])?
        .lines()
        .filter_map(|l| l.split(':').nth(1))
        .map(|n| n.trim().split('@').next().unwrap_or("").to_string())
        .filter(|n| left(n))
        .collect();
    Ok(Leftovers { namespaces, links })
}

/// Removes what runs killed with -9 left: the processes in tumult's namespaces (nodes
/// tumult started), the namespaces, and any of tumult's links still there. Returns what it
/// did, a line each.
pub fn clean() -> Result<Vec<String>, RealError> {
    let found = leftovers()?;
    let mut done = Vec::new();
    for ns in &found.namespaces {
        let pids = sh("ip", &["netns", "pids", ns]).unwrap_or_default();
        for pid in pids.split_whitespace().filter_map(|p| p.parse::<i32>().ok()) {
            let pid = nix::unistd::Pid::from_raw(pid);
            // A paused node must not stay stopped in a namespace that is going away.
            if nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL).is_ok() {
                done.push(format!("killed process {pid} in {ns}"));
            }
        }
        sh("ip", &["netns", "del", ns])?;
        let _ = std::fs::remove_dir_all(netns_etc(ns));
        let _ = std::fs::remove_file(owner_file(tag_of(ns)));
        done.push(format!("removed namespace {ns}"));
    }
    for link in &found.links {
        // A veth end goes with its namespace: remove only what is still there.
        // (The kernel removes a veth pair a moment after its namespace: gone is fine.)
        match sh("ip", &["link", "del", link]) {
            Ok(_) => done.push(format!("removed link {link}")),
            Err(_) if sh("ip", &["link", "show", link]).is_err() => {}
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_names_of_tumults_own_shape_are_ours() {
        for ours in ["tm0a1b2cbr", "tm0a1b2c-n3", "tm0a1b2cv12"] {
            assert!(is_ours(ours), "{ours}");
        }
        for theirs in [
            "tmbr",
            "tm0a1b2c",
            "tm0A1b2cbr",
            "tm0a1b2c-n",
            "tm0a1b2cvx",
            "eth0",
            "docker0",
            "tmxyzxyzbr",
        ] {
            assert!(!is_ours(theirs), "{theirs}");
        }
    }
}
