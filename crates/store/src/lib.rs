//! leaktrace-store
