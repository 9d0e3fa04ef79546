//! The `drover` binary: parses arguments and calls the library. See `cli/` for the commands.

mod cli;

use clap::Parser;

fn main() {
    quiet_on_broken_pipe();
    let cli = cli::args::Cli::parse();
    // A load of many connections needs many descriptors: take all the hard limit allows.
    drover::resources::raise_fd_limit();
    let code = cli::dispatch(cli);
    std::process::exit(code);
}

/// A reader that went away (`drover validate x | head -1`) ends the output, not the program with
/// a panic: printing to a closed pipe exits quietly with code 0, as ripgrep does. Every other
/// panic is reported as before.
fn quiet_on_broken_pipe() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("");
        if message.starts_with("failed printing to std") && message.contains("Broken pipe") {
            std::process::exit(0);
        }
        default(info);
    }));
}
