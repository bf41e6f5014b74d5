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
        let log = Self::default();
        let mut options = ClientOptions::parse(mongodb_uri())
            .await
            .expect("MONGODB_URI");
        let sink = log.clone();
        options.command_event_handler = Some(EventHandler::callback(move |event| {
            if let CommandEvent::Started(started) = event {
                sink.0
                    .lock()
                    .unwrap()
                    .push((started.command_name, started.command));
            }
        }));
        (Client::with_options(options).expect("client options"), log)
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
        log.iter()
            .filter(|(n, _)| matches!(n.as_str(), "insert" | "update" | "delete" | "findAndModify"))
            .count()
    }

    /// Forgets what was recorded.
    pub fn clear(&self) {
        self.0.lock().unwrap().clear();
    }
}
