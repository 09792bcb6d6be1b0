//! The AmazonAthena JSON API.
