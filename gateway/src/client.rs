//! API keys, request signatures and rate limits (helper in progress).
