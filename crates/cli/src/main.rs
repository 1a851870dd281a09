//! `toolforge-jobs`: the command-line client of the jobs API (16.x routes).
//!
//! Exit codes: 0 success; 1 user error (a 4xx reply, bad configuration or flags, a job that
//! failed under `--wait`, a declined confirmation); 2 server or connection error (5xx, TLS,
//! unreachable, unexpected reply, `--wait` timeout) and command-line usage errors.

mod args;
mod client;
mod commands;
mod config;
mod ctx;
mod error;
mod jobs;
mod load;
mod logs;
mod output;
mod wait;

use clap::Parser;

use error::{print_error, CliError};

fn main() {
    std::process::exit(run());
}

/// Runs the client with the process arguments; returns the exit code.
fn run() -> i32 {
    let cli = args::Cli::parse();
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            print_error(&CliError::Server(format!("cannot start: {e}")));
            return 2;
        }
    };
    match rt.block_on(commands::dispatch(cli)) {
        Ok(()) => 0,
        Err(e) => {
            print_error(&e);
            e.exit_code()
        }
    }
}
