//! Athena DDL over the catalog.
