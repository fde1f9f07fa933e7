//! Test support for the bureau crate's unit tests (filled in by the driver tests).
