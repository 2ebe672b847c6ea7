//! `stockload sql [NAME]`: list the embedded SQL scripts, or print one exactly as a load runs it.

use crate::cli::SqlArgs;
use crate::error::{Error, Result};
use crate::transform;

/// Lists or prints; never touches the database.
pub(crate) fn run(args: SqlArgs) -> Result<bool> {
    match args.name {
        Some(name) => {
            let text = transform::embedded(&name).ok_or_else(|| {
                Error::Config(format!(
                    "no script named {name}; `stockload sql` lists them"
                ))
            })?;
            out!("{text}");
        }
        None => {
            for name in transform::list() {
                let about = transform::embedded(name)
                    .and_then(|t| t.lines().next())
                    .unwrap_or_default()
                    .trim_start_matches("-- ");
                outln!("{about}");
            }
        }
    }
    Ok(true)
}
