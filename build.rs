//! Rebuild when a SQL script or a migration is added, changed or removed: `include_dir!` and
//! `embed_migrations!` read those folders at compile time, and cargo does not watch them by itself.
fn main() {
    println!("cargo:rerun-if-changed=sql");
    println!("cargo:rerun-if-changed=migrations");
}
