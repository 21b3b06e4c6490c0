//! Server-sent events: parser and in-band error inspection (in progress).
