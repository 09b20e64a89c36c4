//! rain's runtime: the only place that touches the world (DESIGN.md §3).
