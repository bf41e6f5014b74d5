use std::sync::atomic::{AtomicU32, Ordering};

use mongodb::{bson::Document, Client, Collection, Database};

/// The server under test. Panics with instructions when none is configured.
pub fn mongodb_uri() -> String {
    std::env::var("MONGODB_URI").unwrap_or_else(|_| {
        panic!(
            "MONGODB_URI is not set. Run the tests with `scripts/test` (it starts a throwaway \
             local server), or set MONGODB_URI to a MongoDB server"
        )
    })
}

/// A database of its own for one test, dropped when the last clone of it
/// goes (a test that panics cleans up too).
#[derive(Debug, Clone)]
pub struct TestDb {
    /// A client on the test server.
    pub client: Client,
    /// The database's name, unique to this test and run.
    pub name: String,
    _dropped_with: std::sync::Arc<DropGuard>,
}

/// Drops the database when the test is done with it. `Drop` cannot wait
/// for the server on the test's runtime (it may be shutting down, and a
/// drop inside it would block it), so a thread of its own does, with a
/// client of its own, and the test waits for it.
#[derive(Debug)]
struct DropGuard {
    name: String,
}

impl Drop for DropGuard {
    fn drop(&mut self) {
        let name = std::mem::take(&mut self.name);
        let dropped = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            runtime.block_on(async {
                if let Ok(client) = Client::with_uri_str(mongodb_uri()).await {
                    let _ = client.database(&name).drop().await;
                    client.shutdown().await;
                }
            });
        });
        let _ = dropped.join();
    }
}

impl TestDb {
    /// A fresh, empty database named after `test`.
    pub async fn new(test: &str) -> Self {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let client = Client::with_uri_str(mongodb_uri())
            .await
            .expect("MONGODB_URI is not a valid MongoDB URI");
        let unique = format!(
            "{:x}{:x}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let prefix: String = test
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .take(40)
            .collect();
        let name = format!("t_{prefix}_{unique}");
        let guard = DropGuard { name: name.clone() };
        let db = Self {
            client,
            name,
            _dropped_with: std::sync::Arc::new(guard),
        };
        db.database()
            .drop()
            .await
            .expect("dropping the test database");
        db
    }

    /// The database.
    pub fn database(&self) -> Database {
        self.client.database(&self.name)
    }

    /// A collection in it.
    pub fn collection(&self, name: &str) -> Collection<Document> {
        self.database().collection(name)
    }

    /// Every document of collection `name`.
    pub async fn documents(&self, name: &str) -> Vec<Document> {
        use futures_util::TryStreamExt;
        self.collection(name)
            .find(mongodb::bson::doc! {})
            .await
            .expect("find")
            .try_collect()
            .await
            .expect("reading the cursor")
    }

    /// The URI of the test server with this database as its default.
    pub fn uri(&self) -> String {
        with_database(&mongodb_uri(), &self.name)
    }

    /// Drops the database now (it is also dropped when the last clone of
    /// this goes, so this is only for a test that wants it gone earlier).
    pub async fn cleanup(self) {
        let _ = self.database().drop().await;
    }
}

/// `uri` with its path (the default database) replaced by `db`.
pub fn with_database(uri: &str, db: &str) -> String {
    let (head, query) = match uri.split_once('?') {
        Some((head, query)) => (head, Some(query)),
        None => (uri, None),
    };
    let scheme_end = head.find("://").map_or(0, |i| i + 3);
    let hosts_end = head[scheme_end..]
        .find('/')
        .map_or(head.len(), |i| scheme_end + i);
    let mut out = format!("{}/{db}", &head[..hosts_end]);
    if let Some(query) = query {
        out.push('?');
        out.push_str(query);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::with_database;

    #[test]
    fn database_goes_into_the_path() {
        assert_eq!(
            with_database("mongodb://h:1/?x=1", "d"),
            "mongodb://h:1/d?x=1"
        );
        assert_eq!(with_database("mongodb://h:1", "d"), "mongodb://h:1/d");
        assert_eq!(
            with_database("mongodb+srv://u:p@h/old?a=b", "d"),
            "mongodb+srv://u:p@h/d?a=b"
        );
    }
}
