//! tower-http classifiers for LLM failures (in progress).
