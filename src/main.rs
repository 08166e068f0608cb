//! The `sagak` command line: parses the arguments ([`cli`]), runs the
//! command ([`commands`]) and turns a failure into its message and exit
//! code (78 for a bad configuration, else 1).

mod cli;
mod commands;

use std::process::ExitCode;

use clap::Parser;

/// Every micro-batch allocates and frees its assessments, reasons and
/// alerts by the thousand; glibc's malloc took about a fifth of a lane's
/// time over them, mimalloc about a third of that (benches/README.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    // the engine's lanes run on this pool; named, they can be told apart in
    // `top -H` and a profile (it fails only if already built: nothing to do)
    let _ = rayon::ThreadPoolBuilder::new()
        .thread_name(|i| format!("sagak-lane-{i}"))
        .build_global();
    match commands::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sagak: {}", message(&e));
            ExitCode::from(commands::exit_code(&e))
        }
    }
}

/// The chain of causes, without repeating a cause its parent's message
/// already quotes.
fn message(e: &anyhow::Error) -> String {
    let mut msg = e.to_string();
    for cause in e.chain().skip(1) {
        let text = cause.to_string();
        if !msg.contains(&text) {
            msg.push_str(": ");
            msg.push_str(&text);
        }
    }
    msg
}
