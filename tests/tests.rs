//! The one integration-test binary of the core (ripgrep's layout).

mod support;

mod feedback;
mod params;
