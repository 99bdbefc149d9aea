//! leaktrace-embed
