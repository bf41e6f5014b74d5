//! The HTTP acceptance suite (filled in below).
