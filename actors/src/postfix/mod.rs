pub mod agent;
pub mod attr;
pub mod bounce;
pub mod dialect;
pub mod rewrite;
