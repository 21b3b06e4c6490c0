//! Server-side rendering and guard layers (in progress).
