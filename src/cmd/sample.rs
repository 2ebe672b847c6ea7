//! `stockload sample`: write a generated batch (company files and index) to a folder.

use crate::cli::SampleArgs;
use crate::error::Result;
use crate::sample;

/// Generates the batch and says where it went.
pub(crate) fn run(args: SampleArgs) -> Result<bool> {
    let spec = sample::SampleSpec {
        files: args.files,
        listed: args.listed.unwrap_or(args.files),
        rows: args.rows,
        faulty: args.faulty,
        seed: args.seed,
    };
    let batch = sample::generate(&args.out, &spec)?;
    outln!(
        "wrote {} files to {} and the index {} ({} listed)",
        args.files,
        batch.stocks.display(),
        batch.companies.display(),
        batch.listed.len()
    );
    Ok(true)
}
