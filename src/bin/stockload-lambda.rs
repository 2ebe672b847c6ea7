//! The AWS Lambda entry point (provided.al2023 `bootstrap`).
fn main() {}
