//! The two transfer state machines.
