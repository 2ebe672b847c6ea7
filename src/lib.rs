//! stockload: load batches of company stock-price CSV files into PostgreSQL with the transforms in
//! versioned SQL. See ARCHITECTURE.md for how a run flows through these modules.
#![warn(missing_docs)]

pub mod aws;
#[cfg(feature = "aws")]
pub mod bucket;
pub mod cli;
pub mod cmd;
pub mod context;
pub mod db;
#[cfg(feature = "dev-tools")]
pub mod devcitus;
#[cfg(feature = "dev-tools")]
pub mod devdb;
pub mod error;
pub mod ledger;
pub mod load;
pub mod logging;
pub mod notify;
pub mod parse;
pub mod pipeline;
pub mod plan;
pub mod report;
#[cfg(feature = "dev-tools")]
pub mod sample;
pub mod secret;
pub mod shutdown;
pub mod source;
pub mod stage;
pub mod summary;
pub mod transform;
pub mod trigger;

pub use cmd::run;
pub use logging::{init_tracing, log_format, use_colour, LogFormat};
