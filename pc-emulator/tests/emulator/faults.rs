//! Fault injection, one kind at a time.
