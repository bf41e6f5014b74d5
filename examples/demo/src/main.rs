//! `cargo run -p demo`: the axum demo, configured by environment variables
//! (see the README). `scripts/demo` starts a local MongoDB first when
//! `MONGODB_URI` is unset.

use demo_contract::Settings;

#[tokio::main]
async fn main() {
    demo_contract::main_with("demo", run()).await;
}

async fn run() -> Result<(), String> {
    let settings = Settings::from_env()?;
    let app = demo::app(&settings).await.map_err(|e| format!("{e:#}"))?;
    let address = format!("{}:{}", settings.host, settings.port);
    let listener = tokio::net::TcpListener::bind(&address)
        .await
        .map_err(|e| format!("cannot listen on {address}: {e}"))?;
    println!("demo listening on http://{address}");
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown_signal())
    .await
    .map_err(|e| e.to_string())
}

async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                .expect("installing the SIGTERM handler");
        tokio::select! { _ = interrupt => {}, _ = terminate.recv() => {} }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
}
