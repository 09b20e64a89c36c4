//! Deterministic simulation of rain swarms (DESIGN.md §4).
//!
//! This crate will hold the turmoil implementation of the runtime's network trait, the
//! scenario builder, fault plans and the pure big-swarm harness. It is empty until the runtime
//! exists: the simulation issue fills it.
