//! A node as a real process in its namespace: started in a process group of its own, so
//! that a pause or kill reaches every process it forks; output appended to its log file
//! across restarts; stopped on drop.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;

use super::RealError;
use crate::systems::Launch;

/// The wait between looks at a process that should end: counted naps rather than a clock,
/// near enough for bounds of seconds.
const NAP: Duration = Duration::from_millis(20);

/// How to start one node: the program and its arguments, run inside `namespace`.
#[derive(Debug, Clone)]
pub struct NodeCommand {
    /// The node's network namespace.
    pub namespace: String,
    /// The program.
    pub program: PathBuf,
    /// Its arguments.
    pub args: Vec<String>,
    /// Variables added to its environment.
    pub env: Vec<(String, String)>,
    /// Where its standard output and error go (appended).
    pub log: PathBuf,
}

/// A running (or stopped) node process.
#[derive(Debug)]
pub struct NodeProcess {
    command: NodeCommand,
    child: Option<Child>,
    paused: bool,
}

impl NodeProcess {
    /// Starts `command`.
    pub fn start(command: NodeCommand) -> Result<Self, RealError> {
        let mut node = Self {
            command,
            child: None,
            paused: false,
        };
        node.restart()?;
        Ok(node)
    }

    /// Starts the node again after a kill or stop (a no-op while it runs).
    pub fn restart(&mut self) -> Result<(), RealError> {
        if self.running() {
            return Ok(());
        }
        let log = open_log(&self.command.log)?;
        let err = log.try_clone().map_err(|e| log_error(&self.command.log, e))?;
        // `ip netns exec` execs the program in place: the child's pid is the node's.
        let child = Command::new("ip")
            .args(["netns", "exec", &self.command.namespace])
            .arg(&self.command.program)
            .args(&self.command.args)
            .envs(self.command.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            .process_group(0)
            .spawn()
            .map_err(|e| RealError::Command {
                command: format!(
                    "ip netns exec {} {}",
                    self.command.namespace,
                    self.command.program.display()
                ),
                message: e.to_string(),
            })?;
        self.child = Some(child);
        self.paused = false;
        Ok(())
    }

    /// The node's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Whether the process is alive (paused counts as alive).
    pub fn running(&mut self) -> bool {
        match &mut self.child {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }

    fn signal(&self, signal: Signal) -> Result<(), RealError> {
        let Some(pid) = self.pid() else { return Ok(()) };
        killpg(Pid::from_raw(pid as i32), signal).map_err(|e| RealError::Command {
            command: format!("kill -{signal} -{pid}"),
            message: e.to_string(),
        })
    }

    /// SIGKILL to the node's group, and reaps it.
    pub fn kill(&mut self) -> Result<(), RealError> {
        if !self.running() {
            self.child = None;
            return Ok(());
        }
        self.signal(Signal::SIGKILL)?;
        if let Some(mut child) = self.child.take() {
            let _ = child.wait();
        }
        self.paused = false;
        Ok(())
    }

    /// SIGTERM, then SIGKILL if the node has not exited within `bound`.
    pub fn stop(&mut self, bound: Duration) -> Result<(), RealError> {
        if !self.running() {
            self.child = None;
            return Ok(());
        }
        // A paused process cannot act on SIGTERM.
        self.signal(Signal::SIGCONT)?;
        self.signal(Signal::SIGTERM)?;
        for _ in 0..(bound.as_millis() / NAP.as_millis()).max(1) {
            if !self.running() {
                self.child = None;
                return Ok(());
            }
            std::thread::sleep(NAP);
        }
        tracing::warn!(namespace = %self.command.namespace, "the node ignored SIGTERM; killing it");
        self.kill()
    }

    /// SIGSTOP to the node's group: it holds its state and answers nothing.
    pub fn pause(&mut self) -> Result<(), RealError> {
        self.signal(Signal::SIGSTOP)?;
        self.paused = self.pid().is_some();
        Ok(())
    }

    /// SIGCONT after [`Self::pause`].
    pub fn resume(&mut self) -> Result<(), RealError> {
        self.signal(Signal::SIGCONT)?;
        self.paused = false;
        Ok(())
    }

    /// Whether the node is paused.
    pub fn paused(&self) -> bool {
        self.paused
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        let _ = self.kill();
    }
}

fn open_log(path: &Path) -> Result<std::fs::File, RealError> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| log_error(path, e))
}

fn log_error(path: &Path, e: std::io::Error) -> RealError {
    RealError::Setup(format!("cannot open the node's log {}: {e}", path.display()))
}

/// Whether process `pid` runs (a zombie, exited and waiting to be reaped, does not).
pub fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| stat.rsplit_once(") ").map(|(_, rest)| !rest.starts_with('Z')))
        .unwrap_or(false)
}

/// Runs `command` to its end inside `namespace`, in a process group of its own that is
/// killed whole if it has not finished within `timeout`; its output (kept in `output`),
/// or why it failed.
pub fn run_in(namespace: &str, command: &Launch, output: &Path, timeout: Duration) -> Result<String, String> {
    let shown = format!("{} {}", command.program.display(), command.args.join(" "));
    let out = std::fs::File::create(output).map_err(|e| format!("{}: {e}", output.display()))?;
    let err = out
        .try_clone()
        .map_err(|e| format!("{}: {e}", output.display()))?;
    let mut child = Command::new("ip")
        .args(["netns", "exec", namespace])
        .arg(&command.program)
        .args(&command.args)
        .envs(command.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .process_group(0)
        .spawn()
        .map_err(|e| format!("{shown}: {e}"))?;
    let mut status = None;
    for _ in 0..(timeout.as_millis() / NAP.as_millis()).max(1) {
        if let Some(done) = child.try_wait().map_err(|e| format!("{shown}: {e}"))? {
            status = Some(done);
            break;
        }
        std::thread::sleep(NAP);
    }
    let printed = std::fs::read_to_string(output).unwrap_or_default();
    match status {
        Some(done) if done.success() => Ok(printed),
        Some(done) => Err(format!("{shown}: {done}: {}", printed.trim())),
        None => {
            let _ = killpg(Pid::from_raw(child.id() as i32), Signal::SIGKILL);
            let _ = child.wait();
            Err(format!(
                "{shown}: no answer within {} s: {}",
                timeout.as_secs(),
                printed.trim()
            ))
        }
    }
}
