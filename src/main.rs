//! The `drover` binary: parses arguments and calls the library. See `cli.rs` for the commands.

mod cli;
mod commands;

use clap::Parser;

fn main() {
    let cli = cli::Cli::parse();
    // A load of many connections needs many descriptors: take all the hard limit allows.
    drover::resources::raise_fd_limit();
    let code = commands::dispatch(cli);
    std::process::exit(code);
}
