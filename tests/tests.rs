//! The one integration-test binary of the core (ripgrep's layout).

mod adaptive;
mod doc_citations;
mod feedback;
mod params;
mod scheduler_readme;
mod series;
mod support;
mod trace;
