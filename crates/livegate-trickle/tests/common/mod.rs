//! The real server on 127.0.0.1, port 0, nested under `/ai/trickle` as the gateway does.
#![allow(dead_code)]

use std::future::Future;
use std::time::Duration;

use livegate_trickle::{ServerConfig, ServerEvent, TrickleServer};
use tokio::sync::broadcast;

pub struct TestServer {
    pub trickle: TrickleServer,
    /// `http://127.0.0.1:{port}/ai/trickle`
    pub base_url: String,
    serve: tokio::task::JoinHandle<()>,
}

impl TestServer {
    pub async fn start(config: ServerConfig) -> Self {
        Self::start_on("127.0.0.1:0".parse().unwrap(), config).await
    }

    pub async fn start_on(addr: std::net::SocketAddr, config: ServerConfig) -> Self {
        let trickle = TrickleServer::new(config);
        let app = axum::Router::new().nest("/ai/trickle", trickle.router());
        let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
        let base_url = format!("http://{}/ai/trickle", listener.local_addr().unwrap());
        let serve = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Self {
            trickle,
            base_url,
            serve,
        }
    }

    pub async fn with_channels(names: &[&str]) -> Self {
        let server = Self::start(ServerConfig::default()).await;
        for name in names {
            server.trickle.create_channel(name).unwrap();
        }
        server
    }

    pub fn url(&self, channel: &str) -> String {
        format!("{}/{channel}", self.base_url)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.serve.abort();
    }
}

/// Every wait in these tests is bounded.
pub async fn bounded<T>(what: &str, future: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(10), future)
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

/// Waits for the first event matching `wanted`, returning it and the events seen before it.
pub async fn wait_event(
    events: &mut broadcast::Receiver<ServerEvent>,
    wanted: impl Fn(&ServerEvent) -> bool,
) -> (ServerEvent, Vec<ServerEvent>) {
    bounded("a server event", async {
        let mut before = Vec::new();
        loop {
            let event = events.recv().await.expect("events flow");
            if wanted(&event) {
                return (event, before);
            }
            before.push(event);
        }
    })
    .await
}

/// Distinct, recognisable bytes for segment `seq`, chunk `chunk`.
pub fn payload(seq: i64, chunk: usize, len: usize) -> bytes::Bytes {
    (0..len)
        .map(|i| (seq as usize * 31 + chunk * 7 + i) as u8)
        .collect::<Vec<u8>>()
        .into()
}
