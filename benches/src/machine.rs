//! The machine a figure was measured on (STYLE §15: "the machine named beside every
//! figure"): CPU model from `/proc/cpuinfo`, core counts, OS and architecture.

use std::fmt;

/// A one-line description of the machine running the benchmark.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Machine {
    cpu_model: String,
    /// Logical CPUs this process may run on.
    cpus_logical: usize,
    /// Physical cores per socket as `/proc/cpuinfo` reports them, when it does.
    cores_physical: Option<usize>,
}

impl Machine {
    /// Reads the description of this machine. Never fails: what cannot be read is
    /// reported as unknown.
    pub(crate) fn detect() -> Self {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let field = |name: &str| {
            cpuinfo.lines().find_map(|line| {
                let (key, value) = line.split_once(':')?;
                (key.trim() == name).then(|| value.trim().to_owned())
            })
        };
        Self {
            cpu_model: field("model name").unwrap_or_else(|| "unknown CPU".to_owned()),
            cpus_logical: std::thread::available_parallelism().map_or(1, std::num::NonZero::get),
            cores_physical: field("cpu cores").and_then(|cores| cores.parse().ok()),
        }
    }
}

impl fmt::Display for Machine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}, {} logical CPUs", self.cpu_model, self.cpus_logical)?;
        if let Some(cores) = self.cores_physical {
            write!(f, " ({cores} cores per socket)")?;
        }
        write!(f, ", {}/{}", std::env::consts::OS, std::env::consts::ARCH)
    }
}
