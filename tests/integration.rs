//! The one integration test binary: every test runs against a real PostgreSQL (a private
//! throwaway cluster started by `support`, or DATABASE_URL), never a mock.

mod support;

mod auto_mode;
mod citus;
mod cli;
mod hostile;
mod ledger;
mod load;
mod logs;
mod memory;
mod migrations;
mod notify;
mod quality;
mod quiet_logs;
mod readonly;
mod report;
mod s3;
mod secrets;
mod stop;
mod symlinks;
mod tls;
mod triggers;

pub use cli::text as cli_text;
