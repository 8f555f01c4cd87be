//! A gateway in front of a real catalog-store (SQLite, loaded with the shared examples, served
//! over gRPC on loopback) and the in-process bus, on a free loopback port.

#![allow(dead_code)]

#[path = "../../../catalog-store/tests/common/mod.rs"]
mod store_common;

use std::sync::Arc;
use std::time::Duration;

use cadastre_bus::memory::InProcessBus;
use cadastre_bus::subjects::HARVESTER;
use cadastre_bus::{Bus, Consumer};
use cadastre_gateway::{Gateway, Settings};
use reqwest::StatusCode;
use serde_json::Value;
use tokio::net::TcpListener;
use tonic::transport::Channel;

pub struct Running {
    /// `http://127.0.0.1:PORT/api/catalog`.
    pub base: String,
    pub http: reqwest::Client,
    /// Harvest requests the gateway published.
    pub harvests: Box<dyn Consumer>,
    /// The store behind the gateway, for arranging what a test needs.
    pub store: cadastre_catalog_store::CatalogStore,
    _stop: tokio::sync::oneshot::Sender<()>,
    _harness: store_common::Harness,
}

/// A gateway open to every caller, as on a laptop's loopback.
pub async fn start() -> Running {
    let open = Settings::default()
        .for_listen("127.0.0.1:7007".parse().unwrap())
        .unwrap();
    start_with(open).await
}

pub async fn start_with(settings: Settings) -> Running {
    let harness = store_common::sqlite().await;
    harness
        .store
        .apply_batch(store_common::examples_batch())
        .await
        .unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let store_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let store_url = format!("http://{}", store_listener.local_addr().unwrap());
    let (store_stop, store_stopped) = tokio::sync::watch::channel(false);
    tokio::spawn(cadastre_catalog_store::server::run(
        harness.store.clone(),
        store_listener,
        async move {
            let mut stopped = store_stopped;
            let _ = stopped.wait_for(|s| *s).await;
        },
        Duration::from_secs(1),
    ));
    let bus: Arc<dyn Bus> = Arc::new(InProcessBus::new());
    let harvests = bus.consume(&HARVESTER).await.unwrap();
    let gateway = Gateway::new(
        Channel::from_shared(store_url).unwrap().connect_lazy(),
        bus,
        settings,
    );
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}/api/catalog", listener.local_addr().unwrap());
    tokio::spawn(cadastre_gateway::serve(
        gateway.router(),
        listener,
        async move {
            let _ = stopped.await;
            let _ = store_stop.send(true);
        },
    ));
    let _ = rustls::crypto::ring::default_provider().install_default();
    Running {
        base,
        http: reqwest::Client::new(),
        harvests,
        store: harness.store.clone(),
        _stop: stop,
        _harness: harness,
    }
}

impl Running {
    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    pub async fn post(&self, path: &str, body: &Value) -> (StatusCode, Value) {
        let response = self
            .http
            .post(format!("{}{path}", self.base))
            .json(body)
            .send()
            .await
            .unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }
}
