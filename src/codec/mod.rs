//! How session values become BSON and back.

mod escape;
mod native;

pub(crate) use escape::escape_key;
pub(crate) use native::{document_to_object, object_to_document, value_to_bson};
