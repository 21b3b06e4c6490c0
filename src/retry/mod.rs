//! The retry layer (in progress).
