use std::{
    net::SocketAddr,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
};

use tokio::{
    net::{TcpListener, TcpStream},
    sync::watch,
};

use crate::mongodb_uri;

/// A loopback TCP proxy in front of the test server that can cut every
/// connection and refuse new ones, then let traffic through again: an
/// outage that works the same in front of SecantusDB or a real `mongod`.
#[derive(Debug, Clone)]
pub struct Proxy {
    address: SocketAddr,
    down: Arc<AtomicBool>,
    cuts: watch::Sender<u64>,
}

impl Proxy {
    /// A proxy to the host of `MONGODB_URI`, or `None` (with the reason)
    /// when that URI is not a single plain `mongodb://host:port`.
    pub async fn start() -> Result<Self, String> {
        let target = single_host(&mongodb_uri())?;
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| e.to_string())?;
        let address = listener.local_addr().map_err(|e| e.to_string())?;
        let proxy = Self {
            address,
            down: Arc::default(),
            cuts: watch::channel(0).0,
        };
        let accepting = proxy.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                if accepting.down.load(Ordering::SeqCst) {
                    continue; // dropped: the connection is closed at once
                }
                tokio::spawn(forward(client, target.clone(), accepting.cuts.subscribe()));
            }
        });
        Ok(proxy)
    }

    /// A URI for the test server through this proxy, with database `db`.
    pub fn uri(&self, db: &str) -> String {
        format!("mongodb://{}/{db}?directConnection=true", self.address)
    }

    /// Cuts every open connection and refuses new ones.
    pub fn cut(&self) {
        self.down.store(true, Ordering::SeqCst);
        self.cuts.send_modify(|n| *n += 1);
    }

    /// Lets traffic through again.
    pub fn restore(&self) {
        self.down.store(false, Ordering::SeqCst);
    }
}

async fn forward(mut client: TcpStream, target: String, mut cuts: watch::Receiver<u64>) {
    let Ok(mut server) = TcpStream::connect(&target).await else {
        return;
    };
    tokio::select! {
        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
        _ = cuts.changed() => {}
    }
}

fn single_host(uri: &str) -> Result<String, String> {
    let rest = uri
        .strip_prefix("mongodb://")
        .ok_or("the proxy needs a mongodb:// URI (not mongodb+srv://)")?;
    let hosts = rest.split(['/', '?']).next().unwrap_or_default();
    let hosts = hosts.rsplit('@').next().unwrap_or_default();
    if hosts.contains(',') || rest.contains("tls=true") || rest.contains("ssl=true") {
        return Err("the proxy needs a single host without TLS".into());
    }
    Ok(hosts.to_string())
}
