//! The options of a client the store opens itself: what the caller left
//! unset is filled in (timeouts, monitoring). A client the application
//! passes in is never changed.

use std::time::Duration;

use mongodb::{
    options::{ClientOptions, ServerMonitoringMode},
    Client,
};

use crate::error::{Error, Result};

pub(super) async fn parse_uri(uri: &str, bound: Duration) -> Result<ClientOptions> {
    // Parsing resolves mongodb+srv:// through DNS, so it gets the bound too.
    tokio::time::timeout(bound, ClientOptions::parse(uri))
        .await
        .map_err(|_| Error::unreachable(bound, None))?
        .map_err(|e| Error::config(format!("invalid MongoDB URI: {e}")))
}

pub(super) fn client_from_options(options: ClientOptions, bound: Duration) -> Result<Client> {
    Client::with_options(client_options(options, bound))
        .map_err(|e| Error::config(format!("invalid client options: {e}")))
}

/// `options` with what the caller left unset filled in.
fn client_options(mut options: ClientOptions, bound: Duration) -> ClientOptions {
    options.server_selection_timeout.get_or_insert(bound);
    options.connect_timeout.get_or_insert(bound);
    // A state-change error (NotWritablePrimary, ShutdownInProgress, …)
    // marks the server Unknown until its monitor checks it again. A
    // streaming monitor waits for the server to push news, up to the
    // heartbeat period (10 s), longer than most operation timeouts when
    // the server has none to push; a polling one checks at once.
    options
        .server_monitoring_mode
        .get_or_insert(ServerMonitoringMode::Poll);
    options
        .app_name
        .get_or_insert_with(|| "mongodb-session-store".into());
    options
}
