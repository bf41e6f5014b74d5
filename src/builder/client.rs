//! The options of a client the store opens itself: what the caller left
//! unset is filled in (timeouts, monitoring, the managed services'
//! `retryWrites`). A client the application passes in is never changed.

use std::time::Duration;

use mongodb::{
    options::{ClientOptions, ServerMonitoringMode},
    Client,
};

use crate::error::{Error, Result};

/// A managed service whose quirks a builder profile sets the client up for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Service {
    /// `StoreBuilder::cosmos_db`.
    CosmosDb,
    /// `StoreBuilder::document_db`.
    DocumentDb,
}

impl Service {
    fn profile(self) -> &'static str {
        match self {
            Self::CosmosDb => "cosmos_db()",
            Self::DocumentDb => "document_db()",
        }
    }

    /// The driver has no way to read a client's options back, so the store
    /// cannot tell whether a client of the application's retries writes.
    pub(super) fn warn_about_a_client_of_yours(self) {
        tracing::warn!(
            profile = self.profile(),
            "the store cannot see or change the options of a client passed to from_client: \
             give it retryWrites=false (in its URI, or ClientOptions::retry_writes) unless the \
             service supports retryable writes, or pass its options to from_client_options \
             and the profile sets it"
        );
    }
}

pub(super) async fn parse_uri(uri: &str, bound: Duration) -> Result<ClientOptions> {
    // Parsing resolves mongodb+srv:// through DNS, so it gets the bound too.
    tokio::time::timeout(bound, ClientOptions::parse(uri))
        .await
        .map_err(|_| Error::unreachable(bound, None))?
        .map_err(|e| Error::config(format!("invalid MongoDB URI: {e}")))
}

pub(super) fn client_from_options(
    options: ClientOptions,
    bound: Duration,
    service: Option<Service>,
) -> Result<Client> {
    Client::with_options(client_options(options, bound, service))
        .map_err(|e| Error::config(format!("invalid client options: {e}")))
}

/// `options` with what the caller left unset filled in.
fn client_options(
    mut options: ClientOptions,
    bound: Duration,
    service: Option<Service>,
) -> ClientOptions {
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
    if let Some(service) = service {
        // Cosmos DB accounts without retryable writes, and DocumentDB before
        // engine 8.0.2, refuse the transaction number a retryable write
        // carries. An explicit `retryWrites=true` is the operator's word
        // that this deployment has them.
        match options.retry_writes {
            None => options.retry_writes = Some(false),
            Some(true) => tracing::warn!(
                profile = service.profile(),
                "the client options ask for retryable writes (retryWrites=true): kept; make \
                 sure the service supports them, or every write may be refused"
            ),
            Some(false) => {}
        }
    }
    options
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOUND: Duration = Duration::from_secs(3);

    async fn options(uri: &str, service: Option<Service>) -> ClientOptions {
        let parsed = ClientOptions::parse(uri).await.unwrap();
        client_options(parsed, BOUND, service)
    }

    #[tokio::test]
    async fn the_cosmos_and_documentdb_profiles_turn_retryable_writes_off_unless_told_otherwise() {
        let plain = "mongodb://localhost:27017/app";
        for service in [Service::CosmosDb, Service::DocumentDb] {
            let tuned = options(plain, Some(service)).await;
            assert_eq!(tuned.retry_writes, Some(false), "{service:?}");
            let uri = format!("{plain}?retryWrites=true");
            let explicit = options(&uri, Some(service)).await;
            assert_eq!(explicit.retry_writes, Some(true), "the URI's word wins");
        }
        // Without a profile the driver's default (retryable writes) stays.
        let default = options(plain, None).await;
        assert_eq!(default.retry_writes, None);
        assert_eq!(default.server_selection_timeout, Some(BOUND));
        assert_eq!(default.app_name.as_deref(), Some("mongodb-session-store"));
        let off = options(&format!("{plain}?retryWrites=false"), None).await;
        assert_eq!(off.retry_writes, Some(false));
    }
}
