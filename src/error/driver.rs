//! Classifying the driver's errors: the codes the store tells apart.

use super::Error;

/// The server's codes for a document past the 16 MiB limit: 10334
/// BSONObjectTooLarge, 17419/17420 (an update's result too large); and the
/// driver's own refusal of an oversized insert.
pub(super) fn is_too_large(error: &mongodb::error::Error) -> bool {
    use mongodb::error::ErrorKind;
    const TOO_LARGE: [i32; 3] = [10334, 17419, 17420];
    if let ErrorKind::InvalidArgument { message, .. } = &*error.kind {
        return message.contains("must be within");
    }
    command_code(error)
        .or_else(|| write_error_code(error))
        .is_some_and(|code| TOO_LARGE.contains(&code))
}

/// The code of a command error (as opposed to a write error).
pub(crate) fn command_code(error: &mongodb::error::Error) -> Option<i32> {
    match &*error.kind {
        mongodb::error::ErrorKind::Command(command) => Some(command.code),
        _ => None,
    }
}

/// The code of a write error (as opposed to a command error).
pub(crate) fn write_error_code(error: &mongodb::error::Error) -> Option<i32> {
    use mongodb::error::{ErrorKind, WriteFailure};
    match &*error.kind {
        ErrorKind::Write(WriteFailure::WriteError(w)) => Some(w.code),
        _ => None,
    }
}

/// An insert failed on a unique index: the id is taken.
pub(crate) fn is_duplicate_key(error: &Error) -> bool {
    const DUPLICATE_KEY: i32 = 11000;
    error
        .driver_error()
        .and_then(write_error_code)
        .is_some_and(|code| code == DUPLICATE_KEY)
}

pub(super) fn is_transient_driver_error(error: &mongodb::error::Error) -> bool {
    use mongodb::error::ErrorKind;
    // The driver labels retryable *write* errors only; a read that met a
    // step-down, a shutdown or a network hiccup is just as retryable. These
    // are the retryable-reads specification's codes.
    const RETRYABLE: [i32; 13] = [
        6, 7, 89, 91, 134, 189, 262, 9001, 10107, 11600, 11602, 13435, 13436,
    ];
    matches!(
        *error.kind,
        ErrorKind::ServerSelection { .. }
            | ErrorKind::Io(_)
            | ErrorKind::ConnectionPoolCleared { .. }
    ) || error.contains_label(mongodb::error::RETRYABLE_WRITE_ERROR)
        || command_code(error).is_some_and(|code| RETRYABLE.contains(&code))
}
