//! stockload: load batches of company stock-price CSV files into PostgreSQL with the transforms in
//! versioned SQL. See ARCHITECTURE.md for how a run flows through these modules.
#![warn(missing_docs)]

pub mod aws;
#[cfg(feature = "aws")]
pub mod bucket;
pub mod cli;
pub(crate) mod cmd;
pub(crate) mod context;
pub mod db;
#[cfg(feature = "dev-tools")]
pub mod devcitus;
#[cfg(feature = "dev-tools")]
pub mod devdb;
pub mod error;
pub(crate) mod ledger;
pub mod load;
pub(crate) mod logging;
pub mod notify;
pub(crate) mod parse;
pub mod pipeline;
pub mod plan;
pub mod quality;
pub(crate) mod report;
#[cfg(feature = "dev-tools")]
pub mod sample;
pub(crate) mod secret;
pub mod shutdown;
pub(crate) mod stage;
pub mod storage;
pub(crate) mod summary;
pub mod transform;
pub mod trigger;

pub use cmd::run;
pub use logging::{init_tracing, log_format, use_colour, LogFormat};
