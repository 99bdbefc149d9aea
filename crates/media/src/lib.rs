//! leaktrace-media
