//! `bourse`: the server (`serve`), a signing client (`call`), and the FIX session
//! layer with a reflector application for the acceptance kit (`fix-reflector`).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser, Debug)]
#[command(name = "bourse", version, about = "Bourse: an in-memory exchange and payments core")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Recover from the data directory and serve HTTP/WebSocket and FIX until SIGINT/SIGTERM.
    Serve(bourse_gateway::server::ServeArgs),
    /// Send one API request, signed with the key in `BOURSE_KEY` (or --key-file), and print the reply.
    Call(bourse_gateway::client::CallArgs),
    /// Read a FIX Logon password from standard input (one line) and print its Argon2id
    /// hash, for a session's `password_hash` in the configuration.
    HashPassword,
    /// The FIX session layer with the reflector application (for the FIX acceptance kit).
    FixReflector {
        #[arg(long)]
        config: PathBuf,
        #[arg(long)]
        data_dir: PathBuf,
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: String,
    },
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => bourse_gateway::server::run(&args).map(|()| 0),
        Command::Call(args) => bourse_gateway::client::run(args),
        Command::HashPassword => hash_password(),
        Command::FixReflector { config, data_dir, listen } => {
            bourse_gateway::fix::reflector::run_reflector(&config, &data_dir, &listen).map(|()| 0)
        }
    };
    match result {
        Ok(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        Err(error) => {
            eprintln!("bourse: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// `bourse hash-password`: one line of standard input (without its line ending) to a
/// PHC string on standard output.
fn hash_password() -> anyhow::Result<i32> {
    let mut line = String::new();
    std::io::stdin().read_line(&mut line)?;
    let password = line.strip_suffix('\n').unwrap_or(&line);
    let password = password.strip_suffix('\r').unwrap_or(password);
    let hash = bourse_gateway::fix::password::hash(password.as_bytes()).map_err(anyhow::Error::msg)?;
    println!("{hash}");
    Ok(0)
}
