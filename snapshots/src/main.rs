//! `bourse-snapshot`: the operator's CLI for a Bourse data directory (list, inspect,
//! verify, recover, replay, export). The logic lives in `cli`.

mod cli;

use std::process::ExitCode;

use clap::Parser;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    match cli::run(&cli::Cli::parse()) {
        Ok(code) => code,
        Err(error) => cli::report_error(&error),
    }
}
