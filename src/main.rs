//! The `drover` binary: parses arguments and calls the library. See `cli.rs` for the commands.

mod cli;
mod commands;

use clap::Parser;

fn main() {
    let cli = cli::Cli::parse();
    let code = commands::dispatch(cli);
    std::process::exit(code);
}
