//! The one integration-test binary of the core (ripgrep's layout).

mod doc_citations;
mod feedback;
mod params;
mod scheduler_readme;
mod support;
mod trace;
