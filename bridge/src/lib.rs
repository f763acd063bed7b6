//! ecoshard's bridge: the `ecoshard` command line, and (next) the HTTP server
//! that applies layouts to a replicated PostgreSQL and streams its lag.

pub mod cli;
