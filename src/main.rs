//! The `stockload` binary: start logging, parse the command line, run, print the error once and
//! choose the exit status (0 success, 1 failed run or error, 2 usage error from clap).

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = stockload::cli::Cli::parse();
    stockload::init_tracing(cli.log_format);
    let cli_format = cli.log_format;
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
            match cli_format {
                stockload::LogFormat::Text => eprintln!("error: {err}"),
                stockload::LogFormat::Json => tracing::error!("{err}"),
            }
            ExitCode::FAILURE
        }
    }
}
