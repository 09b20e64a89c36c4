//! rain's binaries.
