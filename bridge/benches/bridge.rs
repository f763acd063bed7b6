//! Bridge benchmark (written next).

fn main() {}
