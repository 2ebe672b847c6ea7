//! The `stockload` binary: start logging, parse the command line, run, print the error once and
//! choose the exit status (0 success, 1 failed run or error, 2 usage error from clap).

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    stockload::init_tracing();
    let cli = stockload::cli::Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let run = async {
        stockload::shutdown::listen();
        stockload::run(cli).await
    };
    match runtime.block_on(run) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::FAILURE
        }
    }
}
