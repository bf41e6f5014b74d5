//! `cargo run -p demo-actix`: the actix-web demo, configured by the same
//! environment variables as `examples/demo` (see the README).

use actix_web::{App, HttpServer};
use demo_contract::Settings;

#[actix_web::main]
async fn main() {
    demo_contract::main_with("demo-actix", run()).await;
}

async fn run() -> Result<(), String> {
    let settings = Settings::from_env()?;
    let state = demo_actix::State::build(&settings).await?;
    let address = format!("{}:{}", settings.host, settings.port);
    let server = HttpServer::new(move || App::new().configure(|cfg| state.configure(cfg)))
        .bind(&address)
        .map_err(|e| format!("cannot listen on {address}: {e}"))?;
    println!("demo-actix listening on http://{address}");
    server.run().await.map_err(|e| e.to_string())
}
