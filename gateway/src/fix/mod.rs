//! The FIX 4.4 acceptor (in progress).
