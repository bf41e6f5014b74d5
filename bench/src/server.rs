//! What the MongoDB server counts: `serverStatus` opcounters, the same for
//! every system whatever driver or language it uses.

use mongodb::{
    bson::{doc, Bson, Document},
    Client,
};

/// The server's operation counters at one moment.
#[derive(Debug, Clone, Copy, Default)]
pub struct OpCounters {
    /// Finds.
    pub query: i64,
    /// Inserts.
    pub insert: i64,
    /// Updates.
    pub update: i64,
    /// Deletes.
    pub delete: i64,
    /// Cursor continuations (change streams included).
    pub getmore: i64,
    /// Other commands (findAndModify, aggregate, hello, ...).
    pub command: i64,
}

impl OpCounters {
    /// Reads the counters now.
    ///
    /// # Errors
    ///
    /// The server refused `serverStatus` or lacks opcounters.
    pub async fn read(client: &Client) -> Result<Self, String> {
        let status = client
            .database("admin")
            .run_command(doc! { "serverStatus": 1 })
            .await
            .map_err(|e| format!("serverStatus: {e}"))?;
        let counters = status
            .get_document("opcounters")
            .map_err(|_| "serverStatus has no opcounters".to_string())?;
        let get = |name: &str| number(counters, name);
        Ok(Self {
            query: get("query"),
            insert: get("insert"),
            update: get("update"),
            delete: get("delete"),
            getmore: get("getmore"),
            command: get("command"),
        })
    }

    /// What happened between `earlier` and `self`, less the one
    /// `serverStatus` that read `self`.
    pub fn since(&self, earlier: &Self) -> Self {
        Self {
            query: self.query - earlier.query,
            insert: self.insert - earlier.insert,
            update: self.update - earlier.update,
            delete: self.delete - earlier.delete,
            getmore: self.getmore - earlier.getmore,
            command: (self.command - earlier.command - 1).max(0),
        }
    }

    /// Inserts, updates and deletes.
    pub fn writes(&self) -> i64 {
        self.insert + self.update + self.delete
    }

    /// Everything else the server was asked, finds aside.
    pub fn other(&self) -> i64 {
        self.getmore + self.command
    }
}

fn number(document: &Document, name: &str) -> i64 {
    match document.get(name) {
        Some(Bson::Int32(n)) => i64::from(*n),
        Some(Bson::Int64(n)) => *n,
        Some(Bson::Double(n)) => *n as i64,
        _ => 0,
    }
}
