//! The `quiver` command line.
