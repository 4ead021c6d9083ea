//! The server, when the tool starts it itself (`run --spawn-server`, `soak`): the
//! configuration it writes (FIX sessions for its FIX clients, rate limits raised), the
//! process (the `bourse` binary, or this tool's own `serve`, the same server code
//! linked in), the endpoints and admin key read from its standard output, and
//! SIGKILL/SIGTERM.

use std::fmt::Write as _;
use std::io::{BufRead as _, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::limits::{SERVER_START_TIMEOUT, SERVER_STOP_TIMEOUT};

/// The FIX password the generated configuration gives every load session.
pub(crate) const FIX_PASSWORD: &str = "bourse-load";
/// How far ahead of the server's clock signatures may be: also how long after a
/// (re)start requests are refused. Small, so that clients come back quickly.
pub(crate) const SIGNATURE_FUTURE_MS: u64 = 100;

/// The FIX `CompID` of load session `index`.
pub(crate) fn fix_comp_id(index: usize) -> String {
    format!("LOAD{index}")
}

/// What goes into a generated configuration.
#[derive(Clone, Debug)]
pub(crate) struct ConfigOptions {
    pub(crate) fix_sessions: usize,
    pub(crate) durability: String,
    /// `fused` or `threads` (`[server] pipeline`).
    pub(crate) pipeline: String,
    /// actix-web workers (0: the server's default, one per core).
    pub(crate) workers: usize,
}

/// A server configuration: `[server]` with the rate limits raised, `[fix]` with one
/// session per FIX client (session `i` trades for account `i`), and the embedded
/// default's engine (assets and markets).
pub(crate) fn config_text(options: &ConfigOptions) -> String {
    let mut text = String::from("# Written by bourse-load: the embedded default engine, rate limits raised, one FIX\n");
    text.push_str("# session per load FIX client (session i trades for account i).\n\n[server]\n");
    let _ = writeln!(text, "durability = \"{}\"", options.durability);
    let _ = writeln!(text, "pipeline = \"{}\"", options.pipeline);
    text.push_str("rate_per_second = 10000000\nrate_burst = 20000000\n");
    let _ = writeln!(text, "signature_future_ms = {SIGNATURE_FUTURE_MS}");
    if options.workers > 0 {
        let _ = writeln!(text, "workers = {}", options.workers);
    }
    text.push_str("\n[fix]\nlisten = \"127.0.0.1:9878\"\n");
    for index in 0..options.fix_sessions {
        let _ = write!(
            text,
            "\n[[fix.sessions]]\nsender_comp_id = \"BOURSE\"\ntarget_comp_id = \"{}\"\nusername = \"{}\"\n\
             password = \"{FIX_PASSWORD}\"\nreset_on_logon = true\nheartbeat_secs = 30\naccounts = [{index}]\n",
            fix_comp_id(index),
            fix_comp_id(index).to_lowercase(),
        );
    }
    let default = bourse_gateway::config::DEFAULT_CONFIG;
    let engine = default.find("[[engine.assets]]").map_or("", |at| &default[at..]);
    let _ = write!(text, "\n{engine}");
    text
}

/// How to start the server.
#[derive(Clone, Debug)]
pub(crate) enum ServerBinary {
    /// A `bourse` executable: `bourse serve …`.
    Bourse(PathBuf),
    /// This tool's own executable: `bourse-load serve …` (the same server code).
    Embedded(PathBuf),
}

impl ServerBinary {
    /// `explicit`, else `bourse` beside this executable (`target/<profile>/bourse`),
    /// else this executable's embedded server.
    pub(crate) fn locate(explicit: Option<&Path>) -> anyhow::Result<ServerBinary> {
        if let Some(path) = explicit {
            if !path.exists() {
                bail!("--server-bin {}: no such file", path.display());
            }
            return Ok(ServerBinary::Bourse(path.to_owned()));
        }
        let me = std::env::current_exe().context("finding this executable")?;
        let mut dir = me.parent().map(Path::to_path_buf).unwrap_or_default();
        // Tests run from target/<profile>/deps.
        if dir.ends_with("deps") {
            dir.pop();
        }
        let sibling = dir.join("bourse");
        if sibling.exists() {
            return Ok(ServerBinary::Bourse(sibling));
        }
        Ok(ServerBinary::Embedded(me))
    }

    pub(crate) fn describe(&self) -> String {
        match self {
            ServerBinary::Bourse(path) => format!("{} serve", path.display()),
            ServerBinary::Embedded(path) => format!("{} serve (the server linked into bourse-load)", path.display()),
        }
    }
}

/// A running server started by the tool.
#[derive(Debug)]
pub(crate) struct ServerProcess {
    child: Option<Child>,
    pub(crate) http: SocketAddr,
    pub(crate) fix: Option<SocketAddr>,
    /// The admin key, printed on the first start of a data directory only.
    pub(crate) admin_token: Option<String>,
    pub(crate) startup: Vec<String>,
    lines: mpsc::Receiver<String>,
    pub(crate) started: Instant,
    /// From spawning to `ready`.
    pub(crate) ready_after: Duration,
}

impl ServerProcess {
    pub(crate) fn start(binary: &ServerBinary, config: &Path, data_dir: &Path) -> anyhow::Result<ServerProcess> {
        let mut command = match binary {
            ServerBinary::Bourse(path) | ServerBinary::Embedded(path) => Command::new(path),
        };
        command.arg("serve").arg("--config").arg(config).arg("--data-dir").arg(data_dir);
        command.args(["--http", "127.0.0.1:0", "--fix", "127.0.0.1:0"]);
        command.env("RUST_LOG", "warn").stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::inherit());
        let started = Instant::now();
        let mut child = command.spawn().with_context(|| format!("starting {}", binary.describe()))?;
        let stdout = child.stdout.take().context("the server's stdout")?;
        let (sender, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        let mut server = ServerProcess {
            child: Some(child),
            http: SocketAddr::from(([127, 0, 0, 1], 0)),
            fix: None,
            admin_token: None,
            startup: Vec::new(),
            lines,
            started,
            ready_after: Duration::ZERO,
        };
        server.wait_ready()?;
        Ok(server)
    }

    fn wait_ready(&mut self) -> anyhow::Result<()> {
        let deadline = self.started + SERVER_START_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = match self.lines.recv_timeout(left) {
                Ok(line) => line,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    bail!(
                        "the server did not print `ready` within {SERVER_START_TIMEOUT:?}; it printed {:?}",
                        self.startup
                    )
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let status = self.child.as_mut().map(Child::wait).transpose()?;
                    bail!(
                        "the server exited before `ready` ({status:?}; its errors are above); it printed {:?}",
                        self.startup
                    )
                }
            };
            if let Some(token) = line.trim().strip_prefix("export BOURSE_KEY=") {
                self.admin_token = Some(token.to_owned());
            } else {
                self.startup.push(line.clone());
            }
            if let Some(rest) = line.strip_prefix("HTTP API:") {
                let url = rest.split_whitespace().next().unwrap_or_default();
                let address = url.trim_start_matches("http://").trim_end_matches("/v1/rpc");
                self.http = address.parse().with_context(|| format!("the HTTP address in {line:?}"))?;
            }
            if let Some(rest) = line.strip_prefix("FIX 4.4:") {
                self.fix = rest.split_whitespace().next().and_then(|address| address.parse().ok());
            }
            if line == "ready" {
                self.ready_after = self.started.elapsed();
                // Requests stamped before the start plus the future skew are refused.
                std::thread::sleep(Duration::from_millis(SIGNATURE_FUTURE_MS + 20));
                return Ok(());
            }
        }
    }

    /// SIGKILL: the process dies at once, with no shutdown of any kind.
    pub(crate) fn kill(&mut self) -> anyhow::Result<()> {
        if let Some(mut child) = self.child.take() {
            child.kill().context("SIGKILL to the server")?;
            child.wait().context("waiting for the killed server")?;
        }
        Ok(())
    }

    /// SIGTERM, and a bounded wait for the orderly exit (then SIGKILL).
    pub(crate) fn terminate(&mut self) -> anyhow::Result<ExitStatus> {
        let Some(mut child) = self.child.take() else { bail!("the server is not running") };
        let status =
            Command::new("kill").args(["-TERM", &child.id().to_string()]).status().context("running kill -TERM")?;
        if !status.success() {
            bail!("kill -TERM {} failed", child.id());
        }
        let deadline = Instant::now() + SERVER_STOP_TIMEOUT;
        loop {
            if let Some(status) = child.try_wait()? {
                return Ok(status);
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                bail!("the server did not exit within {SERVER_STOP_TIMEOUT:?} of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
            let deadline = Instant::now() + SERVER_STOP_TIMEOUT;
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_generated_configuration_loads_with_its_fix_sessions_and_limits() {
        let text = config_text(&ConfigOptions {
            fix_sessions: 3,
            durability: "sync".into(),
            pipeline: "threads".into(),
            workers: 1,
        });
        let config = bourse_gateway::config::ServerConfig::parse(&text, "generated").unwrap();
        assert_eq!(config.fix.sessions.len(), 3);
        assert_eq!(config.fix.sessions[2].accounts, vec![2]);
        assert_eq!(config.fix.sessions[2].target_comp_id, "LOAD2");
        assert_eq!(config.server.rate_per_second, 10_000_000);
        assert_eq!(config.server.workers, 1);
        assert_eq!(config.server.durability, bourse_gateway::config::DurabilityMode::Sync);
        assert_eq!(config.server.pipeline, bourse_snapshots::runtime::Pipeline::Threads);
    }
}
