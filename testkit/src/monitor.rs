use std::sync::{Arc, Mutex};

use mongodb::{
    bson::Document,
    event::{command::CommandEvent, EventHandler},
    options::ClientOptions,
    Client,
};

use crate::mongodb_uri;

/// The commands a client sent, recorded through driver command monitoring
/// (per client, so tests running in parallel do not disturb each other).
#[derive(Debug, Clone, Default)]
pub struct CommandLog(Arc<Mutex<Vec<(String, Document)>>>);

impl CommandLog {
    /// A client on the test server whose commands are recorded here.
    pub async fn client() -> (Client, Self) {
        let (options, log) = Self::options(&mongodb_uri(), None).await;
        (Client::with_options(options).expect("client options"), log)
    }

    /// A client on the test server named `app` (so a failpoint can single
    /// it out) whose commands are recorded here.
    pub async fn named_client(app: &str) -> (Client, Self) {
        let (options, log) = Self::options(&mongodb_uri(), Some(app)).await;
        (Client::with_options(options).expect("client options"), log)
    }

    /// Options for a client on `uri`, named `app` if given, whose commands
    /// are recorded here: for a store that opens its client itself
    /// (`MongoSessionStore::from_client_options`).
    pub async fn options(uri: &str, app: Option<&str>) -> (ClientOptions, Self) {
        let log = Self::default();
        let mut options = ClientOptions::parse(uri).await.expect("a valid URI");
        if let Some(app) = app {
            options.app_name = Some(app.into());
        }
        let sink = log.clone();
        options.command_event_handler = Some(EventHandler::callback(move |event| {
            if let CommandEvent::Started(started) = event {
                sink.0
                    .lock()
                    .unwrap()
                    .push((started.command_name, started.command));
            }
        }));
        (options, log)
    }

    /// Every command sent so far, in order, as (name, body).
    pub fn all(&self) -> Vec<(String, Document)> {
        self.0.lock().unwrap().clone()
    }

    /// The commands named `name` sent so far.
    pub fn commands(&self, name: &str) -> Vec<Document> {
        let log = self.0.lock().unwrap();
        log.iter()
            .filter(|(n, _)| n == name)
            .map(|(_, c)| c.clone())
            .collect()
    }

    /// How many commands that write were sent (insert, update, delete,
    /// findAndModify).
    pub fn writes(&self) -> usize {
        let log = self.0.lock().unwrap();
        log.iter().filter(|(n, _)| is_write(n)).count()
    }

    /// Forgets what was recorded.
    pub fn clear(&self) {
        self.0.lock().unwrap().clear();
    }
}

/// Whether a command of this name writes (insert, update, delete,
/// findAndModify).
pub fn is_write(command_name: &str) -> bool {
    matches!(
        command_name,
        "insert" | "update" | "delete" | "findAndModify"
    )
}
